"""Number formatting shared by the HTML page and the terminal summary (plain text, no markup)."""

from __future__ import annotations

import math
from pathlib import PurePosixPath


def duration(seconds: float | None) -> str:
    """Seconds as the most readable unit: ``48.6 s``, ``12.3 min``, ``4.21 h``; ``—`` if unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "—"
    if abs(seconds) < 90:
        return f"{seconds:.3g} s" if abs(seconds) < 1 else f"{seconds:.1f} s"
    if abs(seconds) < 90 * 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def number(value: float | None, digits: int = 3) -> str:
    """A metric value with ``digits`` significant digits; ``—`` for None or NaN."""
    if value is None or not math.isfinite(value):
        return "—"
    if value != 0 and (abs(value) >= 10 ** (digits + 1) or abs(value) < 1e-3):
        return f"{value:.{digits - 1}e}"
    return f"{value:.{digits}g}"


def percent(part: float, whole: float) -> str:
    """``part / whole`` as a percentage (``—`` when ``whole`` is 0)."""
    if not whole or not math.isfinite(whole) or not math.isfinite(part):
        return "—"
    share = 100.0 * part / whole
    return f"{share:.0f}%" if share >= 10 or share == 0 else f"{share:.1f}%"


def plural(count: int, word: str) -> str:
    """``1 input``, ``3 inputs``."""
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def file_name(uri: str | None) -> str:
    """The last path component of a path or URL (``—`` if missing)."""
    if not uri:
        return "—"
    return PurePosixPath(str(uri).rstrip("/").replace("\\", "/")).name or str(uri)


def built_at(value: str | None) -> str:
    """``2026-11-22T17:55:59+00:00`` → ``2026-11-22 17:55 UTC``; other strings unchanged."""
    if not value:
        return "unknown"
    text = str(value)
    if len(text) >= 16 and text[10] == "T":
        zone = " UTC" if text.endswith(("+00:00", "Z")) else ""
        return f"{text[:10]} {text[11:16]}{zone}"
    return text
