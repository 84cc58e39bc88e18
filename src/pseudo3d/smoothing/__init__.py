"""Temporal smoothing of per-frame parameters: Savitzky–Golay with windows in seconds,
rotation-aware (quaternion) smoothing, and gap filling/splitting for tracking dropouts."""

from pseudo3d.smoothing.config import SmoothingSpec
from pseudo3d.smoothing.gaps import interpolate_gaps, interpolate_rotation_gaps
from pseudo3d.smoothing.rotation import smooth_rotations
from pseudo3d.smoothing.savgol import savgol_smooth, window_frames
from pseudo3d.smoothing.smoother import SMOOTHERS, smooth_group

__all__ = [
    "SMOOTHERS",
    "SmoothingSpec",
    "interpolate_gaps",
    "interpolate_rotation_gaps",
    "savgol_smooth",
    "smooth_group",
    "smooth_rotations",
    "window_frames",
]
