"""Loading a dataset directory's tables and the aggregates the report and the summary share.

Everything here reads the card (``dataset.json``) and the index tables it lists (``sources``,
``failures``, ``manifest``: :mod:`pseudo3d.schemas.index`); the shards are read by :mod:`.gallery`. Durations
are seconds throughout; "unknown" durations (a source whose probe failed) are counted, not
guessed. The three tables stay Arrow tables, computed on column by column (only the rows a table of
the report shows become Python objects); what several sections share (metric columns, time lost,
failure groups, the summary) is computed once per loaded dataset.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pseudo3d.errors import Pseudo3DError
from pseudo3d.qa.filters import RULES
from pseudo3d.schemas.index import read_card, read_table
from pseudo3d.schemas.layout import INDEX_TABLES
from pseudo3d.schemas.tables import FAILURES_SCHEMA, SOURCES_SCHEMA
from pseudo3d.storage import Storage

CLIP_FAILURE_STAGES = ("track", "reconstruct", "qa")
"""Stages whose clip-level failure rows are clips that were found and then dropped."""

T = TypeVar("T")

SOURCE_COLUMNS = ("source_id", "source", "status", "reason", "duration_s")
"""The ``sources`` columns the report reads."""
SOURCE_FIELDS = [SOURCES_SCHEMA.field(name) for name in SOURCE_COLUMNS]

@dataclass(frozen=True)
class Dataset:
    """A dataset's card and index tables, as Arrow tables (lists of row dicts, or a dict of
    equal-length lists for the manifest, are converted)."""

    storage: Storage
    """Where the dataset is."""
    card: dict
    """``dataset.json``."""
    sources: pa.Table
    """``sources``, one row per input, in input order: at least the columns of
    :data:`SOURCE_COLUMNS`."""
    failures: pa.Table
    """``failures``, one row per failure: every column of the failures table (null where the
    dataset predates one)."""
    manifest: pa.Table
    """``manifest``, one row per kept clip."""
    _memo: dict[Any, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self):
        if not isinstance(self.manifest, pa.Table):
            object.__setattr__(self, "manifest", pa.table(self.manifest))
        object.__setattr__(self, "sources", _with_columns(self.sources, SOURCE_FIELDS))
        object.__setattr__(self, "failures", _with_columns(self.failures, list(FAILURES_SCHEMA)))

    @property
    def n_sources(self) -> int:
        return self.sources.num_rows

    @property
    def n_failures(self) -> int:
        return self.failures.num_rows

    def source_status(self) -> np.ndarray:
        """(n_sources,) str: each source's status (``ok``, ``failed``; ``""`` where null)."""
        return self.memo("source_status", lambda: _texts(self.sources["status"]))

    def failure_text(self, name: str) -> np.ndarray:
        """(n_failures,) str: the failure rows' column ``name`` (``stage``, ``error``, ``clip``...),
        ``""`` where null; shared by every caller."""
        return self.memo(("failure_text", name), lambda: _texts(self.failures[name]))

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
            values = _floats(self.manifest[name]) if self.has_column(name) else np.full(self.n_clips, np.nan)
            values.flags.writeable = False
            return values
        return self.memo(("column", name), convert)

    def has_metric(self, name: str) -> bool:
        return self.has_column(name) and bool(np.isfinite(self.column(name)).any())


def _with_columns(rows: pa.Table | list[dict], fields: list[pa.Field]) -> pa.Table:
    """``rows`` as a table with at least ``fields`` (a missing one is null throughout)."""
    table = rows if isinstance(rows, pa.Table) else (
        pa.Table.from_pylist(rows) if rows else pa.schema(fields).empty_table())
    for wanted in fields:
        if wanted.name not in table.column_names:
            table = table.append_column(wanted, pa.nulls(table.num_rows, wanted.type))
    return table


def _texts(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """(n,) object array of a string column, ``""`` where null."""
    return np.asarray(pc.fill_null(column.cast(pa.string()), "").to_pylist() if len(column) else [], dtype=object)


def _floats(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """(n,) float64 of a numeric column, NaN where null."""
    values = pc.fill_null(column.cast(pa.float64()), float("nan"))
    return np.asarray(values.to_numpy() if len(values) else np.zeros(0), np.float64)


def _codes(column: pa.ChunkedArray) -> np.ndarray:
    """(n,) int64: the same number for equal values of a string column (null is a value of its own)."""
    if not len(column):
        return np.zeros(0, np.int64)
    encoded = pc.dictionary_encode(column.cast(pa.string()), null_encoding="encode").combine_chunks()
    return encoded.indices.to_numpy().astype(np.int64)


def load_dataset(dataset: str | Path | Storage | Dataset) -> Dataset:
    """Read a dataset (a directory, a URL or a :class:`~pseudo3d.storage.Storage`; one already
    read is returned as it is); raises :class:`Pseudo3DError` naming a missing or unreadable file."""
    if isinstance(dataset, Dataset):
        return dataset
    storage = dataset if isinstance(dataset, Storage) else Storage(dataset, option="DATASET")
    if storage.is_local and not storage.local_path().is_dir():
        raise Pseudo3DError(f"{storage.url} is not a directory")
    card = read_card(storage)
    tables = {name: read_table(storage, card, name, SOURCE_COLUMNS if name == "sources" else None)
              for name in INDEX_TABLES}
    return Dataset(storage=storage, card=card, sources=tables["sources"], failures=tables["failures"],
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

def clip_failures(dataset: Dataset) -> np.ndarray:
    """(n_failures,) bool: the failure rows about one found clip (a dropped short track, a backend
    or QA rejection)."""
    return dataset.memo("clip_failures", lambda: (dataset.failure_text("clip") != "")
                        & np.isin(dataset.failure_text("stage"), CLIP_FAILURE_STAGES))


def seconds_lost(dataset: Dataset) -> np.ndarray:
    """(n_failures,) float64: per failure row (in ``dataset.failures`` order), the seconds of video
    it cost, NaN where that is unknown.

    A clip-level row costs its clip's ``duration_s``. The first source-level row of a failed
    source costs the source's probed duration minus its clip-level rows (so nothing is counted
    twice); further source-level rows of that source cost 0. A source-level row of a source that
    still produced clips (e.g. ``decode_error``) costs an unknown amount. Computed once per dataset.
    """
    return dataset.memo("seconds_lost", lambda: _seconds_lost(dataset))


def source_of_failures(dataset: Dataset) -> np.ndarray:
    """(n_failures,) int64: each failure row's source's row in ``dataset.sources``, -1 where the
    source is not there. Computed once per dataset."""
    def compute() -> np.ndarray:
        if not dataset.n_failures:
            return np.zeros(0, np.int64)
        where = pc.index_in(dataset.failures["source_id"].cast(pa.string()),
                            value_set=dataset.sources["source_id"].cast(pa.string()).combine_chunks())
        return np.asarray(pc.fill_null(where, -1).to_numpy(), np.int64)
    return dataset.memo("source_of_failures", compute)


def of_failed_sources(dataset: Dataset) -> np.ndarray:
    """(n_failures,) bool: the failure rows whose source failed."""
    where = source_of_failures(dataset)
    failed = np.zeros(len(where), bool)
    failed[where >= 0] = dataset.source_status()[where[where >= 0]] == "failed"
    return failed


def _seconds_lost(dataset: Dataset) -> np.ndarray:
    failures = dataset.failures
    lost = np.full(failures.num_rows, np.nan)
    if not failures.num_rows:
        return lost
    is_clip = dataset.failure_text("clip") != ""
    duration = _floats(failures["duration_s"])
    where = source_of_failures(dataset)
    known = where >= 0
    failed, source_duration = of_failed_sources(dataset), np.full(len(lost), np.nan)
    source_duration[known] = _floats(dataset.sources["duration_s"])[where[known]]
    codes = _codes(failures["source_id"])
    clip_seconds = np.bincount(codes[is_clip], weights=np.nan_to_num(duration[is_clip]), minlength=codes.max() + 1)
    lost[is_clip] = duration[is_clip]
    level = np.flatnonzero(~is_clip & failed)  # source-level rows of failed sources: the first carries the cost
    lost[level] = 0.0
    first = level[np.unique(codes[level], return_index=True)[1]]
    lost[first] = np.maximum(0.0, source_duration[first] - clip_seconds[codes[first]])  # NaN stays unknown
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


def probe_failures(dataset: Dataset) -> np.ndarray:
    """(n_failures,) bool: the source-level rows of the ``probe`` stage."""
    return (dataset.failure_text("stage") == "probe") & (dataset.failure_text("clip") == "")


def funnel(dataset: Dataset) -> list[FunnelStep]:
    """Inputs → probed inputs → clips found → clips kept, with counts and seconds."""
    durations = _floats(dataset.sources["duration_s"])
    probe_failed = dataset.failures["source_id"].filter(pa.array(probe_failures(dataset)))
    probed = durations[~np.asarray(pc.is_in(dataset.sources["source_id"], value_set=probe_failed.combine_chunks())
                                   .to_numpy(zero_copy_only=False), bool)] if len(durations) else durations
    kept_seconds = float(np.nansum(dataset.column("duration_s"))) if dataset.n_clips else 0.0
    dropped = _floats(dataset.failures["duration_s"])[clip_failures(dataset)]

    def known(values: np.ndarray) -> float:
        return float(np.nansum(values)) if values.size else 0.0

    return [
        FunnelStep("inputs", "Inputs", len(durations), "inputs", known(durations), int(np.isnan(durations).sum())),
        FunnelStep("probed", "Probed", len(probed), "inputs", known(probed), int(np.isnan(probed).sum())),
        FunnelStep("clips", "Face clips found", dataset.n_clips + len(dropped), "clips",
                   kept_seconds + known(dropped), int(np.isnan(dropped).sum())),
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
    if not dataset.n_failures:
        return []
    lost = seconds_lost(dataset)
    keys = [pa.array(dataset.failure_text(name) if name in by else np.full(dataset.n_failures, ""), pa.string())
            for name in ("stage", "error")]
    grouped = pa.table({"stage": keys[0], "error": keys[1], "seconds": np.nan_to_num(lost),
                        "unknown": np.isnan(lost).astype(np.int64)}).group_by(["stage", "error"]).aggregate(
        [("seconds", "count"), ("seconds", "sum"), ("unknown", "sum")])
    groups = [FailureGroup(row["stage"], row["error"], row["seconds_count"], row["seconds_sum"], row["unknown_sum"])
              for row in grouped.to_pylist()]
    return sorted(groups, key=lambda group: (-group.count, group.stage, group.error))


def error_counts(dataset: Dataset, rows: np.ndarray) -> list[tuple[str, int]]:
    """(error, count) of the failure rows ``rows`` ((n_failures,) bool), largest count first."""
    errors, counts = np.unique(dataset.failure_text("error")[rows].astype(str), return_counts=True)
    return sorted(zip(errors.tolist(), counts.tolist()), key=lambda item: (-item[1], item[0]))


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
    qa = dataset.failures.filter(pa.array(dataset.failure_text("stage") == "qa"))
    rejections = pc.list_flatten(qa["rejections"]) if qa.num_rows else pa.array([])
    if not len(rejections):
        return {}
    metrics, options = _texts(pc.struct_field(rejections, "metric")), _texts(pc.struct_field(rejections, "option"))
    values = _floats(pc.struct_field(rejections, "value"))
    values = np.where(np.char.startswith(options.astype(str), "max_abs"), np.abs(values), values)
    found: dict[str, list[float]] = {}
    for metric, value in zip(metrics.tolist(), values.tolist()):
        if math.isfinite(value):
            found.setdefault(metric, []).append(value)
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

