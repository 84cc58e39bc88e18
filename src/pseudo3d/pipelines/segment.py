"""Cut a source's per-frame track into clips.

A clip is a run of frames of one continuous face track within one shot. Boundaries come from:

* shot cuts (``cut_before[k]``: frame ``k`` starts a new shot);
* jumps: the face centre moving more than ``max_jump`` face sizes between two tracked frames
  (a cut the histogram missed, or the tracker switching to another face);
* tracking gaps longer than ``max_gap`` frames (shorter gaps are interpolated and flagged).

Runs shorter than ``min_frames`` are dropped and reported; runs longer than ``max_frames`` are
split into equal parts. All of this is pure array logic, so it is tested without video.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pseudo3d.smoothing import interpolate_gaps


@dataclass(frozen=True)
class Segmentation:
    clips: list[tuple[int, int]]
    """Half-open frame ranges of the clips to keep, in order."""
    too_short: list[tuple[int, int]]
    """Half-open frame ranges of face tracks dropped for being shorter than ``min_frames``."""
    landmarks: np.ndarray
    """(T, N, 3) landmarks with short gaps filled (other lost frames stay NaN)."""
    interpolated: np.ndarray
    """(T,) bool, frames whose landmarks were filled."""


def face_centres_and_sizes(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame centre (T, 2) and size (T,) of the landmark bounding box (NaN when lost)."""
    low = landmarks[..., :2].min(axis=1)
    high = landmarks[..., :2].max(axis=1)
    size = np.sqrt(np.prod(high - low, axis=1))
    return (low + high) / 2.0, size


def segment_track(landmarks: np.ndarray, tracked: np.ndarray, cut_before: np.ndarray, *,
                  max_gap: int, min_frames: int, max_frames: int, max_jump: float) -> Segmentation:
    """Split a track into clips.

    ``landmarks``: (T, N, 3) pixels, arbitrary where ``tracked`` is False; ``tracked``: (T,) bool;
    ``cut_before``: (T,) bool. Frame counts are on the output grid.
    """
    n_frames = landmarks.shape[0]
    tracked = np.asarray(tracked, bool)
    breaks = np.asarray(cut_before, bool).copy()
    breaks |= _jumps(landmarks, tracked, max_jump)

    filled = np.full(landmarks.shape, np.nan, np.float32)
    interpolated = np.zeros(n_frames, bool)
    runs: list[tuple[int, int]] = []
    shot_starts = [0, *np.flatnonzero(breaks[1:]) + 1, n_frames]
    for start, stop in zip(shot_starts[:-1], shot_starts[1:]):
        if stop <= start:
            continue
        values, mask, segments = interpolate_gaps(landmarks[start:stop], tracked[start:stop], max_gap)
        usable = np.zeros(stop - start, bool)
        for a, b in segments:
            usable[a:b] = True
        filled[start:stop][usable] = values[usable]
        interpolated[start:stop] = mask
        runs.extend((start + a, start + b) for a, b in segments)

    clips, too_short = [], []
    for start, stop in runs:
        if stop - start < min_frames:
            too_short.append((start, stop))
        else:
            clips.extend(_split_evenly(start, stop, max_frames))
    return Segmentation(clips=clips, too_short=too_short, landmarks=filled, interpolated=interpolated)


def _jumps(landmarks: np.ndarray, tracked: np.ndarray, max_jump: float) -> np.ndarray:
    """(T,) bool: tracked frames whose face centre moved more than ``max_jump`` face sizes since
    the previous tracked frame."""
    breaks = np.zeros(landmarks.shape[0], bool)
    indices = np.flatnonzero(tracked)
    if indices.size < 2:
        return breaks
    centres, sizes = face_centres_and_sizes(landmarks[indices])
    moved = np.linalg.norm(np.diff(centres, axis=0), axis=1)
    scale = np.minimum(sizes[1:], sizes[:-1])
    resized = np.abs(np.log(sizes[1:] / sizes[:-1])) > math.log(1.0 + max_jump)
    breaks[indices[1:][(moved > max_jump * scale) | resized]] = True
    return breaks


def _split_evenly(start: int, stop: int, max_frames: int) -> list[tuple[int, int]]:
    parts = math.ceil((stop - start) / max_frames)
    edges = np.linspace(start, stop, parts + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]
