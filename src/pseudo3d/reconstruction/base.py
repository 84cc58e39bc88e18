"""The interface every reconstruction backend implements.

A backend turns tracked clips into per-frame parameter arrays. The base class owns what all
backends share (looping over clips with per-clip failures, naming the smoothing groups, asset
hashes for the card); a backend writes one hook, :meth:`Reconstructor.reconstruct_clip`, or
overrides :meth:`Reconstructor.reconstruct_batch` to batch frames across clips on a GPU.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar, Literal, Mapping

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

    def asset_hashes(self) -> dict[str, str]:
        """Name → SHA-256 (or version) of every asset the backend loaded, for meta and the card."""
        return {}

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
        return results
