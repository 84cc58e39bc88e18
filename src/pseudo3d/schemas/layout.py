"""Where things are inside a dataset (docs/data-contract.md): names relative to its root.

Data contract 3 and later: unit ``U``'s commit marker is ``_commits/unit-UUUUUU-DIGEST.json``
(``DIGEST``: :func:`pseudo3d.pipelines.plan.unit_digest`, the same for the same unit contents), and
its shards are ``shards/shard-UUUUUU-PP-ATTEMPT.tar`` with their ``.parquet`` sidecars, ``PP``
counting the unit's shards and ``ATTEMPT`` naming the writer that wrote them. Data contract 2 named
shards ``shards/shard-NNNNNN.tar`` with a ``.json`` beside each: :data:`LEGACY_SHARD`.

Data contract 4 and later: the index is three Parquet datasets, ``manifest/``, ``sources/`` and
``failures/`` (:data:`INDEX_TABLES`), with one part per unit writer, ``part-UUUUUU-ATTEMPT.parquet``,
named by the unit's marker. Data contracts 2 and 3 wrote one file per table at the root
(``manifest.parquet``, ...) and a ``.parquet`` sidecar beside each shard.

``pseudo3d compact`` merges the parts of a run of units ``A``..``B`` into one part per table,
``part-AAAAAA-BBBBBB-ATTEMPT.parquet``, named by the compaction's marker
``_commits/compact-AAAAAA-BBBBBB-DIGEST.json`` (:mod:`pseudo3d.schemas.compactions`). Both kinds of
part sort by their first unit, so a reader that takes a folder's parts in name order (pyarrow,
pandas, DuckDB) reads the rows in unit order.
"""

from __future__ import annotations

import re

SHARD_DIR = "shards"
"""The shards' folder."""
COMMIT_DIR = "_commits"
"""The commit markers' folder."""
LEASE = "_lease.json"
"""The lease of the build (or compaction) writing into the dataset (:mod:`pseudo3d.pipelines.lease`)."""
PLAN_DIR = "_plan"
"""Where a build that reads its plan from files (the Beam runner) keeps it while it runs."""
SHARD_PREFIX = "shard-"
INDEX_TABLES = ("manifest", "sources", "failures")
"""The index's tables: since data contract 4 each is a folder of Parquet parts of that name."""

_PART = re.compile(r"part-(\d{6,})-([0-9a-f]{8})\.parquet")
_COMPACTED_PART = re.compile(r"part-(\d{6,})-(\d{6,})-([0-9a-f]{8})\.parquet")
_COMPACTION = re.compile(r"compact-(\d{6,})-(\d{6,})-([0-9a-f]{12})\.json")

_MARKER = re.compile(r"unit-(\d{6,})-([0-9a-f]{12})\.json")
_SHARD = re.compile(r"shard-(\d{6,})-(\d{2,})-([0-9a-f]{8})")
LEGACY_SHARD = re.compile(r"shard-(\d{6,})")
"""A data contract 2 shard's stem."""


def marker_name(unit: int, digest: str) -> str:
    """``unit-UUUUUU-DIGEST.json``: the file name of unit ``unit``'s commit marker."""
    return f"unit-{unit:06d}-{digest}.json"


def parse_marker_name(name: str) -> tuple[int, str] | None:
    """(unit, digest) of a commit marker's file name, or None for any other name."""
    found = _MARKER.fullmatch(name)
    return (int(found.group(1)), found.group(2)) if found else None


def shard_name(unit: int, part: int, attempt: str) -> str:
    """``shard-UUUUUU-PP-ATTEMPT``: the stem of the tar and sidecar parquet of shard ``part`` of
    unit ``unit``, written by ``attempt`` (8 hex digits)."""
    return f"{SHARD_PREFIX}{unit:06d}-{part:02d}-{attempt}"


def parse_shard_name(stem: str) -> tuple[int, int, str] | None:
    """(unit, part, attempt) of a shard's stem (or file name), or None for any other name."""
    found = _SHARD.fullmatch(stem.rsplit(".", 1)[0] if stem.endswith((".tar", ".parquet")) else stem)
    return (int(found.group(1)), int(found.group(2)), found.group(3)) if found else None


def part_name(unit: int, attempt: str) -> str:
    """``part-UUUUUU-ATTEMPT.parquet``: the file name of the Parquet part of an index table
    (:data:`INDEX_TABLES`) that the writer ``attempt`` of unit ``unit`` wrote."""
    return f"part-{unit:06d}-{attempt}.parquet"


def parse_part_name(name: str) -> tuple[int, str] | None:
    """(unit, attempt) of an index part's file name, or None for any other name."""
    found = _PART.fullmatch(name)
    return (int(found.group(1)), found.group(2)) if found else None


def parse_part_path(path: str) -> tuple[str, int, str] | None:
    """(table, unit, attempt) of an index part's path relative to the dataset root,
    ``TABLE/part-UUUUUU-ATTEMPT.parquet``, or None for any other path (one outside the table's
    folder included)."""
    table, _, name = str(path).partition("/")
    parsed = parse_part_name(name)
    return (table, *parsed) if table in INDEX_TABLES and parsed is not None else None


def legacy_table_file(table: str) -> str:
    """Where data contracts 2 and 3 kept index table ``table``: ``TABLE.parquet`` at the root."""
    return f"{table}.parquet"


def compaction_name(first: int, last: int, digest: str) -> str:
    """``compact-AAAAAA-BBBBBB-DIGEST.json``: the file name (in ``_commits/``) of the marker of a
    compaction of units ``first``..``last``."""
    return f"compact-{first:06d}-{last:06d}-{digest}.json"


def parse_compaction_name(name: str) -> tuple[int, int, str] | None:
    """(first unit, last unit, digest) of a compaction marker's file name, or None for any other
    name."""
    found = _COMPACTION.fullmatch(name)
    return (int(found.group(1)), int(found.group(2)), found.group(3)) if found else None


def compacted_part_name(first: int, last: int, attempt: str) -> str:
    """``part-AAAAAA-BBBBBB-ATTEMPT.parquet``: the file name of the part of an index table that
    the compaction ``attempt`` of units ``first``..``last`` wrote."""
    return f"part-{first:06d}-{last:06d}-{attempt}.parquet"


def parse_compacted_part_path(path: str) -> tuple[str, int, int, str] | None:
    """(table, first unit, last unit, attempt) of a compacted part's path relative to the dataset
    root, ``TABLE/part-AAAAAA-BBBBBB-ATTEMPT.parquet``, or None for any other path."""
    table, _, name = str(path).partition("/")
    found = _COMPACTED_PART.fullmatch(name)
    return ((table, int(found.group(1)), int(found.group(2)), found.group(3))
            if table in INDEX_TABLES and found else None)
