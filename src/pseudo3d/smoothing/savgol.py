"""Savitzky–Golay smoothing along time with the window given in seconds.

A window in seconds means the same amount of smoothing at any frame rate; these helpers turn it
into the odd frame count ``scipy.signal.savgol_filter`` needs.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.signal import savgol_filter

# Products like 0.2 s * 30 fps land a hair off an exact tie; treat them as the tie.
_TIE_TOLERANCE = 1e-9


def _check_positive_finite(value: float, name: str, unit: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number in {unit}, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be > 0 {unit}, got {value}")
    return float(value)


def _check_polyorder(polyorder: int) -> int:
    if isinstance(polyorder, bool) or not isinstance(polyorder, numbers.Integral) or polyorder < 0:
        raise ValueError(f"polyorder must be an integer >= 0, got {polyorder!r}")
    return int(polyorder)


def _smallest_useful_window(polyorder: int) -> int:
    """Smallest odd window that actually smooths: a window of polyorder + 1 fits exactly."""
    return polyorder + 2 if polyorder % 2 == 1 else polyorder + 3


def window_frames(window_s: float, fps: float, polyorder: int) -> int:
    """Savitzky–Golay window length in frames for a window of ``window_s`` seconds at ``fps``.

    Rounding: ``window_s * fps`` goes to the **nearest odd integer, ties upwards** (6 -> 7,
    5.9 -> 5, 4.2 -> 5), then is raised to the smallest odd count ``>= polyorder + 2``, below
    which the polynomial fits the window exactly and nothing is smoothed. Examples with
    ``polyorder=2``: 0.2 s at 25 fps -> 5 frames, 0.2 s at 30 fps -> 7, 0.2 s at 60 fps -> 13,
    0.1 s at 25 fps -> 5 (raised from 3).

    Raises:
        ValueError: naming ``window_s`` or ``fps`` if not a finite number > 0, or ``polyorder``
            if not an integer >= 0.
    """
    window_s = _check_positive_finite(window_s, "window_s", "seconds")
    fps = _check_positive_finite(fps, "fps", "frames per second")
    polyorder = _check_polyorder(polyorder)
    frames = window_s * fps
    nearest_odd = 2 * math.floor((frames - 1.0) / 2.0 + 0.5 + _TIE_TOLERANCE) + 1
    return max(nearest_odd, _smallest_useful_window(polyorder))


def savgol_smooth(x: ArrayLike, window_s: float, fps: float, polyorder: int) -> NDArray[np.float64]:
    """Smooth ``x`` ``(T, ...)`` along axis 0 (time) with a Savitzky–Golay filter.

    The window is :func:`window_frames` ``(window_s, fps, polyorder)``; edges use scipy's
    ``mode="interp"`` (a polynomial fitted to the first/last window), so no padding values are
    invented. Polynomials of degree ``<= polyorder`` in time pass through unchanged.

    Short clips never raise: when ``T`` is below the window, the window shrinks to the largest
    odd length ``<= T``; if that is still below ``polyorder + 2`` (too short to smooth), a
    float64 copy of ``x`` is returned unchanged.

    ``x`` should be finite: a NaN spreads to every output frame whose window contains it. Fill
    gaps with :func:`pseudo3d.smoothing.gaps.interpolate_gaps` and smooth each segment on its own.

    Returns:
        A new float64 array with the shape of ``x``.
    """
    window = window_frames(window_s, fps, polyorder)
    x = np.array(x, dtype=np.float64)
    if x.ndim == 0:
        raise ValueError("x must have a time axis: shape (T, ...), got a scalar")
    n_frames = x.shape[0]
    if n_frames < window:
        window = n_frames if n_frames % 2 == 1 else n_frames - 1
    if window < _smallest_useful_window(polyorder):
        return x
    return savgol_filter(x, window_length=window, polyorder=polyorder, axis=0, mode="interp")
