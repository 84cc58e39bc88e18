"""Temporal smoothing of per-frame parameters: Savitzky–Golay with windows in seconds,
rotation-aware (quaternion) smoothing, and gap filling/splitting for tracking dropouts.

The names below load their module on first use (PEP 562), so that ``pseudo3d.config``, which
needs only :class:`SmoothingSpec`, does not pull SciPy's signal package into every process that
reads a configuration (about 0.7 s; ``bench/bench_import.py``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_MODULES = {
    "SMOOTHERS": "smoother",
    "SmoothingSpec": "config",
    "interpolate_gaps": "gaps",
    "interpolate_rotation_gaps": "gaps",
    "savgol_smooth": "savgol",
    "smooth_group": "smoother",
    "smooth_rotations": "rotation",
    "window_frames": "savgol",
}

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

if TYPE_CHECKING:
    from pseudo3d.smoothing.config import SmoothingSpec
    from pseudo3d.smoothing.gaps import interpolate_gaps, interpolate_rotation_gaps
    from pseudo3d.smoothing.rotation import smooth_rotations
    from pseudo3d.smoothing.savgol import savgol_smooth, window_frames
    from pseudo3d.smoothing.smoother import SMOOTHERS, smooth_group


def __getattr__(name: str) -> Any:
    if name not in _MODULES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_MODULES[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
