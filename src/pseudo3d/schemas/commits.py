"""Commit markers: what a dataset holds, as its writers committed it (docs/data-contract.md,
"Commit protocol").

A dataset is the set of its commit markers. Since data contract 3, each *unit* (a run of
consecutive inputs that one worker builds) is committed by one marker,
``_commits/unit-UUUUUU-DIGEST.json``, created only where none of that name exists; it names the
shards the unit's writer wrote and carries the unit's source rows, failure rows and counts. A
shard no marker names is not part of the dataset (a writer that died, or lost the race to
commit). Data contract 2 datasets (``shards/shard-NNNNNN.json`` beside each tar) are read the
same way: each shard JSON is a marker of one unit with one shard.
"""

from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass, field
from typing import Any

from pseudo3d.schemas.layout import (COMMIT_DIR, LEGACY_SHARD, SHARD_DIR, marker_name, parse_marker_name,
                                     parse_shard_name)
from pseudo3d.errors import Pseudo3DError
from pseudo3d.storage import Storage


@dataclass(frozen=True)
class ShardFile:
    """One committed shard: a tar and its sidecar parquet, as its marker describes them."""

    name: str
    """The stem, ``shard-UUUUUU-PP-ATTEMPT`` (``shard-NNNNNN`` in data contract 2)."""
    n_samples: int
    n_bytes: int
    sha256: str
    n_frames: int
    seconds: float
    keys: tuple[str, ...] = ()

    @property
    def tar(self) -> str:
        """The tar's path relative to the dataset root."""
        return f"{SHARD_DIR}/{self.name}.tar"

    @property
    def parquet(self) -> str:
        return f"{SHARD_DIR}/{self.name}.parquet"

    @classmethod
    def of(cls, stats: dict[str, Any]) -> "ShardFile":
        return cls(name=stats["shard"], n_samples=int(stats["n_samples"]), n_bytes=int(stats["n_bytes"]),
                   sha256=stats["sha256"], n_frames=int(stats["n_frames"]), seconds=float(stats["seconds"]),
                   keys=tuple(stats.get("keys", ())))


@dataclass(frozen=True)
class Commit:
    """One commit marker: unit ``unit``'s sources, failures and shards."""

    path: str
    """The marker's path relative to the dataset root."""
    unit: int
    stats: dict[str, Any]
    shards: tuple[ShardFile, ...] = field(default=())

    @property
    def sources(self) -> list[dict[str, Any]]:
        return self.stats["sources"]

    @property
    def failures(self) -> list[dict[str, Any]]:
        return self.stats["failures"]

    @property
    def schema_version(self) -> Any:
        return self.stats.get("schema_version")


@dataclass(frozen=True, order=True)
class MarkerName:
    """A commit marker known from a listing alone: its unit and digest."""

    unit: int
    digest: str

    @property
    def path(self) -> str:
        return posixpath.join(COMMIT_DIR, marker_name(self.unit, self.digest))


def list_markers(storage: Storage) -> list[MarkerName]:
    """The commit markers of the dataset at ``storage`` (data contract 3), by unit: one listing,
    no reads."""
    found = (parse_marker_name(name) for name in storage.list(COMMIT_DIR))
    return sorted(MarkerName(*parsed) for parsed in found if parsed is not None)


def read_commits(storage: Storage, markers: list[MarkerName] | None = None) -> list[Commit]:
    """The commits of the dataset at ``storage``, by unit: the markers ``markers`` (default: all
    of them), read concurrently on object stores; for a data contract 2 dataset (no
    ``_commits/``), its committed shards' JSON files."""
    if markers is None:
        markers = list_markers(storage)
        if not markers:
            return legacy_commits(storage)
    contents = storage.read_many([marker.path for marker in markers])
    commits = []
    for marker, data in zip(markers, contents):
        try:
            stats = json.loads(data)
            commits.append(Commit(marker.path, marker.unit, stats,
                                  tuple(ShardFile.of(shard) for shard in stats["shards"])))
        except (ValueError, KeyError, TypeError) as exc:
            raise Pseudo3DError(f"{storage.url_of(marker.path)} is not a commit marker ({type(exc).__name__}: "
                                f"{exc}); delete it, and a build rebuilds its unit") from None
    return commits


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


def current_sources(commits: list[Commit]) -> dict[str, tuple[Commit, dict[str, Any]]]:
    """Source id → (the commit, the source row) of each source's highest ``attempt``: a source
    built again by ``--retry-failed`` keeps its old failed row in its old unit, and this row
    supersedes it. Only failed sources (which have no samples) are ever built again."""
    current: dict[str, tuple[Commit, dict[str, Any]]] = {}
    for commit in commits:
        for row in commit.sources:
            held = current.get(row["source_id"])
            if held is None or row.get("attempt", 1) > held[1].get("attempt", 1):
                current[row["source_id"]] = (commit, row)
    return current


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
