"""Model settings, checked when constructed and stored with every checkpoint as JSON."""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pseudo3d.errors import ConfigError, require

KINDS = ("hierarchical", "convrnn")
OUTPUT_ACTIVATIONS = ("none", "sigmoid")


@dataclass(frozen=True)
class ModelConfig:
    """What :func:`pseudo3d.training.models.build_model` builds.

    Attributes:
        output_dim: values per motion frame (FLAME parameters, flattened vertex offsets or
            blendshape weights).
        kind: ``hierarchical`` (Speech2Face3D-style multi-scale encoder + transformer decoder)
            or ``convrnn`` (Speech2Blend-style conv stack + bidirectional GRU).
        sample_rate: audio samples per second the model expects; a multiple of 100, since
            features are taken every 10 ms with a 25 ms window.
        n_mels: log-mel bands.
        hidden: channels of every internal feature (encoder branches, decoder, GRU output).
        fine_kernel: hierarchical: kernel (odd) of the fine branch's conv at 100 Hz; 3 gives a
            45 ms receptive field.
        mid_stride: hierarchical: the mid branch runs at ``100 / mid_stride`` Hz.
        mid_dilations: hierarchical: dilations of the mid branch's kernel-3 residual convs.
        long_stride: hierarchical: the long branch runs at ``100 / long_stride`` Hz.
        long_dilations: hierarchical: dilations of the long branch's kernel-3 residual convs.
        conv_layers: convrnn: kernel-3 convs over the log-mel at 100 Hz before the GRU.
        decoder_layers: transformer layers (hierarchical) or GRU layers (convrnn).
        decoder_heads: hierarchical: attention heads; must divide ``hidden``.
        decoder_context_s: hierarchical: each decoder frame attends to frames at most this many
            seconds away, so the output does not depend on clip length.
        dropout: dropout probability in [0, 1).
        output_activation: ``none`` (normalised regression targets) or ``sigmoid`` (blendshape
            weights in [0, 1]).

    Raises:
        ConfigError: a ``ValueError`` naming the bad field.
    """

    output_dim: int
    kind: str = "hierarchical"
    sample_rate: int = 16000
    n_mels: int = 80
    hidden: int = 128
    fine_kernel: int = 3
    mid_stride: int = 2
    mid_dilations: tuple[int, ...] = (1, 2, 4)
    long_stride: int = 8
    long_dilations: tuple[int, ...] = (1, 2, 4, 8)
    conv_layers: int = 3
    decoder_layers: int = 2
    decoder_heads: int = 4
    decoder_context_s: float = 1.0
    dropout: float = 0.1
    output_activation: str = "none"

    def __post_init__(self) -> None:
        require(self.kind in KINDS, f"kind must be one of {', '.join(KINDS)}; got {self.kind!r}")
        _check_int(self, "output_dim", low=1)
        _check_int(self, "sample_rate", low=100)
        require(self.sample_rate % 100 == 0,
               f"sample_rate must be a multiple of 100 (10 ms hops), got {self.sample_rate}")
        _check_int(self, "n_mels", low=1)
        _check_int(self, "hidden", low=2)
        _check_int(self, "fine_kernel", low=1)
        require(self.fine_kernel % 2 == 1, f"fine_kernel must be odd, got {self.fine_kernel}")
        _check_int(self, "mid_stride", low=1)
        _check_int(self, "long_stride", low=1)
        for name in ("mid_dilations", "long_dilations"):
            object.__setattr__(self, name, _int_tuple(name, getattr(self, name)))
        _check_int(self, "conv_layers", low=1)
        _check_int(self, "decoder_layers", low=1)
        _check_int(self, "decoder_heads", low=1)
        require(self.hidden % self.decoder_heads == 0,
               f"hidden ({self.hidden}) must be divisible by decoder_heads ({self.decoder_heads})")
        require(self.hidden % 2 == 0, f"hidden must be even (a bidirectional GRU splits it), got {self.hidden}")
        _check_number(self, "decoder_context_s")
        require(self.decoder_context_s > 0, f"decoder_context_s must be > 0 seconds, got {self.decoder_context_s}")
        _check_number(self, "dropout")
        require(0.0 <= self.dropout < 1.0, f"dropout must be in [0, 1), got {self.dropout}")
        require(self.output_activation in OUTPUT_ACTIVATIONS,
               f"output_activation must be one of {', '.join(OUTPUT_ACTIVATIONS)}; "
               f"got {self.output_activation!r}")

    @property
    def hop_length(self) -> int:
        """Samples between log-mel frames (10 ms)."""
        return self.sample_rate // 100

    @property
    def n_fft(self) -> int:
        """Samples per log-mel window (25 ms)."""
        return self.sample_rate // 40

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values (tuples become lists)."""
        return {name: list(value) if isinstance(value, tuple) else value
                for name, value in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ModelConfig":
        """Inverse of :meth:`to_dict`; unknown keys are refused by name."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"model config: expected a mapping, got {type(data).__name__}")
        known = {spec.name for spec in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        require(not unknown, f"unknown model option {unknown[0] if unknown else ''}; "
                            f"the options are: {', '.join(sorted(known))}")
        require("output_dim" in data, "model config needs output_dim")
        values: dict[str, Any] = {name: tuple(value) if isinstance(value, list) else value
                                  for name, value in data.items()}
        return cls(**values)

    def replace(self, **changes: Any) -> "ModelConfig":
        """A checked copy with some fields changed."""
        return dataclasses.replace(self, **changes)



def _check_int(config: ModelConfig, name: str, low: int) -> None:
    value = getattr(config, name)
    require(isinstance(value, numbers.Integral) and not isinstance(value, bool),
           f"{name} must be an integer, got {value!r}")
    require(value >= low, f"{name} must be >= {low}, got {value}")


def _check_number(config: ModelConfig, name: str) -> None:
    value = getattr(config, name)
    require(isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value),
           f"{name} must be a finite number, got {value!r}")


def _int_tuple(name: str, value: Any) -> tuple[int, ...]:
    require(isinstance(value, (tuple, list)) and len(value) > 0,
           f"{name} must be a non-empty list of positive integers, got {value!r}")
    # int(v) >= 1: the value kept is int(v), and numbers.Integral is not typed as comparable with int
    require(all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and int(v) >= 1 for v in value),
           f"{name} must be a non-empty list of positive integers, got {value!r}")
    return tuple(int(v) for v in value)
