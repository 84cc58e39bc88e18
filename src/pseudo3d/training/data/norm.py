"""Per-dimension normalisation statistics of the targets: :class:`NormStats`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import numpy as np
import torch

MIN_STD = 1e-4
"""Default floor for the standard deviation, in target units: dimensions that barely move (the
back of a head, a blendshape never used) are not blown up by normalisation."""


@dataclass(frozen=True)
class NormStats:
    """Target mean and standard deviation per dimension over all frames seen."""

    mean: np.ndarray
    """(D,) float32."""
    std: np.ndarray
    """(D,) float32, already floored (never below the ``min_std`` it was computed with)."""
    count: int = 0
    """Frames the statistics were computed from."""

    def to_tensors(self, prefix: str = "") -> dict[str, torch.Tensor]:
        """``{prefix + "mean": (D,), prefix + "std": (D,)}`` float32 tensors (safetensors-ready)."""
        return {f"{prefix}mean": torch.from_numpy(self.mean.astype(np.float32).copy()),
                f"{prefix}std": torch.from_numpy(self.std.astype(np.float32).copy())}

    @classmethod
    def from_tensors(cls, tensors: Mapping[str, Any], prefix: str = "") -> "NormStats":
        missing = [f"{prefix}{name}" for name in ("mean", "std") if f"{prefix}{name}" not in tensors]
        if missing:
            raise KeyError(f"NormStats.from_tensors: missing {', '.join(missing)}")
        mean = np.asarray(tensors[f"{prefix}mean"], np.float32).reshape(-1)
        std = np.asarray(tensors[f"{prefix}std"], np.float32).reshape(-1)
        if mean.shape != std.shape:
            raise ValueError(f"NormStats.from_tensors: mean {mean.shape} and std {std.shape} differ in shape")
        if not np.all(std > 0):
            raise ValueError("NormStats.from_tensors: std must be positive everywhere")
        return cls(mean=mean, std=std)


def compute_norm_stats(windows: Iterable[Mapping[str, Any]], max_windows: int | None = None,
                       min_std: float = MIN_STD) -> NormStats:
    """Mean and std of ``target`` over every frame of the first ``max_windows`` windows (all
    when None) of a dataset or iterable of windows — or of batches, ``target`` (B, T, D) — in
    one pass, in float64 (Chan's pairwise update), so the result depends only on the windows
    and their order. Windows that overlap count their shared frames twice."""
    if max_windows is not None and max_windows < 1:
        raise ValueError(f"max_windows must be >= 1 or None, got {max_windows}")
    count, mean, m2 = 0, None, None
    seen = 0
    for item in windows:
        target = np.asarray(item["target"], np.float64)
        batch = target if target.ndim == 3 else target[None]
        if max_windows is not None:
            batch = batch[: max_windows - seen]
        seen += batch.shape[0]
        frames = batch.reshape(-1, batch.shape[-1])
        if frames.shape[0] == 0:
            continue
        batch_mean = frames.mean(axis=0)
        batch_m2 = ((frames - batch_mean) ** 2).sum(axis=0)
        if mean is None:
            count, mean, m2 = frames.shape[0], batch_mean, batch_m2
        else:
            if batch_mean.shape != mean.shape:
                raise ValueError(f"window {seen}: target has {batch_mean.shape[0]} values per frame, "
                                 f"earlier ones {mean.shape[0]}")
            total = count + frames.shape[0]
            delta = batch_mean - mean
            mean = mean + delta * (frames.shape[0] / total)
            m2 = m2 + batch_m2 + delta ** 2 * (count * frames.shape[0] / total)
            count = total
        if max_windows is not None and seen >= max_windows:
            break
    if mean is None or m2 is None:  # (set together)
        raise ValueError("compute_norm_stats: no windows to compute statistics from")
    std = np.sqrt(m2 / count)
    return NormStats(mean=mean.astype(np.float32), std=np.maximum(std, min_std).astype(np.float32), count=int(count))
