"""Speech-to-motion models: ``build_model(ModelConfig(...))``.

Every model maps ``audio (B, S)`` at 16 kHz to ``(B, n_frames, output_dim)`` motion at any frame
rate and exposes ``encoder``, ``decoder``, ``head`` and ``replace_head`` (see
:class:`~pseudo3d.training.models.base.SpeechToMotion`).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from pseudo3d.training.models.base import SpeechToMotion
from pseudo3d.training.models.config import ModelConfig
from pseudo3d.training.models.convrnn import ConvRNNModel
from pseudo3d.training.models.hierarchical import HierarchicalModel

MODEL_KINDS: dict[str, Callable[[ModelConfig], SpeechToMotion]] = {
    "hierarchical": HierarchicalModel,
    "convrnn": ConvRNNModel,
}


def build_model(config: ModelConfig) -> SpeechToMotion:
    """A freshly initialised model of ``config.kind`` (seed with ``torch.manual_seed`` first for
    reproducible weights)."""
    if not isinstance(config, ModelConfig):
        raise TypeError(f"build_model needs a ModelConfig, got {type(config).__name__}")
    return MODEL_KINDS[config.kind](config)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (optionally only those with ``requires_grad``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


__all__ = ["MODEL_KINDS", "ModelConfig", "SpeechToMotion", "build_model", "count_parameters"]
