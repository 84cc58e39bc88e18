"""Loading a dataset directory's tables and the aggregates the report and the summary share.

Everything here reads the card (``dataset.json``) and the index tables it lists (``sources``,
``failures``, ``manifest``: :mod:`pseudo3d.schemas.index`); the shards are read by :mod:`.gallery`. Durations
are seconds throughout; "unknown" durations (a source whose probe failed) are counted, not
guessed. The manifest, one row per kept clip and the largest table, stays an Arrow table read
column by column; what several sections share (metric columns, time lost, failure groups, the
summary) is computed once per loaded dataset.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pseudo3d.errors import Pseudo3DError
from pseudo3d.qa.filters import RULES
from pseudo3d.schemas.index import read_table
from pseudo3d.schemas.layout import INDEX_TABLES
from pseudo3d.storage import Storage

CLIP_FAILURE_STAGES = ("track", "reconstruct", "qa")
"""Stages whose clip-level failure rows are clips that were found and then dropped."""

T = TypeVar("T")

SOURCE_COLUMNS = ("source_id", "source", "status", "reason", "duration_s")
"""The ``sources`` columns the report reads (a Python dict per source: only these)."""

@dataclass(frozen=True)
class Dataset:
    """A dataset's card and index: sources and failures as plain Python rows, the manifest as an
    Arrow table."""

    storage: Storage
    """Where the dataset is."""
    card: dict
    """``dataset.json``."""
    sources: list[dict]
    """``sources`` rows, in input order: the columns of :data:`SOURCE_COLUMNS` (read from
    disk; rows given by a caller may hold more)."""
    failures: list[dict]
    """``failures`` rows (``duration_s`` is None where the dataset predates that column)."""
    manifest: pa.Table
    """``manifest``, one row per kept clip (a dict of equal-length lists is converted)."""
    _memo: dict[Any, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self):
        if not isinstance(self.manifest, pa.Table):
            object.__setattr__(self, "manifest", pa.table(self.manifest))

    def memo(self, key: Any, compute: Callable[[], T]) -> T:
        """``compute()``, once per dataset and ``key`` (the dataset is not changed once loaded)."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    @property
    def backend(self) -> str:
        return str(self.card.get("config", {}).get("backend", "unknown"))

    @property
    def fps(self) -> float:
        return float(self.card.get("config", {}).get("decode", {}).get("fps", float("nan")))

    @property
    def qa_config(self) -> dict:
        return dict(self.card.get("config", {}).get("qa", {}))

    @property
    def qa_enabled(self) -> bool:
        return bool(self.qa_config.get("enabled", True))

    @property
    def n_clips(self) -> int:
        return self.manifest.num_rows

    def has_column(self, name: str) -> bool:
        return name in self.manifest.column_names

    def column(self, name: str) -> np.ndarray:
        """(n_clips,) float64 manifest column, NaN where null; all-NaN if the column is absent.
        A read-only array, shared by every caller."""
        def convert() -> np.ndarray:
            if not self.has_column(name):
                values = np.full(self.n_clips, np.nan)
            else:
                column = pc.fill_null(self.manifest[name].cast(pa.float64()), float("nan"))
                values = column.to_numpy() if column.num_chunks else np.zeros(0)
            values.flags.writeable = False
            return values
        return self.memo(("column", name), convert)

    def has_metric(self, name: str) -> bool:
        return self.has_column(name) and bool(np.isfinite(self.column(name)).any())


def load_dataset(dataset: str | Path | Storage | Dataset) -> Dataset:
    """Read a dataset (a directory, a URL or a :class:`~pseudo3d.storage.Storage`; one already
    read is returned as it is); raises :class:`Pseudo3DError` naming a missing or unreadable file."""
    if isinstance(dataset, Dataset):
        return dataset
    storage = dataset if isinstance(dataset, Storage) else Storage(dataset, option="DATASET")
    if storage.is_local and not storage.local_path().is_dir():
        raise Pseudo3DError(f"{storage.url} is not a directory")
    if not storage.is_file("dataset.json"):
        raise Pseudo3DError(f"{storage.url} has no dataset.json (not a pseudo3d dataset, or its build never finished)")
    try:
        card = json.loads(storage.read_bytes("dataset.json"))
    except json.JSONDecodeError as exc:
        raise Pseudo3DError(f"{storage.url_of('dataset.json')} is not valid JSON ({exc})") from None
    tables = {name: read_table(storage, card, name, SOURCE_COLUMNS if name == "sources" else None)
              for name in INDEX_TABLES}
    failures = tables["failures"].to_pylist()
    for row in failures:
        row.setdefault("duration_s", None)
    return Dataset(storage=storage, card=card, sources=tables["sources"].to_pylist(), failures=failures,
                   manifest=tables["manifest"])


def clips_of(dataset: Dataset, source_ids: list[str]) -> dict[str, list[int]]:
    """Source id → its manifest row indices, for ``source_ids`` only (the sources a table shows)."""
    if not dataset.n_clips or not source_ids or not dataset.has_column("source_id"):
        return {}
    ids = dataset.manifest["source_id"].cast(pa.string())
    rows = np.flatnonzero(pc.is_in(ids, value_set=pa.array(source_ids, pa.string())).to_numpy(zero_copy_only=False))
    found: dict[str, list[int]] = {}
    for row, source_id in zip(rows.tolist(), ids.take(pa.array(rows, pa.int64())).to_pylist()):
        found.setdefault(source_id, []).append(row)
    return found


# --- time accounting ---------------------------------------------------------------------------

def _seconds(value) -> float | None:
    return None if value is None or not math.isfinite(float(value)) else float(value)


def is_clip_failure(row: dict) -> bool:
    """A failure row about one found clip (a dropped short track, a backend or QA rejection)."""
    return bool(row.get("clip")) and row.get("stage") in CLIP_FAILURE_STAGES


def seconds_lost(dataset: Dataset) -> list[float | None]:
    """Per failure row (same order as ``dataset.failures``), the seconds of video it cost, or None
    where that is unknown.

    A clip-level row costs its clip's ``duration_s``. The first source-level row of a failed
    source costs the source's probed duration minus its clip-level rows (so nothing is counted
    twice); further source-level rows of that source cost 0. A source-level row of a source that
    still produced clips (e.g. ``decode_error``) costs an unknown amount. Computed once per dataset.
    """
    return dataset.memo("seconds_lost", lambda: _seconds_lost(dataset))


def _seconds_lost(dataset: Dataset) -> list[float | None]:
    sources = {row["source_id"]: row for row in dataset.sources}
    clip_seconds: dict[str, float] = {}
    for row in dataset.failures:
        if row.get("clip"):
            clip_seconds[row["source_id"]] = clip_seconds.get(row["source_id"], 0.0) + (_seconds(row["duration_s"]) or 0.0)
    charged: set[str] = set()
    lost: list[float | None] = []
    for row in dataset.failures:
        source = sources.get(row["source_id"], {})
        if row.get("clip"):
            lost.append(_seconds(row["duration_s"]))
        elif source.get("status") != "failed":
            lost.append(None)
        elif row["source_id"] in charged:
            lost.append(0.0)
        else:
            charged.add(row["source_id"])
            duration = _seconds(source.get("duration_s"))
            lost.append(None if duration is None else max(0.0, duration - clip_seconds.get(row["source_id"], 0.0)))
    return lost


@dataclass(frozen=True)
class FunnelStep:
    key: str
    """``inputs``, ``probed``, ``clips`` or ``kept``."""
    label: str
    count: int
    unit: str
    """What ``count`` counts: ``inputs`` or ``clips``."""
    seconds: float
    """Known duration at this step, seconds."""
    n_unknown: int
    """Items at this step whose duration is unknown (not in ``seconds``)."""


def funnel(dataset: Dataset) -> list[FunnelStep]:
    """Inputs → probed inputs → clips found → clips kept, with counts and seconds."""
    durations = [_seconds(row.get("duration_s")) for row in dataset.sources]
    probe_failed = {row["source_id"] for row in dataset.failures if row.get("stage") == "probe" and not row.get("clip")}
    probed = [d for row, d in zip(dataset.sources, durations) if row["source_id"] not in probe_failed]
    kept_seconds = float(np.nansum(dataset.column("duration_s"))) if dataset.n_clips else 0.0
    dropped = [_seconds(row["duration_s"]) for row in dataset.failures if is_clip_failure(row)]
    return [
        FunnelStep("inputs", "Inputs", len(durations), "inputs", sum(d for d in durations if d is not None),
                   sum(d is None for d in durations)),
        FunnelStep("probed", "Probed", len(probed), "inputs", sum(d for d in probed if d is not None),
                   sum(d is None for d in probed)),
        FunnelStep("clips", "Face clips found", dataset.n_clips + len(dropped), "clips",
                   kept_seconds + sum(d for d in dropped if d is not None), sum(d is None for d in dropped)),
        FunnelStep("kept", "Clips kept", dataset.n_clips, "clips", kept_seconds, 0),
    ]


@dataclass(frozen=True)
class FailureGroup:
    stage: str
    error: str
    count: int
    seconds: float
    """Known seconds lost."""
    n_unknown: int
    """Rows whose cost is unknown."""


def failure_groups(dataset: Dataset, by: tuple[str, ...] = ("stage", "error")) -> list[FailureGroup]:
    """Failure rows grouped by ``by`` (a subset of stage, error), largest count first; computed
    once per dataset and grouping."""
    return dataset.memo(("failure_groups", tuple(by)), lambda: _failure_groups(dataset, by))


def _failure_groups(dataset: Dataset, by: tuple[str, ...]) -> list[FailureGroup]:
    groups: dict[tuple, list] = {}
    for row, lost in zip(dataset.failures, seconds_lost(dataset)):
        key = tuple(row[field] if field in by else "" for field in ("stage", "error"))
        entry = groups.setdefault(key, [0, 0.0, 0])
        entry[0] += 1
        entry[1] += lost or 0.0
        entry[2] += lost is None
    ordered = sorted(groups.items(), key=lambda item: (-item[1][0], item[0]))
    return [FailureGroup(stage, error, n, seconds, unknown) for (stage, error), (n, seconds, unknown) in ordered]


# --- metrics and thresholds --------------------------------------------------------------------

@dataclass(frozen=True)
class MetricSpec:
    column: str
    label: str
    unit: str


METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("confidence_mean", "Detector confidence (mean)", "score"),
    MetricSpec("confidence_min", "Detector confidence (min)", "score"),
    MetricSpec("interpolated_fraction", "Interpolated frames", "fraction"),
    MetricSpec("face_size_px", "Face size", "px"),
    MetricSpec("reprojection_error_px", "Reprojection error", "px"),
    MetricSpec("reprojection_error_p95_px", "Reprojection error (p95)", "px"),
    MetricSpec("audio_loudness_dbfs", "Audio loudness", "dBFS"),
    MetricSpec("audio_peak_dbfs", "Audio peak", "dBFS"),
    MetricSpec("silence_fraction", "Silent frames", "fraction"),
    MetricSpec("clipping_fraction", "Clipped samples", "fraction"),
    MetricSpec("av_sync_strength", "AV sync strength", "correlation"),
    MetricSpec("av_sync_p_value", "AV sync p-value", "probability"),
    MetricSpec("lse_c", "SyncNet confidence (LSE-C)", "distance"),
    MetricSpec("lse_d", "SyncNet distance (LSE-D)", "distance"),
    MetricSpec("syncnet_offset_frames", "SyncNet offset", "frames"),
    MetricSpec("yaw_range_deg", "Yaw range", "deg"),
    MetricSpec("pitch_range_deg", "Pitch range", "deg"),
    MetricSpec("roll_range_deg", "Roll range", "deg"),
)
"""The per-clip metrics shown as histograms, in display order (AV offset has its own section)."""

JITTER_UNITS = {
    "mesh": "cm", "landmarks_2d": "px", "head_rotation": "rad", "head_translation": "px",
    "head_scale": "px/cm", "flame_expression": "coeff", "flame_jaw_pose": "rad",
    "flame_global_pose": "rad", "flame_camera": "camera units",
}
"""Units of each smoothed group; jitter is in these units per frame²."""


@dataclass(frozen=True)
class Threshold:
    metric: str
    option: str
    """``qa`` option name, e.g. ``min_confidence_mean``."""
    value: float
    bound: str
    """``min``, ``max`` or ``max_abs``."""


def thresholds(dataset: Dataset) -> dict[str, Threshold]:
    """Metric column → its QA threshold from the build config. Returned even when the filters
    were off (``qa.enabled: false``), as a reference: see :attr:`Dataset.qa_enabled`."""
    qa = dataset.qa_config
    found = {}
    for rule in RULES:
        value = qa.get(rule.option)
        if value is not None:
            found[rule.metric] = Threshold(rule.metric, rule.option, float(value), rule.bound)
    return found


def breaks(threshold: Threshold, values: np.ndarray) -> np.ndarray:
    """(n,) bool: which finite values are outside the threshold."""
    values = np.asarray(values, np.float64)
    with np.errstate(invalid="ignore"):
        outside = {"min": values < threshold.value, "max": values > threshold.value,
                   "max_abs": np.abs(values) > threshold.value}[threshold.bound]
    return outside & np.isfinite(values)


def filtered_values(dataset: Dataset) -> dict[str, list[float]]:
    """Metric → values of the clips QA rejected, from the ``rejections`` of the ``qa`` failure
    rows (every broken rule of a clip is there). Values of ``max_abs`` rules are absolute values."""
    found: dict[str, list[float]] = {}
    for row in dataset.failures:
        if row.get("stage") != "qa":
            continue
        for rejection in row.get("rejections") or ():
            value = float(rejection["value"])
            if rejection["option"].startswith("max_abs"):
                value = abs(value)
            if math.isfinite(value):
                found.setdefault(rejection["metric"], []).append(value)
    return found


def jitter_groups(dataset: Dataset) -> list[str]:
    """Smoothed groups with both ``jitter_<group>_raw`` and ``jitter_<group>_smooth`` columns."""
    groups = []
    for name in dataset.manifest.column_names:
        if name.startswith("jitter_") and name.endswith("_raw"):
            group = name[len("jitter_"):-len("_raw")]
            if dataset.has_column(f"jitter_{group}_smooth"):
                groups.append(group)
    order = list(JITTER_UNITS)
    return sorted(groups, key=lambda g: (order.index(g) if g in order else len(order), g))


def jitter_ratios(dataset: Dataset, group: str) -> np.ndarray:
    """(n,) smooth / raw jitter of the clips where both are finite and raw > 0."""
    raw, smooth = dataset.column(f"jitter_{group}_raw"), dataset.column(f"jitter_{group}_smooth")
    ok = np.isfinite(raw) & np.isfinite(smooth) & (raw > 0)
    return smooth[ok] / raw[ok]

