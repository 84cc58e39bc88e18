"""The interface every reconstruction backend implements.

A backend turns tracked clips into per-frame parameter arrays. The base class owns what all
backends share (batching over clips, naming the smoothing groups, asset hashes for the card);
a backend writes one hook, :meth:`Reconstructor.reconstruct_clip` (or overrides
:meth:`Reconstructor.reconstruct_batch` to batch frames across clips on a GPU).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar, Literal, Mapping

import numpy as np

from pseudo3d.schemas.records import Clip

SmoothingKind = Literal["linear", "rotation"]


class Reconstructor(ABC):
    name: ClassVar[str]
    needs_crops: ClassVar[bool] = False
    """True when the backend consumes the 224×224 face crops rather than the landmarks."""
    smoothed: ClassVar[Mapping[str, SmoothingKind]] = {}
    """Output arrays that are smoothed: array name (= smoothing group) → how. Each is written
    twice, as ``NAME_raw`` and ``NAME_smooth``; other arrays are written as they are."""

    def asset_hashes(self) -> dict[str, str]:
        """Name → SHA-256 (or version) of every asset the backend loaded, for meta and the card."""
        return {}

    @abstractmethod
    def reconstruct_clip(self, clip: Clip) -> dict[str, np.ndarray]:
        """Per-frame arrays for one clip; the first axis of each is the frame axis."""

    def reconstruct_batch(self, clips: list[Clip]) -> list[dict[str, np.ndarray]]:
        return [self.reconstruct_clip(clip) for clip in clips]
