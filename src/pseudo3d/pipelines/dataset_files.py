"""Dataset-level files, derived from the committed shards alone.

``sources.parquet``, ``failures.parquet``, ``manifest.parquet`` and ``dataset.json`` are views over
the commit markers and the shards' sidecar parquet files, rewritten (atomically) at the end of
every build, so they always agree with what is committed, after a resume too. Markers are read a
batch at a time and kept as Arrow tables: a few hundred bytes per source in the driver.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import importlib.metadata
import json
import logging
import platform
from collections import Counter
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

import pseudo3d
from pseudo3d.config import BuildConfig
from pseudo3d.errors import Pseudo3DError
from pseudo3d.schemas.commits import Commit, legacy_commits, list_markers, read_commits
from pseudo3d.schemas.layout import SHARD_DIR
from pseudo3d.schemas.sample import to_jsonable
from pseudo3d.schemas.tables import FAILURES_SCHEMA, MANIFEST_BASE_SCHEMA, SOURCES_SCHEMA, table_from_rows
from pseudo3d.schemas.version import SCHEMA_VERSION
from pseudo3d.storage import Storage, parquet_bytes

log = logging.getLogger(__name__)


MARKER_BATCH = 64
"""Commit markers (and then shard sidecars) read concurrently at a time; markers are turned into
Arrow tables batch by batch, so the driver never holds more than this many markers' JSON."""


@dataclasses.dataclass
class _Unit:
    """What the dataset files need of one commit, columnar: its rows as Arrow tables, its shards
    and its card entries."""

    commit: Commit
    sources: pa.Table
    failures: pa.Table


def _read_units(storage: Storage, fingerprint: str) -> tuple[list[_Unit], list[Commit], dict[str, int]]:
    """The dataset's commits, checked, as (sound units, broken commits, source id → its highest
    attempt). Markers are read :data:`MARKER_BATCH` at a time and kept as Arrow tables, so the
    driver holds a few hundred bytes per source, not the markers' JSON.

    Raises :class:`Pseudo3DError` where a commit comes from another configuration or a source is
    committed twice in one attempt (two builds wrote at once). A commit that lost a shard is broken:
    the caller removes it, so that the next build rebuilds its unit."""
    markers = list_markers(storage)
    batches: Iterator[list[Commit]] = (
        (read_commits(storage, markers[start:start + MARKER_BATCH]) for start in range(0, len(markers), MARKER_BATCH))
        if markers else iter([legacy_commits(storage)]))
    present = set(storage.list(SHARD_DIR))
    units: list[_Unit] = []
    broken: list[Commit] = []
    foreign: list[str] = []
    seen: dict[tuple[str, int], str] = {}
    best: dict[str, int] = {}
    for commits in batches:
        for commit in commits:
            if commit.stats.get("config_fingerprint") != fingerprint:
                foreign.append(commit.path)
                continue
            for row in commit.sources:
                key = (row["source_id"], row.get("attempt", 1))
                twice = seen.setdefault(key, commit.path)
                if twice != commit.path:
                    raise Pseudo3DError(f"{key[0]} is committed by both {storage.url_of(twice)} and "
                                        f"{storage.url_of(commit.path)}: two builds wrote into this dataset at once; "
                                        "rebuild it with --overwrite")
            if any(name not in present for shard in commit.shards for name in (f"{shard.name}.tar", f"{shard.name}.parquet")):
                broken.append(commit)
                continue
            for row in commit.sources:
                attempt = row.get("attempt", 1)
                best[row["source_id"]] = max(best.get(row["source_id"], attempt), attempt)
            stats = {name: value for name, value in commit.stats.items() if name not in ("sources", "failures")}
            shards = tuple(dataclasses.replace(shard, keys=()) for shard in commit.shards)  # keys: per clip
            units.append(_Unit(Commit(commit.path, commit.unit, stats, shards),
                               table_from_rows(commit.sources, SOURCES_SCHEMA),
                               table_from_rows(commit.failures, FAILURES_SCHEMA)))
    if foreign:
        raise Pseudo3DError(f"{storage.url_of(foreign[0])} (and {len(foreign) - 1} more) comes from a build with another "
                            "configuration: two builds wrote into this dataset; rebuild it with --overwrite")
    return units, broken, best


def _remove(storage: Storage, broken: list[Commit]) -> None:
    """Delete broken commits' markers (first) and their remaining shards."""
    for commit in broken:
        storage.delete(commit.path)
        for shard in commit.shards:
            storage.delete(shard.tar)
            storage.delete(shard.parquet)
        log.warning("unit %d had lost a shard; its marker was removed, so the next build rebuilds it", commit.unit)


PACKAGES = ("numpy", "av", "mediapipe", "opencv-contrib-python", "pyarrow", "scipy", "soundfile")


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version(), "pseudo3d": pseudo3d.__version__}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def write_dataset_files(storage: Storage, config: BuildConfig) -> dict[str, Any]:
    """Write the four dataset-level files into the dataset at ``storage``; returns the card
    (``dataset.json``) as a dict. Raises :class:`Pseudo3DError` where the commits break the
    dataset's guarantees (:func:`_read_units`), and, after writing the files of the rest, where
    units had lost shards (they are removed: running the build again rebuilds them)."""
    units, broken, best = _read_units(storage, config.fingerprint())
    _remove(storage, broken)
    card = _write(storage, config, units, best)
    if broken:
        raise Pseudo3DError(f"{len(broken)} unit(s) of {storage.url} had lost shards (unit {broken[0].unit} first); "
                            "they were removed from the dataset: run the same command again to rebuild them")
    return card


def _current(unit: _Unit, best: dict[str, int]) -> tuple[pa.Table, pa.Table]:
    """The unit's source rows of each source's highest attempt (a source built again by
    ``--retry-failed`` keeps its old failed row in its old unit; the new one supersedes it), and
    the failure rows of those sources."""
    ids, attempts = unit.sources.column("source_id").to_pylist(), unit.sources.column("attempt").to_pylist()
    keep = pa.array([best[source_id] == (attempt or 1) for source_id, attempt in zip(ids, attempts)], pa.bool_())
    sources = unit.sources.filter(keep)
    failures = unit.failures.filter(pc.is_in(unit.failures.column("source_id"), value_set=sources.column("source_id")))
    return sources, failures


def _write(storage: Storage, config: BuildConfig, units: list[_Unit], best: dict[str, int]) -> dict[str, Any]:
    current = [_current(unit, best) for unit in units]
    sources = pa.concat_tables([table for table, _ in current]) if current else SOURCES_SCHEMA.empty_table()
    failures = pa.concat_tables([table for _, table in current]) if current else FAILURES_SCHEMA.empty_table()
    del current
    shards = [shard for unit in units for shard in unit.commit.shards]
    storage.write_bytes("sources.parquet", parquet_bytes(sources))
    storage.write_bytes("failures.parquet", parquet_bytes(failures))
    manifests: list[pa.Table] = []
    for start in range(0, len(shards), MARKER_BATCH):
        paths = [shard.parquet for shard in shards[start:start + MARKER_BATCH]]
        manifests.extend(table for table in (pq.read_table(pa.BufferReader(data)) for data in storage.read_many(paths))
                         if table.num_rows)
    manifest = (pa.concat_tables(manifests, promote_options="permissive") if manifests
                else MANIFEST_BASE_SCHEMA.empty_table())
    del manifests
    storage.write_bytes("manifest.parquet", parquet_bytes(manifest))

    status = Counter(sources.column("status").to_pylist())
    assets: dict[str, str] = {}
    numerics: list[dict] = []
    for unit in units:
        assets.update(unit.commit.stats.get("assets", {}))
        if unit.commit.stats.get("numerics") and unit.commit.stats["numerics"] not in numerics:
            numerics.append(unit.commit.stats["numerics"])
    card = {
        "schema_version": SCHEMA_VERSION,
        "built_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "config": config.card_dict(),
        "config_fingerprint": config.fingerprint(),
        "packages": package_versions(),
        "assets": dict(sorted(assets.items())),
        "numerics": numerics,
        "counts": {
            "inputs": sources.num_rows,
            "ok": status.get("ok", 0),
            "failed": status.get("failed", 0),
            "clips": manifest.num_rows,
            "units": len(units),
            "shards": len(shards),
            "frames": int(sum(shard.n_frames for shard in shards)),
            "failures_by_stage": dict(sorted(Counter(failures.column("stage").to_pylist()).items())),
            "failures_by_error": dict(sorted(Counter(failures.column("error").to_pylist()).items())),
        },
        "hours": {
            "input": (pc.sum(sources.column("duration_s")).as_py() or 0.0) / 3600.0,
            "kept": sum(shard.seconds for shard in shards) / 3600.0,
        },
        "files": {
            "shards": [shard.tar for shard in shards],
            "manifest": "manifest.parquet",
            "sources": "sources.parquet",
            "failures": "failures.parquet",
        },
    }
    storage.write_bytes("dataset.json", (json.dumps(to_jsonable(card), indent=2, sort_keys=True) + "\n").encode())
    return card
