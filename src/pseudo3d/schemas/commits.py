"""Commit markers: what a dataset holds, as its writers committed it (docs/data-contract.md,
"Commit protocol").

A dataset is the set of its commit markers. Each *unit* (a run of consecutive inputs that one
worker builds) is committed by one marker, ``_commits/unit-UUUUUU-DIGEST.json``, created only
where none of that name exists; it names the files the unit's writer wrote (since data contract 4:
its shards and its parts of the index tables ``manifest/``, ``sources/`` and ``failures/``) and
carries the unit's counts. A file no marker names is not part of the dataset (a writer that died,
or lost the race to commit). ``--retry-failed`` commits a new version of a unit under a new digest;
its marker names the marker it *replaces*, which is no longer live (:func:`live_markers`).

Older data contracts are read the same way: a version 3 marker carries its source and failure rows
itself and names shards with a ``.parquet`` sidecar each; a version 2 dataset's
``shards/shard-NNNNNN.json`` is the marker of a unit of one shard.
"""

from __future__ import annotations

import json
import posixpath
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

from pseudo3d.schemas.layout import (COMMIT_DIR, INDEX_TABLES, LEGACY_SHARD, SHARD_DIR, marker_name,
                                     parse_marker_name, parse_part_path, parse_shard_name)
from pseudo3d.errors import Pseudo3DError
from pseudo3d.storage import Storage


@dataclass(frozen=True)
class ShardFile:
    """One committed shard, as its marker describes it."""

    name: str
    """The stem, ``shard-UUUUUU-PP-ATTEMPT`` (``shard-NNNNNN`` in data contract 2)."""
    n_samples: int
    n_bytes: int
    sha256: str
    n_frames: int
    seconds: float

    @property
    def tar(self) -> str:
        """The tar's path relative to the dataset root."""
        return f"{SHARD_DIR}/{self.name}.tar"

    @property
    def sidecar(self) -> str:
        """Data contracts 2 and 3: the shard's manifest rows, a ``.parquet`` beside its tar."""
        return f"{SHARD_DIR}/{self.name}.parquet"

    @classmethod
    def of(cls, stats: dict[str, Any]) -> "ShardFile":
        return cls(name=stats["shard"], n_samples=int(stats["n_samples"]), n_bytes=int(stats["n_bytes"]),
                   sha256=stats["sha256"], n_frames=int(stats["n_frames"]), seconds=float(stats["seconds"]))


@dataclass(frozen=True)
class Commit:
    """One commit marker: unit ``unit``'s shards, index parts and counts."""

    path: str
    """The marker's path relative to the dataset root."""
    unit: int
    stats: dict[str, Any]
    shards: tuple[ShardFile, ...] = field(default=())

    @property
    def schema_version(self) -> Any:
        return self.stats.get("schema_version")

    def parts(self, table: str) -> tuple[str, ...]:
        """The unit's parts of index table ``table`` (:data:`~pseudo3d.schemas.layout.INDEX_TABLES`),
        paths relative to the dataset root; none before data contract 4."""
        return tuple(self.stats.get("parts", {}).get(table, ()))

    @property
    def replaces(self) -> str | None:
        """The path of the marker this one replaces (a unit committed again by
        ``--retry-failed``), or None."""
        return self.stats.get("replaces")

    @property
    def counts(self) -> dict[str, Any]:
        """The unit's counts (data contract 4): ``sources``, ``ok``, ``failed``, ``failures``,
        ``failures_by_stage``, ``failures_by_error``, ``input_seconds``."""
        return self.stats.get("counts", {})

    def files(self) -> list[str]:
        """Every file the marker names, paths relative to the dataset root."""
        named = [shard.tar for shard in self.shards]
        if self.schema_version is not None and int(self.schema_version) < 4:
            named += [shard.sidecar for shard in self.shards]
        return named + [path for table in INDEX_TABLES for path in self.parts(table)]


@dataclass(frozen=True, order=True)
class MarkerName:
    """A commit marker known from a listing alone: its unit and digest."""

    unit: int
    digest: str

    @property
    def path(self) -> str:
        return posixpath.join(COMMIT_DIR, marker_name(self.unit, self.digest))


def check_parts(parts: Any, named: Callable[[str, str], bool], owner: str) -> None:
    """Raise ``ValueError`` unless a marker's ``parts`` maps index tables to lists of paths that
    ``named(table, path)`` accepts as that table's parts of ``owner`` (words for messages)."""
    if not isinstance(parts, dict) or set(parts) - set(INDEX_TABLES):
        raise ValueError(f"its parts are not a mapping of {', '.join(INDEX_TABLES)}")
    for table, paths in parts.items():
        for path in paths:
            if not named(table, path):
                raise ValueError(f"it names {path!r}, not a {table} part of {owner}")


def list_markers(storage: Storage, names: list[str] | None = None) -> list[MarkerName]:
    """The commit markers of the dataset at ``storage`` (data contract 3), by unit: one listing,
    no reads. ``names``: that listing of ``_commits/``, if done already."""
    found = (parse_marker_name(name) for name in (storage.list(COMMIT_DIR) if names is None else names))
    return sorted(MarkerName(*parsed) for parsed in found if parsed is not None)


def live_markers(storage: Storage, markers: list[MarkerName] | None = None) -> list[MarkerName]:
    """``markers`` (default: a listing of the dataset's) without those another one replaces. Only
    the markers of units with more than one are read: a unit committed again by
    ``--retry-failed`` whose old marker was not deleted yet. Raises :class:`Pseudo3DError` where a
    unit is left with two (two builds wrote at once, despite the lease)."""
    markers = list_markers(storage) if markers is None else markers
    by_unit: dict[int, list[MarkerName]] = {}
    for marker in markers:
        by_unit.setdefault(marker.unit, []).append(marker)
    several = [marker for group in by_unit.values() if len(group) > 1 for marker in group]
    if not several:
        return markers
    replaced = {commit.replaces for commit in read_commits(storage, several)}
    live = [marker for marker in markers if marker.path not in replaced]
    twice = sorted(unit for unit, count in Counter(marker.unit for marker in live).items() if count > 1)
    if twice:
        names = [storage.url_of(marker.path) for marker in live if marker.unit == twice[0]]
        raise Pseudo3DError(f"unit {twice[0]} is committed twice ({' and '.join(names)}): two builds wrote into this "
                            "dataset at once; rebuild it with --overwrite")
    return live


def read_commits(storage: Storage, markers: list[MarkerName] | None = None) -> list[Commit]:
    """The commits of the dataset at ``storage``, by unit: the markers ``markers`` (default: the
    live ones, :func:`live_markers`), read concurrently on object stores; for a data contract 2
    dataset (no ``_commits/``), its committed shards' JSON files."""
    if markers is None:
        markers = list_markers(storage)
        if not markers:
            return legacy_commits(storage)
        markers = live_markers(storage, markers)
    contents = storage.read_many([marker.path for marker in markers])
    commits = []
    for marker, data in zip(markers, contents):
        try:
            stats = json.loads(data)
            commits.append(Commit(marker.path, marker.unit, stats,
                                  tuple(ShardFile.of(shard) for shard in stats["shards"])))
            _check_marker(commits[-1])
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise Pseudo3DError(f"{storage.url_of(marker.path)} is not a commit marker ({type(exc).__name__}: "
                                f"{exc}); delete it, and a build rebuilds its unit") from None
    return commits


COUNTS = ("sources", "ok", "failed", "failures", "failures_by_stage", "failures_by_error", "input_seconds")
"""What a data contract 4 marker counts."""


def _check_marker(commit: Commit) -> None:
    """Raise ``ValueError`` where a marker is not one this data contract wrote as it should be:
    every file it names a shard or index part of its own unit (so that nothing outside the
    dataset, or another unit's, is ever read or deleted on its word), its counts all there."""
    for shard in commit.shards:
        parsed = parse_shard_name(shard.name) if int(commit.schema_version or 0) >= 3 else (commit.unit, 0, "")
        if parsed is None or parsed[0] != commit.unit:
            raise ValueError(f"it names shard {shard.name!r}, not one of unit {commit.unit}'s")
    if int(commit.schema_version or 0) < 4:
        return
    check_parts(commit.stats["parts"], lambda table, path: (parse_part_path(path) or ())[:2] == (table, commit.unit),
                f"unit {commit.unit}")
    counts = commit.stats["counts"]
    missing = [name for name in COUNTS if name not in counts]
    if missing:
        raise ValueError(f"its counts lack {', '.join(missing)}")


def legacy_commits(storage: Storage) -> list[Commit]:
    """A data contract 2 dataset's committed shards (a ``shard-NNNNNN.json`` beside its tar), each
    as the commit of a unit of one shard."""
    names = set(storage.list(SHARD_DIR))
    stems = sorted(name[:-len(".json")] for name in names
                   if name.endswith(".json") and LEGACY_SHARD.fullmatch(name[:-len(".json")])
                   and f"{name[:-len('.json')]}.tar" in names)
    paths = [f"{SHARD_DIR}/{stem}.json" for stem in stems]
    commits = []
    for path, data in zip(paths, storage.read_many(paths)):
        stats = json.loads(data)
        commits.append(Commit(path, int(stats["index"]), stats, (ShardFile.of(stats),)))
    return commits


def committed_shards(commits: list[Commit]) -> list[ShardFile]:
    """Every shard the commits name, by unit and part."""
    return [shard for commit in commits for shard in commit.shards]


def find_shard(folder: Storage, name: str) -> ShardFile | None:
    """What the commit marker naming the shard file ``name`` (a ``.tar`` in ``folder``, a dataset's
    ``shards/``) says of it, or None where no marker names it (an interrupted or losing writer's
    shard). Reads only the markers of the shard's unit."""
    stem = name[:-len(".tar")] if name.endswith(".tar") else name
    parsed = parse_shard_name(stem)
    if parsed is None:
        if LEGACY_SHARD.fullmatch(stem) and folder.is_file(f"{stem}.json"):
            return ShardFile.of(json.loads(folder.read_bytes(f"{stem}.json")))
        return None
    root = dataset_of(folder)
    markers = [marker for marker in list_markers(root) if marker.unit == parsed[0]]
    for commit in read_commits(root, markers):
        for shard in commit.shards:
            if shard.name == stem:
                return shard
    return None


def dataset_of(folder: Storage) -> Storage:
    """The dataset a shards folder ``folder`` belongs to: its parent folder."""
    return Storage(folder.url.rstrip("/").rpartition("/")[0] or "/", option=folder.option)
