"""Filling short tracking gaps and splitting sequences at long ones.

A tracker loses the face now and then. Short dropouts are bridged by interpolation along time;
long dropouts (and invalid frames at either end) cannot be bridged honestly, so they cut the
sequence into separate usable segments.

Rules shared by :func:`interpolate_gaps` and :func:`interpolate_rotation_gaps`:

* a *gap* is a maximal run of consecutive invalid frames;
* a gap is **filled** when it has a valid frame on both sides and its length is ``<= max_gap``
  frames; filled frames are flagged in ``interpolated_mask``;
* every other invalid frame is left as it was and belongs to no segment;
* ``segments`` lists the maximal runs of usable (valid or filled) frames as half-open
  ``(start, end)`` frame ranges, in order.

Example with ``max_gap=2`` (``.`` valid, ``x`` invalid)::

    frame:   0 1 2 3 4 5 6 7 8 9
    valid:   x . . x x . x x x .
    filled:        ^ ^               -> interpolated_mask at frames 3 and 4
    segments: [(1, 6), (9, 10)]      -> frame 0 is leading, frames 6-8 are a gap of 3 > 2
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from pseudo3d.geometry.rotations import axis_angle_to_quaternion, quaternion_slerp, quaternion_to_axis_angle


@dataclass(frozen=True)
class _GapPlan:
    """Where to fill and from what: per-frame neighbour indices and blend fractions."""

    fill: NDArray[np.bool_]  # (T,) frames to interpolate
    before: NDArray[np.intp]  # (T,) nearest valid frame at or before each frame (-1 if none)
    after: NDArray[np.intp]  # (T,) nearest valid frame at or after each frame (T if none)
    fraction: NDArray[np.float64]  # (T,) position between before (0) and after (1)
    segments: list[tuple[int, int]]


def _plan_gaps(valid: ArrayLike, n_frames: int, max_gap: int) -> _GapPlan:
    if isinstance(max_gap, bool) or not isinstance(max_gap, numbers.Integral) or max_gap < 0:
        raise ValueError(f"max_gap must be an integer >= 0 frames, got {max_gap!r}")
    valid = np.asarray(valid)
    if valid.dtype != np.bool_ or valid.shape != (n_frames,):
        raise ValueError(f"valid must be a boolean array of shape ({n_frames},), got {valid.dtype} {valid.shape}")
    frames = np.arange(n_frames)
    before = np.maximum.accumulate(np.where(valid, frames, -1))
    after = np.minimum.accumulate(np.where(valid, frames, n_frames)[::-1])[::-1]
    gap_length = after - before - 1
    fill = ~valid & (before >= 0) & (after < n_frames) & (gap_length <= max_gap)
    span = np.where(fill, after - before, 1)
    fraction = np.where(fill, (frames - before) / span, 0.0)

    usable = np.concatenate([[False], valid | fill, [False]]).astype(np.int8)
    edges = np.diff(usable)
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)
    segments = [(int(start), int(end)) for start, end in zip(starts, ends)]
    return _GapPlan(fill=fill, before=before, after=after, fraction=fraction, segments=segments)


def interpolate_gaps(
    x: ArrayLike, valid: ArrayLike, max_gap: int
) -> tuple[NDArray[np.float64], NDArray[np.bool_], list[tuple[int, int]]]:
    """Linearly interpolate short gaps in ``x`` along time (see the module docstring for the rules).

    Args:
        x: ``(T, ...)`` per-frame values; only valid frames are read.
        valid: ``(T,)`` boolean, True where the frame's values can be trusted.
        max_gap: the longest gap, in frames, that is filled.

    Returns:
        ``(filled, interpolated_mask, segments)``: a float64 copy of ``x`` ``(T, ...)`` with the
        short gaps filled (straight lines between the two bounding valid frames, so linear
        signals are reproduced exactly), a ``(T,)`` boolean mask of the filled frames, and the
        half-open ``(start, end)`` frame ranges of usable frames.

    Raises:
        ValueError: naming ``x``, ``valid`` or ``max_gap`` when they are malformed.
    """
    filled = np.array(x, dtype=np.float64)
    if filled.ndim == 0:
        raise ValueError("x must have a time axis: shape (T, ...), got a scalar")
    plan = _plan_gaps(valid, filled.shape[0], max_gap)
    if np.any(plan.fill):
        frames = np.flatnonzero(plan.fill)
        weight = plan.fraction[frames].reshape((-1,) + (1,) * (filled.ndim - 1))
        filled[frames] = (1.0 - weight) * filled[plan.before[frames]] + weight * filled[plan.after[frames]]
    return filled, plan.fill, plan.segments


def interpolate_rotation_gaps(
    rotvec: ArrayLike, valid: ArrayLike, max_gap: int
) -> tuple[NDArray[np.float64], NDArray[np.bool_], list[tuple[int, int]]]:
    """Fill short gaps in axis-angle rotations by quaternion slerp (rules in the module docstring).

    Args:
        rotvec: ``(T, ..., 3)`` axis-angle rotations in radians (e.g. ``(T, 3)`` head pose).
        valid: ``(T,)`` boolean, True where the frame's rotation can be trusted.
        max_gap: the longest gap, in frames, that is filled.

    Returns:
        ``(filled, interpolated_mask, segments)`` as :func:`interpolate_gaps`. A filled frame
        rotates at constant angular speed along the shorter arc between its two bounding valid
        frames, and is written as axis-angle with angle in ``[0, pi]``; valid frames are
        returned unchanged.
    """
    filled = np.array(rotvec, dtype=np.float64)
    if filled.ndim < 2 or filled.shape[-1] != 3:
        raise ValueError(f"rotvec must have shape (T, ..., 3), got {filled.shape}")
    plan = _plan_gaps(valid, filled.shape[0], max_gap)
    if np.any(plan.fill):
        frames = np.flatnonzero(plan.fill)
        start = axis_angle_to_quaternion(filled[plan.before[frames]])
        end = axis_angle_to_quaternion(filled[plan.after[frames]])
        fraction = plan.fraction[frames].reshape((-1,) + (1,) * (filled.ndim - 2))
        filled[frames] = quaternion_to_axis_angle(quaternion_slerp(start, end, fraction))
    return filled, plan.fill, plan.segments
