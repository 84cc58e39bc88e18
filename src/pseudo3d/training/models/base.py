"""The interface every speech-to-motion model shares; subclasses only build their encoder and
decoder.

Data flow, with shapes::

    audio (B, S) float in [-1, 1] at config.sample_rate
      → log_mel       (B, n_mels, S // hop + 1) at 100 Hz, frame j at j / 100 s   (no parameters)
      → normalise     fixed affine, see blocks.normalise_log_mel
      → encoder       (B, n_frames, hidden) at the motion rate, frame k at k / fps
      → decoder       (B, n_frames, hidden)
      → head          (B, n_frames, output_dim)
"""

from __future__ import annotations

import math
import numbers

import torch
from torch import nn

from pseudo3d.training.audio import LogMel
from pseudo3d.training.models.blocks import normalise_log_mel
from pseudo3d.training.models.config import ModelConfig
from pseudo3d.training.models.heads import MotionHead

FEATURE_RATE = 100.0
"""Log-mel frames per second (10 ms hop)."""


class SpeechToMotion(nn.Module):
    """Audio to per-frame motion.

    Attributes:
        config: the :class:`ModelConfig` it was built from (``output_dim`` follows
            :meth:`replace_head`).
        log_mel: the feature front end (buffers only).
        encoder: the audio part, ``(B, n_mels, T) features, n_frames, fps → (B, n_frames,
            hidden)``; freeze it with ``for p in model.encoder.parameters():
            p.requires_grad_(False)``. It holds no batch norm, so frozen means frozen in train
            mode too.
        decoder: temporal model at the motion rate, ``(B, n_frames, hidden), fps → same``.
        head: :class:`MotionHead`, the output layer.
    """

    def __init__(self, config: ModelConfig, encoder: nn.Module, decoder: nn.Module):
        super().__init__()
        self.config = config
        self.log_mel = LogMel(sample_rate=config.sample_rate, n_fft=config.n_fft,
                              hop_length=config.hop_length, n_mels=config.n_mels)
        self.encoder = encoder
        self.decoder = decoder
        self.head = MotionHead(config.hidden, config.output_dim, config.output_activation)

    @property
    def output_dim(self) -> int:
        return self.head.output_dim

    def forward(self, audio: torch.Tensor, n_frames: int, fps: float) -> torch.Tensor:
        """Motion for ``n_frames`` frames at ``fps``, frame ``k`` at ``k / fps`` seconds.

        Args:
            audio: ``(B, S)`` float mono at ``config.sample_rate``, in [-1, 1]; any ``S >= 0``
                (normally ``S ≈ n_frames * sample_rate / fps``; frames past the end of the audio
                see its last features).
            n_frames: output frames, ``>= 1``.
            fps: motion frames per second, ``> 0``.

        Returns:
            ``(B, n_frames, output_dim)`` float32.
        """
        _check_call(audio, n_frames, fps)
        features = normalise_log_mel(self.log_mel(audio.float()))
        encoded = self.encoder(features, n_frames, float(fps))
        return self.head(self.decoder(encoded, float(fps)))

    def replace_head(self, output_dim: int, initial_output: torch.Tensor | None = None) -> MotionHead:
        """Swap in a freshly initialised head for a new target (a new mesh topology, a
        blendshape set), keeping the encoder and decoder weights. ``initial_output``: see
        :class:`MotionHead`. Returns the new head; optimisers must be rebuilt afterwards."""
        self.config = self.config.replace(output_dim=output_dim)
        reference = self.head.linear.weight
        self.head = MotionHead(self.config.hidden, output_dim, self.config.output_activation,
                               initial_output).to(device=reference.device, dtype=reference.dtype)
        return self.head


def _check_call(audio: torch.Tensor, n_frames: int, fps: float) -> None:
    if not isinstance(audio, torch.Tensor) or audio.dim() != 2:
        shape = tuple(audio.shape) if isinstance(audio, torch.Tensor) else type(audio).__name__
        raise ValueError(f"audio must be a (batch, samples) tensor, got {shape}")
    if isinstance(n_frames, bool) or not isinstance(n_frames, numbers.Integral) or n_frames < 1:
        raise ValueError(f"n_frames must be a positive integer, got {n_frames!r}")
    if isinstance(fps, bool) or not isinstance(fps, numbers.Real) or not math.isfinite(fps) or fps <= 0:
        raise ValueError(f"fps must be a positive number, got {fps!r}")
