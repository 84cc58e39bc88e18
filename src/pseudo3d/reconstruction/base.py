"""The interface every reconstruction backend implements.

A backend turns tracked clips into per-frame parameter arrays. The base class owns what all
backends share (looping over clips with per-clip failures, naming the smoothing groups, asset
hashes for the card); a backend writes one hook, :meth:`Reconstructor.reconstruct_clip`, or derives from
:class:`BatchReconstructor` and writes :meth:`~BatchReconstructor.reconstruct_batch` to batch
frames across clips on a GPU.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Callable, ClassVar, Literal, Mapping

import numpy as np

from pseudo3d.errors import StageError
from pseudo3d.schemas.records import Clip

SmoothingKind = Literal["linear", "rotation"]

class Reconstructor(ABC):
    name: ClassVar[str]
    smoothed: ClassVar[Mapping[str, SmoothingKind]] = {}
    """Output arrays that are smoothed: array name (= smoothing group) → how. Each is written
    twice, as ``NAME_raw`` and ``NAME_smooth``; other arrays are written as they are."""
    per_clip: ClassVar[frozenset[str]] = frozenset()
    """Output arrays that describe the whole clip (first axis is not the frame axis)."""
    on_progress: Callable[[], None] | None = None
    """Called after each clip (or each batch of a batched backend): proof of life for the runner's
    stall watch."""

    def progress(self) -> None:
        if self.on_progress is not None:
            self.on_progress()

    def asset_hashes(self) -> dict[str, str]:
        """Name → SHA-256 (or version) of every asset the backend loaded, for meta and the card."""
        return {}

    def numerics(self) -> dict[str, str]:
        """Where and in what precision the backend computes (``device``, ``precision``; a torch
        backend adds its PyTorch/CUDA/cuDNN versions): recorded per shard and in the card, and a
        resume must match ``device`` and ``precision``. The base: NumPy/MediaPipe on the CPU."""
        return {"device": "cpu", "precision": "fp32"}

    @abstractmethod
    def reconstruct_clip(self, clip: Clip) -> dict[str, np.ndarray]:
        """Per-frame arrays for one clip; the first axis of each is the frame axis."""

    def reconstruct_batch(self, clips: list[Clip]) -> list[dict[str, np.ndarray] | StageError]:
        """One entry per clip, in order: its arrays, or the ``StageError`` that failed it."""
        results: list[dict[str, np.ndarray] | StageError] = []
        for clip in clips:
            try:
                results.append(self.reconstruct_clip(clip))
            except StageError as error:
                results.append(error)
            self.progress()
        return results


class BatchReconstructor(Reconstructor):
    """A backend whose work is done on many clips at once (batches spanning clips and sources):
    it writes :meth:`reconstruct_batch`, and one clip is a batch of one."""

    @abstractmethod
    def reconstruct_batch(self, clips: list[Clip]) -> list[dict[str, np.ndarray] | StageError]:
        """One entry per clip, in order: its arrays, or the ``StageError`` that failed it."""

    def reconstruct_clip(self, clip: Clip) -> dict[str, np.ndarray]:
        result = self.reconstruct_batch([clip])[0]
        if isinstance(result, StageError):
            raise result
        return result
