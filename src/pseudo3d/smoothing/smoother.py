"""Smoothing one parameter group of a clip according to its :class:`SmoothingSpec`."""

from __future__ import annotations

from typing import Callable

import numpy as np
from numpy.typing import ArrayLike, NDArray

from pseudo3d.smoothing.config import SmoothingSpec
from pseudo3d.smoothing.rotation import smooth_rotations
from pseudo3d.smoothing.savgol import savgol_smooth

# kind -> smoother(x, window_s, fps, polyorder)
SMOOTHERS: dict[str, Callable[[ArrayLike, float, float, int], NDArray[np.float64]]] = {
    "linear": savgol_smooth,
    "rotation": smooth_rotations,
}


def smooth_group(x: ArrayLike, spec: SmoothingSpec, fps: float, kind: str = "linear") -> NDArray[np.float64]:
    """Smooth one parameter group ``x`` along time (axis 0).

    Args:
        x: ``(T, ...)`` values; for ``kind="rotation"``, axis-angle rotations ``(T, ..., 3)``
            in radians.
        spec: window (seconds), polynomial order and on/off switch.
        fps: the clip's frame rate, frames per second.
        kind: ``"linear"`` for plain Savitzky–Golay on each component (expression or shape
            codes, translations, landmark coordinates), ``"rotation"`` for axis-angle
            rotations smoothed through quaternions (:func:`smooth_rotations`).

    Returns:
        A new float64 array of the shape of ``x``; an unchanged copy when ``spec.enabled`` is False.

    Raises:
        ValueError: naming ``kind`` if it is unknown, or the offending argument from the smoother.
    """
    if kind not in SMOOTHERS:
        raise ValueError(f"kind must be one of {sorted(SMOOTHERS)}, got {kind!r}")
    if not spec.enabled:
        return np.array(x, dtype=np.float64)
    return SMOOTHERS[kind](x, spec.window_s, fps, spec.polyorder)
