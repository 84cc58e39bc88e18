"""Exporting predicted animation: ARKit blendshape weights as an Epic Live Link Face CSV, and a
preview video of a vertex sequence (:func:`render_preview`, in :mod:`.render`).

Live Link Face CSV (the take files of Epic's Live Link Face iOS app, which Unreal's
LiveLinkFaceImporter plugin and most DCC importers read):

* header ``Timecode,BlendShapeCount,`` then the 52 ARKit blendshapes in the app's order and
  PascalCase (:data:`LIVE_LINK_FACE_BLENDSHAPES`; note ``JawRight,JawLeft`` and
  ``MouthRight,MouthLeft``, the reverse of ARKit's own order), then the nine rotation columns
  :data:`LIVE_LINK_FACE_ROTATIONS` — 61 value columns, so ``BlendShapeCount`` is 61 on every row;
* ``Timecode`` is ``HH:MM:SS:FF.fff``: hours, minutes, seconds, then the frame number within the
  second *with a fractional part* (three decimals of a frame, not milliseconds) at the app's
  timecode rate, 30 or 60. Unreal's importer converts it to seconds as
  ``h·3600 + m·60 + s + FF.fff / rate`` and infers the rate from the data (60 if any frame field
  exceeds 30, else 30). Any frame rate therefore round-trips (to 1/30000 s) through a 30-based timecode,
  which is the default here;
* weights in [0, 1]; the rotation columns are written as 0 — the models predict no head or eye pose.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pseudo3d.storage import write_bytes
from pseudo3d.schemas.blendshapes import ARKIT_BLENDSHAPES, LIVE_LINK_FACE_COLUMNS, LIVE_LINK_FACE_ROTATIONS
from pseudo3d.training.render import mediapipe_faces, render_preview

__all__ = ["ARKIT_52", "LIVE_LINK_FACE_BLENDSHAPES", "LIVE_LINK_FACE_ROTATIONS", "live_link_timecode",
           "mediapipe_faces", "render_preview", "write_live_link_csv"]

ARKIT_52 = ARKIT_BLENDSHAPES
"""ARKit's 52 blendshapes in ARKit's canonical order (defined once, in :mod:`pseudo3d.schemas.blendshapes`)."""

LIVE_LINK_FACE_BLENDSHAPES = LIVE_LINK_FACE_COLUMNS[2:2 + len(ARKIT_BLENDSHAPES)]
"""The blendshape columns of a Live Link Face CSV, in the app's order and capitalisation."""

BLENDSHAPE_COUNT = len(LIVE_LINK_FACE_BLENDSHAPES) + len(LIVE_LINK_FACE_ROTATIONS)  # 61
TIMECODE_RATES = (30, 60)
"""Timecode rates the app records at, and the only ones Unreal's importer infers."""


def live_link_timecode(seconds: float, rate: int = 30) -> str:
    """``HH:MM:SS:FF.fff`` for a time in seconds: the frame field counts frames of ``rate`` per
    second (30 or 60) with three decimals of a frame, so e.g. 1.04 s at rate 30 is
    ``00:00:01:01.200``."""
    if rate not in TIMECODE_RATES:
        raise ValueError(f"timecode rate must be one of {TIMECODE_RATES} (what Live Link Face records "
                         f"and Unreal's importer recognises), got {rate}")
    if not np.isfinite(seconds) or seconds < 0:
        raise ValueError(f"timecode seconds must be finite and ≥ 0, got {seconds}")
    # Count in thousandths of a frame so rounding can never produce a frame field of "30.000".
    milliframes = int(round(seconds * rate * 1000))
    whole_seconds, milliframes = divmod(milliframes, rate * 1000)
    hours, rest = divmod(whole_seconds, 3600)
    minutes, secs = divmod(rest, 60)
    frames, thousandths = divmod(milliframes, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}:{frames:02d}.{thousandths:03d}"


def _csv_columns(names: Sequence[str]) -> np.ndarray:
    """(52,) index into ``names`` of each Live Link Face blendshape column (case-insensitive)."""
    lowered = [str(name).lower() for name in names]
    if len(lowered) != len(LIVE_LINK_FACE_BLENDSHAPES):
        raise ValueError(f"names must list the {len(LIVE_LINK_FACE_BLENDSHAPES)} ARKit blendshapes, got "
                         f"{len(lowered)} names")
    duplicates = sorted({name for name in names if lowered.count(str(name).lower()) > 1})
    if duplicates:
        raise ValueError(f"names lists {', '.join(duplicates)} more than once (names are case-insensitive)")
    known = {column.lower() for column in LIVE_LINK_FACE_BLENDSHAPES}
    unknown = [name for name, low in zip(names, lowered) if low not in known]
    if unknown:
        raise ValueError(f"names holds {', '.join(map(str, unknown))}, not ARKit blendshape(s); expected the "
                         f"52 names of ARKIT_52 in any order and case")
    position = {low: index for index, low in enumerate(lowered)}
    return np.array([position[column.lower()] for column in LIVE_LINK_FACE_BLENDSHAPES], np.int64)


def write_live_link_csv(path: str | Path, weights: np.ndarray, fps: float,
                        names: Sequence[str] = ARKIT_52, *, start_seconds: float = 0.0,
                        timecode_rate: int = 30) -> Path:
    """Write blendshape weights as a Live Link Face CSV.

    Args:
        path: output ``.csv``; written to a temporary name, then renamed.
        weights: (T, 52) weights, column j for blendshape ``names[j]``; clipped to [0, 1].
        fps: frames per second of ``weights``; row t is at ``start_seconds + t / fps``.
        names: the 52 ARKit blendshape names in ``weights``' column order, matched to the CSV's
            columns case-insensitively (default: ARKit's canonical order, :data:`ARKIT_52`).
        start_seconds: time of the first row (s), the timecode origin.
        timecode_rate: 30 or 60, the frame count base of the ``Timecode`` column.

    Returns:
        ``path``.
    """
    weights = np.asarray(weights, np.float64)
    if weights.ndim != 2 or weights.shape[1] != len(LIVE_LINK_FACE_BLENDSHAPES):
        raise ValueError(f"weights must have shape (T, {len(LIVE_LINK_FACE_BLENDSHAPES)}), got {weights.shape}")
    if not np.isfinite(weights).all():
        frame, column = np.argwhere(~np.isfinite(weights))[0]
        raise ValueError(f"weights must be finite; frame {frame}, column {column} ({names[column]}) is "
                         f"{weights[frame, column]}")
    if not (np.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a positive number, got {fps}")
    columns = _csv_columns(names)
    live_link_timecode(start_seconds, timecode_rate)  # checks the origin and the rate up front
    ordered = np.clip(weights[:, columns], 0.0, 1.0)
    rotations = ",".join(["0.000000"] * len(LIVE_LINK_FACE_ROTATIONS))
    lines = [",".join(("Timecode", "BlendShapeCount", *LIVE_LINK_FACE_BLENDSHAPES, *LIVE_LINK_FACE_ROTATIONS))]
    for index, row in enumerate(ordered):
        timecode = live_link_timecode(start_seconds + index / fps, timecode_rate)
        values = ",".join(f"{value:.6f}" for value in row)
        lines.append(f"{timecode},{BLENDSHAPE_COUNT},{values},{rotations}")
    write_bytes(Path(path), ("\n".join(lines) + "\n").encode("utf-8"))
    return Path(path)
