"""Typed training options shared by ``pretrain`` and ``finetune`` (each checks itself and names
the bad field)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

from pseudo3d.errors import ConfigError, require



@dataclass(frozen=True)
class TrainConfig:
    steps: int = 2000
    """Optimiser steps."""
    batch_size: int = 16
    """Windows per step."""
    window_s: float = 2.0
    """Window length in seconds (converted to frames at the data's frame rate)."""
    learning_rate: float = 3e-4
    """AdamW peak learning rate (linear warm-up, cosine decay to a tenth)."""
    warmup_steps: int = 100
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    """Gradient-norm clip (0 disables)."""
    velocity_weight: float = 1.0
    """Weight of the velocity (first-difference) loss relative to the reconstruction loss."""
    lip_weight: float = 2.0
    """Extra weight on lip vertices in the vertex loss, when the target has vertices (0 disables)."""
    seed: int = 0
    num_workers: int = 2
    """DataLoader worker processes."""
    shuffle_buffer: int = 256
    log_every: int = 10
    """Steps between metric lines (JSONL, TensorBoard, progress bar)."""
    val_every: int = 0
    """Steps between validation passes (0: only at the end; finetune data has a validation split)."""
    checkpoint_every: int = 500
    """Steps between resumable checkpoints."""
    norm_windows: int = 20_000
    """Windows the pretraining normalisation statistics are computed from: the first of epoch 0's
    seeded stream (shards in the seed's order, datasets mixed by weight, shuffled), read by one
    reader, targets only (no audio decoded)."""
    device: str = "auto"
    audio_shuffle: bool = False
    """Control run: pair every window with another window's audio (the model cannot use audio)."""
    freeze_encoder: bool = False
    """Finetune: keep the audio encoder's weights fixed."""
    new_head: bool = False
    """Finetune: replace the output head (a new topology or output kind)."""

    def __post_init__(self):
        for name in ("steps", "batch_size", "log_every", "checkpoint_every", "norm_windows"):
            require(getattr(self, name) >= 1, f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("warmup_steps", "num_workers", "val_every", "seed"):
            require(getattr(self, name) >= 0, f"{name} must be >= 0, got {getattr(self, name)}")
        require(0.2 <= self.window_s <= 30, f"window_s must be in [0.2, 30] seconds, got {self.window_s}")
        require(0 < self.learning_rate < 1, f"learning_rate must be in (0, 1), got {self.learning_rate}")
        for name in ("weight_decay", "grad_clip", "velocity_weight", "lip_weight"):
            require(getattr(self, name) >= 0, f"{name} must be >= 0, got {getattr(self, name)}")
        require(self.shuffle_buffer >= 1, f"shuffle_buffer must be >= 1, got {self.shuffle_buffer}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TrainConfig":
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown training option {unknown[0]}; known: {', '.join(sorted(known))}")
        return cls(**data)

    def replace(self, **changes: Any) -> "TrainConfig":
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})
