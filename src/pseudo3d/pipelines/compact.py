"""Compaction: merging the index parts of runs of units (``pseudo3d compact``; docs/data-contract.md,
"Compaction").

A build writes one part per unit and table, so a dataset of 100,000 units has 100,000 parts in
``manifest/``, which every reader of the folder (pandas, DuckDB, Spark, Ray Data) opens one by one.
:func:`compact_dataset` merges them into parts of at most ``max_rows`` rows: the live units, in
order, and the live compactions are cut greedily into runs whose rows of each table fit; each run of
more than one unit (or holding a stale compaction) gets one new part per table and a compaction
marker (:mod:`pseudo3d.schemas.compactions`), created only where none of that name exists; then
the compactions it replaces and the parts it holds are deleted. A compaction that is already whole
and alone in its run is left as it is, so compacting again, or after more units were committed,
rewrites only what changed.

A kill at any point leaves a dataset that reads the same: before its marker exists, a compaction's
parts are debris no marker names; after, the files it replaced are debris the next build or
compaction removes. Rows are never rewritten otherwise than in unit order, and shards are never
touched.
"""

from __future__ import annotations

import hashlib
import json
import logging
import posixpath
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

import pyarrow as pa

import pseudo3d
from pseudo3d.errors import Pseudo3DError
from pseudo3d.pipelines.lease import BuildLease
from pseudo3d.pipelines.shard_writer import new_attempt, remove_uncommitted
from pseudo3d.schemas.commits import Commit
from pseudo3d.schemas.compactions import Compaction, IndexLayout, present_files, read_layout
from pseudo3d.schemas.index import CARD, index_files, read_card, read_parts, write_card
from pseudo3d.schemas.layout import COMMIT_DIR, INDEX_TABLES, compacted_part_name, compaction_name
from pseudo3d.schemas.sample import encode_json
from pseudo3d.schemas.version import SCHEMA_VERSION
from pseudo3d.storage import Storage, parquet_bytes

log = logging.getLogger(__name__)

MAX_ROWS = 1_000_000
"""``pseudo3d compact --max-rows`` default: rows of each table in one compacted part."""


@dataclass
class Run:
    """Units whose rows go into one compacted part per table: loose units (their own parts) and
    the compactions of their stretch of units."""

    commits: list[Commit] = field(default_factory=list)
    compactions: list[Compaction] = field(default_factory=list)
    rows: Counter[str] = field(default_factory=Counter)

    def add(self, other: "Run") -> None:
        self.commits += other.commits
        self.compactions += other.compactions
        self.rows.update(other.rows)

    @property
    def first(self) -> int:
        return min([*(commit.unit for commit in self.commits), *(compaction.first for compaction in self.compactions)])

    @property
    def last(self) -> int:
        return max([*(commit.unit for commit in self.commits), *(compaction.last for compaction in self.compactions)])


@dataclass
class CompactReport:
    """What :func:`compact_dataset` did."""

    url: str
    units: int
    """Live units in the dataset."""
    parts_before: dict[str, int]
    parts_after: dict[str, int]
    written: int
    """Compactions written (runs merged)."""
    seconds: float


def unit_rows(commit: Commit) -> Counter[str]:
    """Rows of each index table that ``commit``'s unit has, from its marker."""
    counts = commit.counts
    return Counter({"manifest": int(commit.stats.get("n_samples", 0)), "sources": int(counts.get("sources", 0)),
                    "failures": int(counts.get("failures", 0))})


def _pieces(layout: IndexLayout) -> list[Run]:
    """The dataset's live units as pieces that are never split, in unit order: each live
    compaction with the live units of its stretch, and each other unit alone."""
    pieces: list[tuple[int, Run]] = []
    claimed: set[str] = set()
    for compaction in layout.compactions:
        members = layout.members(compaction)
        claimed.update(commit.path for commit in members)
        run = Run(members, [compaction])
        for commit in members:
            run.rows.update(unit_rows(commit))
        pieces.append((compaction.first, run))
    pieces += [(commit.unit, Run([commit], [], unit_rows(commit))) for commit in layout.commits
               if commit.path not in claimed]
    return [run for _, run in sorted(pieces, key=lambda piece: piece[0])]


def plan_runs(layout: IndexLayout, max_rows: int) -> list[Run]:
    """The runs to compact: the pieces (:func:`_pieces`) packed greedily, in unit order, into runs
    of at most ``max_rows`` rows of each table (a piece larger than that is a run of its own),
    without those already compacted as they are (one whole compaction, or one unit)."""
    stale = {compaction.path for compaction in layout.stale()}
    runs: list[Run] = []
    for piece in _pieces(layout):
        if runs and all(runs[-1].rows[table] + piece.rows[table] <= max_rows for table in INDEX_TABLES):
            runs[-1].add(piece)
        else:
            runs.append(piece)
    return [run for run in runs if not _as_it_is(layout, run, stale)]


def _as_it_is(layout: IndexLayout, run: Run, stale: set[str]) -> bool:
    """Whether compacting ``run`` would change nothing: one unit of its own, or one whole
    compaction and nothing else."""
    if run.compactions:
        [compaction, *others] = run.compactions
        return (not others and compaction.path not in stale
                and all(layout.covering(commit) is compaction for commit in run.commits))
    return len(run.commits) <= 1


def write_compaction(storage: Storage, layout: IndexLayout, run: Run) -> Compaction | None:
    """Merge ``run``'s rows into one part per table, commit them with a compaction marker, then
    delete what it replaces. A run without live units (every unit its compactions held was
    removed) has no rows: its compactions are deleted. Returns the compaction, or None."""
    if not run.commits:
        _delete(storage, [compaction.path for compaction in run.compactions] +
                [path for compaction in run.compactions for path in compaction.files()])
        return None
    first, last, attempt = run.first, run.last, new_attempt()
    parts: dict[str, list[str]] = {}
    rows: dict[str, int] = {}
    written: list[str] = []
    try:
        for table in INDEX_TABLES:
            merged = _merged_rows(storage, layout, run.commits, table)
            rows[table] = merged.num_rows
            if merged.num_rows:
                path = posixpath.join(table, compacted_part_name(first, last, attempt))
                storage.write_bytes(path, parquet_bytes(merged))
                written.append(path)
                parts[table] = [path]
        covers = {str(commit.unit): commit.path for commit in run.commits}
        replaces = sorted(compaction.path for compaction in run.compactions)
        digest = hashlib.sha256("\n".join([f"contract {SCHEMA_VERSION}", *sorted(covers.values()),
                                           *replaces]).encode()).hexdigest()[:12]
        marker = posixpath.join(COMMIT_DIR, compaction_name(first, last, digest))
        stats: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "pseudo3d_version": pseudo3d.__version__,
                                 "kind": "compaction", "first": first, "last": last, "attempt": attempt,
                                 "covers": covers, "parts": parts, "rows": rows, "replaces": replaces}
        if not storage.create(marker, encode_json(stats)):
            raise Pseudo3DError(f"{storage.url_of(marker)} exists already: another process compacted units "
                                f"{first}..{last} at the same time")
    except BaseException:
        _delete(storage, written)
        raise
    own = [path for commit in run.commits if layout.covering(commit) is None
           for table in INDEX_TABLES for path in commit.parts(table)]
    _delete(storage, [*replaces, *(path for compaction in run.compactions for path in compaction.files()), *own])
    return Compaction(marker, first, last, json.loads(encode_json(stats)))


def _merged_rows(storage: Storage, layout: IndexLayout, commits: list[Commit], table: str) -> pa.Table:
    """The rows of index table ``table`` of ``commits``' units, by unit (each unit's in its order)."""
    kept: dict[str, set[int] | None] = {}
    for commit in commits:
        for path, units in layout.unit_parts(commit, table):
            if units is None:
                kept[path] = None
            else:
                kept.setdefault(path, set()).update(units)  # type: ignore[union-attr]
    parts = [(path, None if units is None else frozenset(units)) for path, units in kept.items()]
    rows = read_parts(storage, parts, table)
    return rows.sort_by("unit") if rows.num_rows else rows  # Arrow's sort is stable


def _check_finished(storage: Storage, card: dict[str, Any], layout: IndexLayout) -> None:
    """Raise :class:`Pseudo3DError` unless the card counts the live units and lists their shards:
    a card older than the markers (a build stopped after committing units) would list parts of
    units whose shards and counts it has not."""
    shards = {shard.tar for commit in layout.commits for shard in commit.shards}
    counted = card.get("counts", {}).get("units") if isinstance(card.get("counts"), dict) else None
    if counted != len(layout.commits) or set(card["files"].get("shards") or ()) != shards:
        raise Pseudo3DError(f"{storage.url_of(CARD)} is older than the dataset's commit markers (it counts {counted} "
                            f"units, the markers {len(layout.commits)}): a build was stopped before it finished; run "
                            "it again to finish it, then compact")


def _delete(storage: Storage, paths: list[str]) -> None:
    """Delete ``paths`` (together: in no set order, as nothing names them any more), best effort:
    what is left is debris that the next build or compaction removes."""
    try:
        storage.delete_many(paths)
    except Exception as exc:  # noqa: BLE001 - the compaction stands; the clean-up finishes this
        log.warning("could not delete the %d files a compaction replaced (%s); the next build or compaction "
                    "removes them", len(paths), exc)


def refresh(storage: Storage, layout: IndexLayout) -> IndexLayout:
    """Compact again each stale compaction of ``layout`` (:meth:`IndexLayout.stale`: a unit it
    holds was committed again or removed, or one was committed in its stretch) with the live units
    of its stretch, so that the folders hold each live row once. Returns the layout after."""
    stale = layout.stale()
    if not stale:
        return layout
    paths = {compaction.path for compaction in stale}
    runs = [run for run in _pieces(layout) if run.compactions and run.compactions[0].path in paths]
    return _layout_after(layout, runs, [write_compaction(storage, layout, run) for run in runs])


def _layout_after(layout: IndexLayout, runs: list[Run], written: list[Compaction | None]) -> IndexLayout:
    """``layout`` once ``runs`` were compacted into ``written`` (None: a run without live units),
    without reading the markers again."""
    replaced = {compaction.path for run in runs for compaction in run.compactions}
    kept = [compaction for compaction in layout.compactions if compaction.path not in replaced]
    return IndexLayout(layout.commits, sorted([*kept, *(compaction for compaction in written if compaction)],
                                              key=lambda compaction: compaction.first))


def compact_dataset(dataset: str | Storage, max_rows: int = MAX_ROWS,
                    progress: Callable[[int, int], None] | None = None) -> CompactReport:
    """Merge the index parts of the dataset ``dataset`` (a path, URL or :class:`Storage`) into parts
    of at most ``max_rows`` rows of each table, then list them in its card. Takes the build lease
    (no build may write into the dataset meanwhile). Raises :class:`Pseudo3DError`, before it
    changes anything, for a dataset without a card (:func:`read_card`), of a data contract before 4
    (one file per table: nothing to compact), whose card is older than its commit markers (a build
    was stopped before it finished), or whose units lost files. ``progress(done, total)``: called
    with the units merged so far, of all the runs' units, as each run is committed."""
    started = time.perf_counter()
    storage = dataset if isinstance(dataset, Storage) else Storage(dataset, option="DATASET")
    storage.check()
    card = read_card(storage)
    if int(card.get("schema_version") or 0) < 4:
        raise Pseudo3DError(f"{storage.url} is of data contract version {card.get('schema_version')}, whose index is "
                            "one file per table: there is nothing to compact")
    with BuildLease(storage):
        card = read_card(storage)  # the card as of the lease: a build may have finished meanwhile
        layout = read_layout(storage)
        _check_finished(storage, card, layout)
        _, broken, lost = layout.split_lost(present_files(storage))
        if broken or lost:
            raise Pseudo3DError(f"{len(broken)} unit(s) of {storage.url} lost files (unit {broken[0].unit if broken else lost[0].first} "
                                "first): run the build again, which removes them and says so, then once more to "
                                "rebuild them; then compact")
        remove_uncommitted(storage)
        before = {table: len(paths) for table, paths in index_files(layout).items()}
        runs = plan_runs(layout, max_rows)
        written: list[Compaction | None] = []
        total, merged = sum(len(run.commits) for run in runs), 0
        for done, run in enumerate(runs, 1):
            written.append(write_compaction(storage, layout, run))
            merged += len(run.commits)
            log.info("compacted units %d..%d (%d of %d runs)", run.first, run.last, done, len(runs))
            if progress is not None:
                progress(merged, total)
        layout = _layout_after(layout, runs, written)
        card["files"].update(index_files(layout))
        write_card(storage, card)
    after = {table: len(paths) for table, paths in index_files(layout).items()}
    return CompactReport(storage.url, len(layout.commits), before, after, len(runs), time.perf_counter() - started)
