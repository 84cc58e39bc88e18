"""Smoothing settings, checked when constructed."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

from pseudo3d.errors import ConfigError

MAX_POLYORDER = 5


@dataclass(frozen=True)
class SmoothingSpec:
    """How one parameter group is smoothed over time.

    Attributes:
        window_s: Savitzky–Golay window in seconds (> 0); converted to frames at the clip's
            frame rate by :func:`pseudo3d.smoothing.savgol.window_frames` (nearest odd count).
            The default 0.2 s is 5 frames at 25 fps.
        polyorder: degree of the local polynomial, 0 to 5. Higher keeps sharper motion (lip
            closures) but removes less jitter.
        enabled: False passes the data through unchanged.

    Raises:
        ConfigError: a ``ValueError`` naming the bad field.
    """

    window_s: float = 0.2
    polyorder: int = 2
    enabled: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.window_s, bool) or not isinstance(self.window_s, numbers.Real):
            raise ConfigError(f"window_s must be a number of seconds, got {self.window_s!r}")
        if not math.isfinite(self.window_s) or self.window_s <= 0:
            raise ConfigError(f"window_s must be > 0 seconds, got {self.window_s}")
        if isinstance(self.polyorder, bool) or not isinstance(self.polyorder, numbers.Integral):
            raise ConfigError(f"polyorder must be an integer, got {self.polyorder!r}")
        if not 0 <= self.polyorder <= MAX_POLYORDER:
            raise ConfigError(f"polyorder must be in [0, {MAX_POLYORDER}], got {self.polyorder}")
        if not isinstance(self.enabled, bool):
            raise ConfigError(f"enabled must be true or false, got {self.enabled!r}")
