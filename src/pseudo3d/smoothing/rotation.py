"""Savitzky–Golay smoothing of rotation sequences without wrap-around artefacts.

Smoothing axis-angle vectors component by component breaks whenever the representation jumps:
a head turning through a half-turn flips its rotation vector from ``+pi * axis`` to
``-pi * axis`` between two frames, although the rotation barely moved. Unit quaternions have no
such jump once consecutive signs agree, and for the small frame-to-frame changes of a face track
their normalised component-wise average is an accurate rotation average.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from pseudo3d.geometry.rotations import (
    axis_angle_to_quaternion,
    make_quaternions_continuous,
    nearest_equivalent_axis_angle,
    quaternion_to_axis_angle,
)
from pseudo3d.smoothing.savgol import savgol_smooth


def smooth_rotations(rotvec: ArrayLike, window_s: float, fps: float, polyorder: int) -> NDArray[np.float64]:
    """Smooth axis-angle rotations ``(T, ..., 3)`` (radians) along time, axis 0.

    Steps: axis-angle -> unit quaternions ``(w, x, y, z)`` -> signs made continuous along time ->
    :func:`~pseudo3d.smoothing.savgol.savgol_smooth` on the four components (same window rules
    and short-clip behaviour) -> renormalised -> axis-angle. Trailing axes (several joints) are
    smoothed independently.

    Each output vector is the equivalent axis-angle (angle plus a multiple of 2 pi) nearest to
    the input vector of the same frame, so the output stays on the input's branch: a smooth
    input comes back nearly unchanged component by component, whatever its angles.

    Returns:
        A new float64 array ``(T, ..., 3)``.
    """
    rotvec = np.asarray(rotvec, dtype=np.float64)
    if rotvec.ndim < 2 or rotvec.shape[-1] != 3:
        raise ValueError(f"rotvec must have shape (T, ..., 3), got {rotvec.shape}")
    quaternions = make_quaternions_continuous(axis_angle_to_quaternion(rotvec))
    smoothed = savgol_smooth(quaternions, window_s, fps, polyorder)
    norm = np.linalg.norm(smoothed, axis=-1, keepdims=True)
    # Continuous unit quaternions cannot average to zero within one short window; keep the raw
    # frame if rounding ever gets close.
    smoothed = np.where(norm > 1e-6, smoothed / np.maximum(norm, 1e-6), quaternions)
    return nearest_equivalent_axis_angle(quaternion_to_axis_angle(smoothed), rotvec)
