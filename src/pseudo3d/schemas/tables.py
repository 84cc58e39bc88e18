"""Arrow schemas of the index tables (``manifest``, ``sources``, ``failures``), and table builders
that keep them even when there are no rows. Every row carries the ``unit`` that committed it."""

from __future__ import annotations

from typing import Any, Iterable

import pyarrow as pa

FAILURES_SCHEMA = pa.schema([
    ("source_id", pa.string()),
    ("source", pa.string()),
    ("clip", pa.string()),
    ("stage", pa.string()),
    ("error", pa.string()),
    ("kind", pa.string()),
    ("message", pa.string()),
    ("duration_s", pa.float64()),
    ("rejections", pa.list_(pa.struct([("metric", pa.string()), ("value", pa.float64()),
                                       ("option", pa.string()), ("threshold", pa.float64())]))),
    ("unit", pa.int64()),
])

SOURCES_SCHEMA = pa.schema([
    ("source_id", pa.string()),
    ("source", pa.string()),
    ("identity", pa.string()),
    ("attempt", pa.int64()),
    ("status", pa.string()),
    ("reason", pa.string()),
    ("n_clips", pa.int64()),
    ("n_failures", pa.int64()),
    ("duration_s", pa.float64()),
    ("fps", pa.float64()),
    ("width", pa.int64()),
    ("height", pa.int64()),
    ("has_audio", pa.bool_()),
    ("container", pa.string()),
    ("video_codec", pa.string()),
    ("size_bytes", pa.int64()),
    ("clip_seconds", pa.float64()),
    ("shard", pa.string()),
    ("unit", pa.int64()),
])

MANIFEST_BASE_SCHEMA = pa.schema([
    ("key", pa.string()),
    ("shard", pa.string()),
    ("unit", pa.int64()),
    ("source_id", pa.string()),
    ("source", pa.string()),
    ("identity", pa.string()),
    ("clip_index", pa.int64()),
    ("start_s", pa.float64()),
    ("end_s", pa.float64()),
    ("duration_s", pa.float64()),
    ("n_frames", pa.int64()),
    ("fps", pa.float64()),
    ("backend", pa.string()),
])
"""Fixed manifest columns; per-clip QA metrics and list-file metadata columns follow them."""


def table_from_rows(rows: Iterable[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    rows = list(rows)
    return pa.Table.from_pylist([{name: row.get(name) for name in schema.names} for row in rows], schema=schema)


def manifest_table(rows: list[dict[str, Any]]) -> pa.Table:
    """Manifest rows → table: the fixed columns first and typed (null where a row lacks one), then
    the rest (metrics, metadata) with inferred types; a column null in every row (a metric no clip
    of a unit has, such as an AV offset of silent clips) is float64, as the metrics are, so every
    unit's part has one type per column (a list-file metadata column is never null: a source
    without a value has no such key)."""
    if not rows:
        return MANIFEST_BASE_SCHEMA.empty_table()
    names = list(dict.fromkeys(name for row in rows for name in row))  # every row's columns, in order met
    table = pa.Table.from_pydict({name: [row.get(name) for row in rows] for name in names})
    columns = [table.column(field.name).cast(field.type) if field.name in table.column_names
               else pa.nulls(table.num_rows, field.type) for field in MANIFEST_BASE_SCHEMA]
    extra = [name for name in table.column_names if name not in MANIFEST_BASE_SCHEMA.names]
    columns += [table.column(name).cast(pa.float64()) if pa.types.is_null(table.column(name).type)
                else table.column(name) for name in extra]
    return pa.Table.from_arrays(columns, names=MANIFEST_BASE_SCHEMA.names + extra)
