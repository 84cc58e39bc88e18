"""Smooth stage: each backend output named in ``Reconstructor.smoothed`` is kept raw and smoothed.

Savitzky–Golay windows are given in seconds and converted with the clip's frame rate; rotations
are smoothed as continuous unit quaternions (see :mod:`pseudo3d.smoothing`).
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from pseudo3d.config import SmoothingConfig
from pseudo3d.errors import ConfigError
from pseudo3d.reconstruction.base import SmoothingKind
from pseudo3d.smoothing import smooth_group, window_frames


class Smooth:
    def __init__(self, config: SmoothingConfig, smoothed: Mapping[str, SmoothingKind]):
        missing = [name for name in smoothed if not hasattr(config, name)]
        if missing:
            raise ConfigError(f"smoothing has no settings for group(s) {', '.join(missing)}")
        self.specs = {name: (getattr(config, name), kind) for name, kind in smoothed.items()}

    def __call__(self, arrays: Mapping[str, np.ndarray], fps: float) -> dict[str, np.ndarray]:
        """``NAME`` → ``NAME_raw`` and ``NAME_smooth`` for smoothed groups; others unchanged."""
        out = {}
        for name, values in arrays.items():
            if name not in self.specs:
                out[name] = values
                continue
            spec, kind = self.specs[name]
            out[f"{name}_raw"] = values
            out[f"{name}_smooth"] = smooth_group(values, spec, fps, kind).astype(values.dtype)
        return out

    def describe(self, fps: float) -> dict[str, Any]:
        """The settings as they apply at ``fps``, for each sample's meta.json."""
        return {name: {"window_s": spec.window_s, "polyorder": spec.polyorder, "enabled": spec.enabled,
                       "window_frames": window_frames(spec.window_s, fps, spec.polyorder), "kind": kind}
                for name, (spec, kind) in self.specs.items()}
