"""Preparing a dataset directory for a build: checks, resume state, clean-up of debris.

Shared by every runner, so all of them resume the same way.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pseudo3d.config import BuildConfig
from pseudo3d.errors import Pseudo3DError
from pseudo3d.pipelines.lease import BuildLease
from pseudo3d.pipelines.plan import Unit, UnitBase, plan_units, remove_plan, unit_digest
from pseudo3d.pipelines.sources import SourceList
from pseudo3d.pipelines.shard_writer import remove_broken, remove_uncommitted
from pseudo3d.pipelines.spool import remove_spool
from pseudo3d.schemas.commits import Commit, MarkerName, list_markers, live_markers, read_commits
from pseudo3d.schemas.compactions import IndexLayout, live_compactions, present_files
from pseudo3d.schemas.index import PART_BATCH, parts_table
from pseudo3d.schemas.layout import INDEX_TABLES, LEGACY_SHARD, PLAN_DIR, SHARD_DIR, legacy_table_file
from pseudo3d.schemas.records import Source
from pseudo3d.schemas.version import SCHEMA_VERSION
from pseudo3d.storage import Storage

log = logging.getLogger(__name__)

DATASET_FILES = (*(legacy_table_file(table) for table in INDEX_TABLES), "dataset.json")
"""Files a build writes (or, before data contract 4, wrote) at a dataset's root."""
DATASET_DIRS = ("_commits", "shards", *INDEX_TABLES, PLAN_DIR, "qa", "logs")
"""Folders a build writes into; the commit markers' first."""


RETRY_FAILED = ("transient", "all")
"""``--retry-failed`` choices: build again the failed sources whose failure is transient, or all."""


@dataclass
class BuildPlan:
    """What a build has to do in a dataset: the units to build and what is committed already."""

    units: list[Unit]
    """The units still to build, in input order."""
    skipped: int
    """Inputs committed by earlier builds (and not built again)."""
    numerics: dict[str, dict[str, str]] | None
    """What the committed outputs were computed with (from one marker), or None."""

    @property
    def n_sources(self) -> int:
        """Sources still to build."""
        return sum(len(unit.sources) for unit in self.units)

    def sources(self) -> Iterator[Source]:
        """The sources still to build, in order, made one at a time."""
        return (source for unit in self.units for source in unit.sources)


def plan_build(storage: Storage, sources: Sequence[Source], config: BuildConfig, retry_failed: str | None = None,
               markers: list[MarkerName] | None = None) -> BuildPlan:
    """The units of ``sources`` still to build in the dataset at ``storage``.

    The inputs are cut into units (:func:`~pseudo3d.pipelines.plan.plan_units`); when every
    commit marker is one of those units (a resume with the same inputs and configuration), the
    pending units are the others, known from one listing of the markers. Otherwise (other inputs
    than before, or ``retry_failed``) the live markers that are not planned units are read, with
    their units' ``sources`` parts: their sources are done, and the remaining sources are cut into
    units numbered after the highest committed one. With ``retry_failed`` (:data:`RETRY_FAILED`)
    every live unit is read, and a unit with failed sources to build again (those whose failure is
    transient, or every failed one, that are still among ``sources``) is committed again: a unit
    whose base is its committed version and whose sources are those, with their next ``attempt``.
    Raises :class:`Pseudo3DError` where a marker comes from another configuration or data
    contract."""
    fingerprint = config.fingerprint()
    listed = SourceList.of(sources)
    markers = list_markers(storage) if markers is None else markers
    units = plan_units(listed, config.shards.max_sources, fingerprint, max_bytes=config.shards.max_unit_bytes)
    planned = {unit.marker for unit in units}
    committed = set(markers)
    numerics = _numerics(storage, markers)
    if retry_failed is None and committed <= planned:
        pending = [unit for unit in units if unit.marker not in committed]
        return BuildPlan(pending, sum(len(unit.sources) for unit in units if unit.marker in committed), numerics)

    commits = read_commits(storage, [marker for marker in live_markers(storage, markers)
                                     if retry_failed or marker not in planned])
    _check_commits(storage, commits, fingerprint)
    layout = IndexLayout(commits, live_compactions(storage))
    commits, broken, lost_compactions = layout.split_lost(present_files(storage))
    remove_broken(storage, broken, lost_compactions)  # their sources are built again
    lost = {commit.path for commit in broken}
    done = [SourceList.of(unit.sources).table.column("source_id") for unit in units
            if unit.marker in committed and unit.marker.path not in lost]
    again: list[Unit] = []
    for batch in layout.batches(commits, PART_BATCH):
        rows = _read_each(storage, layout, batch, "sources")
        done += [table.column("source_id").cast(pa.string()) for table in rows]
        if not retry_failed:
            continue
        failed = [{source_id for source_id, status in zip(table.column("source_id").to_pylist(),
                                                          table.column("status").to_pylist()) if status == "failed"}
                  for table in rows]
        inputs = _by_id(listed, set().union(*failed))
        failed = [ids & inputs.keys() for ids in failed]
        retried = [index for index, ids in enumerate(failed) if ids]
        failures = _read_each(storage, layout, [batch[index] for index in retried], "failures")
        for index, failure_rows in zip(retried, failures):
            unit = _retry_unit(batch[index], layout, rows[index], failed[index], failure_rows.to_pylist(), inputs,
                               retry_failed, fingerprint)
            again += [unit] if unit is not None else []
    done_ids = pa.chunked_array(done, pa.string()).combine_chunks() if done else pa.array([], pa.string())
    todo = listed.where(pc.invert(pc.is_in(listed.table.column("source_id"), value_set=done_ids)))
    retried_sources = sum(len(unit.sources) for unit in again)
    if retried_sources:
        log.info("building %d failed source(s) of %d unit(s) again (--retry-failed=%s)", retried_sources, len(again),
                 retry_failed)
    after = max((marker.unit for marker in markers), default=-1) + 1
    pending = plan_units(todo, config.shards.max_sources, fingerprint, first=after, max_bytes=config.shards.max_unit_bytes)
    return BuildPlan(again + pending,
                     len(listed) - len(todo) - retried_sources, numerics)


def _by_id(sources: SourceList, ids: set[str]) -> dict[str, Source]:
    """The sources among ``sources`` whose id is in ``ids``, by id."""
    if not ids:
        return {}
    wanted = pc.is_in(sources.table.column("source_id"), value_set=pa.array(sorted(ids), pa.string()))
    return {source.source_id: source for source in sources.where(wanted)}


def _read_each(storage: Storage, layout: IndexLayout, commits: list[Commit], table: str) -> list[pa.Table]:
    """Each commit's rows of index table ``table``, as one table per commit: the parts holding them
    (:meth:`IndexLayout.unit_parts`) fetched and decoded once each, a compacted part split by unit."""
    placed = [layout.unit_parts(commit, table) for commit in commits]
    paths = list(dict.fromkeys(path for parts in placed for path, _ in parts))
    decoded = {path: parts_table([(storage.url_of(path), data)], table)
               for path, data in zip(paths, storage.read_many(paths))}
    by_unit = {path: _split_by_unit(decoded[path]) for path in
               dict.fromkeys(path for parts in placed for path, units in parts if units is not None)}
    empty = parts_table([], table)
    tables = []
    for commit, parts in zip(commits, placed):
        own = [decoded[path] if units is None else by_unit[path].get(commit.unit, empty) for path, units in parts]
        tables.append(pa.concat_tables(own, promote_options="permissive") if len(own) > 1 else
                      own[0] if own else empty)
    return tables


def _split_by_unit(rows: pa.Table) -> dict[int, pa.Table]:
    """``rows`` (with a ``unit`` column) as one table per unit, each in its rows' order."""
    units = rows.column("unit").to_numpy()
    order = np.argsort(units, kind="stable")
    bounds = np.flatnonzero(np.diff(units[order])) + 1
    return {int(units[group[0]]): rows.take(pa.array(group)) for group in np.split(order, bounds) if len(group)}


def _retry_unit(commit: Commit, layout: IndexLayout, rows: pa.Table, failed: set[str], failures: list[dict],
                inputs: dict[str, Source], retry_failed: str, fingerprint: str) -> Unit | None:
    """``commit``'s unit (``rows``, ``failures``: its source and failure rows) committed again
    with those of its ``failed`` sources (still among ``inputs``) that ``retry_failed`` retries, or
    None where there are none. Its manifest rows stay where they are until its writer reads them."""
    if retry_failed == "transient":
        failed = failed & {row["source_id"] for row in failures if row.get("kind") == "transient"}
    if not failed:
        return None
    source_rows = rows.to_pylist()
    attempts = [(row["source_id"], (row["attempt"] or 1) + (row["source_id"] in failed)) for row in source_rows]
    retried = tuple(dataclasses.replace(inputs[source_id], attempt=attempt) for source_id, attempt in attempts
                    if source_id in failed)
    own = layout.covering(commit) is None  # else a compaction holds its rows, compacted again at the end of the build
    base = UnitBase(replaces=commit.path, shards=commit.shards, manifest=tuple(layout.unit_parts(commit, "manifest")),
                    sources=tuple(source_rows),
                    failures=tuple(row for row in failures if row["source_id"] not in failed),
                    dropped=tuple(path for table in INDEX_TABLES for path in commit.parts(table)) if own else (),
                    assets=dict(commit.stats.get("assets", {})))
    return Unit(commit.unit, retried, unit_digest(attempts, fingerprint), base)


def _numerics(storage: Storage, markers: list[MarkerName], batch: int = 8) -> dict[str, dict[str, str]] | None:
    """What the committed outputs were computed with: from the first marker that records it (a
    unit whose sources all failed records none; usually the first marker does), read one, then a
    few at a time."""
    for start, stop in [(0, 1), *((start, start + batch) for start in range(1, len(markers), batch))]:
        for commit in read_commits(storage, markers[start:stop]):
            if commit.stats.get("numerics"):
                return commit.stats["numerics"]
    return None


def _check_commits(storage: Storage, commits: list[Commit], fingerprint: str) -> None:
    _check_versions(storage, commits)
    # key=str: a commit without a fingerprint gives None, which does not compare with a str
    foreign = sorted({commit.stats.get("config_fingerprint") for commit in commits} - {fingerprint}, key=str)
    if foreign:
        raise Pseudo3DError(
            f"--out {storage.url} holds units built with a different configuration "
            f"(fingerprint {foreign[0]}, this build {fingerprint}); build into a new directory "
            "or pass --overwrite to replace the dataset")


def _check_versions(storage: Storage, commits: list[Commit]) -> None:
    versions = sorted({commit.schema_version for commit in commits} - {SCHEMA_VERSION}, key=str)
    if versions:
        raise Pseudo3DError(
            f"--out {storage.url} holds units of data contract version {versions[0]}; this pseudo3d writes "
            f"version {SCHEMA_VERSION}: build into a new directory or pass --overwrite (docs/data-contract.md, "
            "Versions). pseudo3d inspect, qa and training still read it.")


def prepare_output(storage: Storage, config: BuildConfig, lease: BuildLease, overwrite: bool = False) -> list[MarkerName]:
    """Create or reopen the dataset at ``storage``: check that it can be written, take ``lease``
    (:mod:`pseudo3d.pipelines.lease`), clear it with ``overwrite``, refuse a dataset of an older
    data contract, remove uncommitted debris. Returns the dataset's commit markers."""
    storage.check()
    if storage.is_file(""):
        raise Pseudo3DError(f"--out {storage.url}: exists and is not a directory")
    probe = f".write-test-{uuid.uuid4().hex}"
    try:
        if storage.is_local:
            storage.local_path(SHARD_DIR).mkdir(parents=True, exist_ok=True)
        storage.write_bytes(probe, b"")
        storage.delete(probe)
    except Exception as exc:  # noqa: BLE001 - no such bucket, access denied, a read-only filesystem, no route...
        raise Pseudo3DError(f"--out {storage.url}: cannot write there ({_reason(exc)})") from None
    lease.acquire()
    if overwrite:
        _clear(storage)

    legacy = [name for name in storage.list(SHARD_DIR) if name.endswith(".json")
              and LEGACY_SHARD.fullmatch(name[:-len(".json")])]
    if legacy:
        raise Pseudo3DError(
            f"--out {storage.url} holds shards of an older data contract (shards/{legacy[0]}); this pseudo3d "
            f"writes version {SCHEMA_VERSION}, which commits units instead: build into a new directory or pass "
            "--overwrite (docs/data-contract.md, Versions). pseudo3d inspect, qa and training still read it.")
    markers = list_markers(storage)
    _check_versions(storage, read_commits(storage, markers[:1]))  # before the clean-up, which knows this version only
    if storage.is_local:
        remove_spool(storage.local_path())  # samples an interrupted build had not written yet
    remove_plan(storage)  # a killed build's
    removed = remove_uncommitted(storage, markers)
    if removed:
        log.info("removed %d uncommitted file(s) left by an interrupted build", len(removed))
        markers = list_markers(storage)  # without the replaced ones it removed
    return markers


def scratch_dir(storage: Storage) -> Path:
    """The local folder a build of the dataset behind a URL keeps its spool and log in, while it
    runs: ``$XDG_CACHE_HOME/pseudo3d/builds/<hash of the URL>`` (``~/.cache`` by default), on
    disk rather than a RAM-backed ``/tmp``, and the same for every build of that dataset on this
    machine, so the next build clears what a killed one left. Where that cannot be created (no
    writable home, as in some containers), the system's temporary folder is used instead."""
    name = hashlib.sha256(storage.url.encode()).hexdigest()[:16]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    for folder in (cache / "pseudo3d" / "builds" / name, Path(tempfile.gettempdir()) / "pseudo3d-builds" / name):
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        return folder
    raise Pseudo3DError(f"--out {storage.url}: no local folder for the build's spool and log: neither {cache} nor "
                        f"{tempfile.gettempdir()} is writable (set XDG_CACHE_HOME to a writable folder)")


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or f"{type(exc).__name__}: {exc or 'no details'}"


def _clear(storage: Storage) -> None:
    """Remove what a build writes, and nothing else a user may keep beside it: the commit markers
    first, so that one interrupted here leaves only shards no marker names (debris)."""
    for name in DATASET_DIRS:
        storage.delete_tree(name)
    for name in DATASET_FILES:
        storage.delete(name)
