"""The report's palette and matplotlib style, shared by the figures and the page's CSS."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # matplotlib.typing is 3.8+; the pin allows 3.7
    from matplotlib.typing import RcKeyType

INK = "#1d2433"
"""Text and axes."""
MUTED = "#667085"
"""Secondary text, ticks."""
RULE = "#e4e7ec"
"""Grid lines, table rules."""
PAPER = "#ffffff"
CANVAS = "#f6f7f9"
"""Page background."""
ACCENT = "#2f6690"
"""Kept data: bars, points, lines."""
ACCENT_LIGHT = "#a9c6de"
"""The same series before processing (raw jitter, input time)."""
ALERT = "#c2410c"
"""Thresholds, rejected clips, failures."""
ALERT_LIGHT = "#fbe3d6"
GOOD = "#2e7d4f"
WARN = "#b7791f"
AUDIO = "#8c7b6b"
"""The audio envelope, beside the mouth opening."""

FIGURE_RC: dict[RcKeyType, Any] = {
    "font.family": "DejaVu Sans",
    "font.size": 8.5,
    "axes.edgecolor": MUTED,
    "axes.labelcolor": INK,
    "axes.titlesize": 9.5,
    "axes.titleweight": "bold",
    "axes.titlecolor": INK,
    "axes.titlelocation": "left",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.grid.axis": "y",
    "grid.color": RULE,
    "grid.linewidth": 0.8,
    "xtick.color": MUTED,
    "ytick.color": MUTED,
    "legend.frameon": False,
    "legend.fontsize": 7.5,
    "figure.facecolor": PAPER,
    "axes.facecolor": PAPER,
}
"""matplotlib rc settings for every figure (applied with ``matplotlib.rc_context``)."""
