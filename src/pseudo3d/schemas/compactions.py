"""Compactions, and where each unit's index rows are (docs/data-contract.md, "Compaction").

A build writes one part per unit of each index table; a large dataset has thousands. ``pseudo3d
compact`` merges the parts of a run of consecutive units ``A``..``B`` into one part per table,
``TABLE/part-AAAAAA-BBBBBB-ATTEMPT.parquet``, and commits it by *creating* a compaction marker,
``_commits/compact-AAAAAA-BBBBBB-DIGEST.json``, which names those parts, the unit markers whose
rows they hold (``covers``) and the compactions it takes the place of (``replaces``). The unit
markers stay as they are: they still name their units' shards and carry their counts; the parts
they name are deleted once a compaction covers them.

Where a live unit's rows are (:class:`IndexLayout`): in the parts of the live compaction that
covers its live marker, or else in the parts its own marker names. A compaction's rows of a unit
whose marker it covers but which is no longer live (``--retry-failed`` committed the unit again)
are *stale*: readers skip them (:meth:`IndexLayout.parts` says which units of a part to keep), and
the end of every build compacts such a run again (:func:`pseudo3d.pipelines.compact.refresh`), so
that a plain Parquet reader of the folders sees each row once.
"""

from __future__ import annotations

import bisect
import json
import posixpath
from dataclasses import dataclass, field
from typing import Any, Iterator

from pseudo3d.errors import Pseudo3DError
from pseudo3d.schemas.commits import Commit, check_parts, list_markers, live_markers, read_commits
from pseudo3d.schemas.layout import (COMMIT_DIR, INDEX_TABLES, SHARD_DIR, parse_compacted_part_path,
                                     parse_compaction_name, parse_marker_name)
from pseudo3d.schemas.version import SCHEMA_VERSION
from pseudo3d.storage import Storage


@dataclass(frozen=True)
class Compaction:
    """One compaction marker: the merged index parts of units ``first``..``last``."""

    path: str
    """The marker's path relative to the dataset root."""
    first: int
    last: int
    stats: dict[str, Any]

    @property
    def covers(self) -> dict[int, str]:
        """Unit → the path of the unit marker whose rows the parts hold."""
        return {int(unit): path for unit, path in self.stats["covers"].items()}

    def parts(self, table: str) -> tuple[str, ...]:
        """Its part of index table ``table`` (none where no covered unit has rows there)."""
        return tuple(self.stats["parts"].get(table, ()))

    @property
    def replaces(self) -> tuple[str, ...]:
        """The paths of the compaction markers it takes the place of."""
        return tuple(self.stats.get("replaces", ()))

    @property
    def rows(self) -> dict[str, int]:
        """Rows of each index table in its parts."""
        return {table: int(self.stats["rows"].get(table, 0)) for table in INDEX_TABLES}

    def files(self) -> list[str]:
        return [path for table in INDEX_TABLES for path in self.parts(table)]


def compaction_paths(names: list[str]) -> list[str]:
    """The compaction markers among the names of ``_commits/``'s entries, as paths."""
    return sorted(posixpath.join(COMMIT_DIR, name) for name in names if parse_compaction_name(name))


def read_compactions(storage: Storage, paths: list[str]) -> list[Compaction]:
    """The compaction markers ``paths``, checked. Raises :class:`Pseudo3DError` naming one that is
    not a compaction marker of this data contract."""
    compactions = []
    for path, data in zip(paths, storage.read_many(paths)):
        first, last, _ = parse_compaction_name(posixpath.basename(path)) or (0, -1, "")
        try:
            compactions.append(Compaction(path, first, last, json.loads(data)))
            _check_compaction(compactions[-1])
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise Pseudo3DError(f"{storage.url_of(path)} is not a compaction marker ({type(exc).__name__}: {exc}); "
                                "delete it, then run the build twice: the first removes the units whose index "
                                "rows it held (and says so), the second builds them again") from None
    return compactions


def live_compactions(storage: Storage, names: list[str] | None = None) -> list[Compaction]:
    """The dataset's compactions that no other one replaces, by first unit. ``names``: a listing of
    ``_commits/``, if done already. Raises :class:`Pseudo3DError` where two live ones overlap (two
    processes compacted at once, despite the lease)."""
    names = storage.list(COMMIT_DIR) if names is None else names
    compactions = read_compactions(storage, compaction_paths(names))
    replaced = {path for compaction in compactions for path in compaction.replaces}
    live = sorted((compaction for compaction in compactions if compaction.path not in replaced),
                  key=lambda compaction: compaction.first)
    for before, after in zip(live, live[1:]):
        if after.first <= before.last:
            raise Pseudo3DError(f"{storage.url_of(before.path)} and {storage.url_of(after.path)} both compact unit "
                                f"{after.first}: two processes wrote into this dataset at once; delete the newer "
                                "one and run `pseudo3d compact` again")
    return live


def replaced_compactions(storage: Storage, names: list[str], live: list[Compaction]) -> list[str]:
    """The paths of the compaction markers among ``names`` (a listing of ``_commits/``) that are not
    ``live``: another one replaced them."""
    kept = {compaction.path for compaction in live}
    return [path for path in compaction_paths(names) if path not in kept]


def _check_compaction(compaction: Compaction) -> None:
    """Raise ``ValueError`` where a compaction marker is not one this data contract wrote: every
    file it names (parts, covered and replaced markers) one of its own run of units, so that
    nothing outside it is ever read or deleted on its word."""
    stats = compaction.stats
    if compaction.last < compaction.first or not 4 <= int(stats["schema_version"]) <= SCHEMA_VERSION:
        raise ValueError(f"its name or data contract version ({stats['schema_version']}) is not a compaction's")
    if (stats["kind"], stats["first"], stats["last"]) != ("compaction", compaction.first, compaction.last):
        raise ValueError(f"it says it is a {stats['kind']} of units {stats['first']}..{stats['last']}, its name "
                         f"units {compaction.first}..{compaction.last}")
    for unit, path in compaction.covers.items():
        parsed = parse_marker_name(posixpath.basename(path))
        if (posixpath.dirname(path) != COMMIT_DIR or parsed is None or parsed[0] != unit
                or not compaction.first <= unit <= compaction.last):
            raise ValueError(f"it covers {path!r} as unit {unit}, not a marker of one of units "
                             f"{compaction.first}..{compaction.last}")
    span = (compaction.first, compaction.last)
    check_parts(compaction.stats["parts"], lambda table, path: (parse_compacted_part_path(path) or ())[:3] == (table, *span),
                f"the compaction of units {compaction.first}..{compaction.last}")
    for path in compaction.replaces:
        run = parse_compaction_name(posixpath.basename(path))
        if (posixpath.dirname(path) != COMMIT_DIR or run is None
                or not compaction.first <= run[0] <= run[1] <= compaction.last):
            raise ValueError(f"it replaces {path!r}, not a compaction within units {compaction.first}..{compaction.last}")
    rows = compaction.stats["rows"]
    if set(rows) - set(INDEX_TABLES) or not all(isinstance(n, int) and n >= 0 for n in rows.values()):
        raise ValueError(f"its rows are not counts of {', '.join(INDEX_TABLES)}")


Part = tuple[str, "frozenset[int] | None"]
"""A part of an index table, relative to the dataset root, and the units whose rows to keep of it
(None: all of them)."""


@dataclass
class IndexLayout:
    """Where the index rows of a dataset's live units are: their own parts, or a live compaction's.

    ``commits``: the live unit commits (:meth:`unit_parts`, :meth:`files` and :meth:`batches` also
    work on some of them; :meth:`parts`, :meth:`stale` and :meth:`split_lost` need all);
    ``compactions``: the live compactions (:func:`live_compactions`)."""

    commits: list[Commit]
    compactions: list[Compaction]
    _covering: dict[str, Compaction] = field(init=False, repr=False)
    _by_unit: list[Commit] = field(init=False, repr=False)
    _units: list[int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        live = {commit.path for commit in self.commits}
        self._covering = {path: compaction for compaction in self.compactions
                          for path in compaction.covers.values() if path in live}
        self._by_unit = sorted(self.commits, key=lambda commit: commit.unit)
        self._units = [commit.unit for commit in self._by_unit]

    def members(self, compaction: Compaction) -> list[Commit]:
        """The live commits of ``compaction``'s run of units (``first``..``last``), by unit."""
        return self._by_unit[bisect.bisect_left(self._units, compaction.first):
                             bisect.bisect_right(self._units, compaction.last)]

    def covering(self, commit: Commit) -> Compaction | None:
        """The compaction holding ``commit``'s rows, or None (its own parts hold them)."""
        return self._covering.get(commit.path)

    def kept_units(self, compaction: Compaction) -> frozenset[int] | None:
        """The units whose rows of ``compaction``'s parts are live: None where all of them are."""
        kept = frozenset(unit for unit, path in compaction.covers.items() if self._covering.get(path) is compaction)
        return None if len(kept) == len(compaction.covers) else kept

    def parts(self, table: str) -> list[Part]:
        """The parts of index table ``table`` holding the live units' rows, by unit, each with the
        units to keep of it."""
        placed: list[tuple[int, Part]] = [(commit.unit, (path, None)) for commit in self.commits
                                          if self.covering(commit) is None for path in commit.parts(table)]
        for compaction in self.compactions:
            kept = self.kept_units(compaction)
            if kept is None or kept:
                placed += [(compaction.first, (path, kept)) for path in compaction.parts(table)]
        return [part for _, part in sorted(placed, key=lambda placed: placed[0])]

    def unit_parts(self, commit: Commit, table: str) -> list[Part]:
        """The parts holding ``commit``'s rows of index table ``table``, each with the units to keep."""
        compaction = self.covering(commit)
        if compaction is None:
            return [(path, None) for path in commit.parts(table)]
        return [(path, frozenset([commit.unit])) for path in compaction.parts(table)]

    def files(self, commit: Commit) -> list[str]:
        """The files ``commit``'s unit needs: its shards and the parts holding its rows."""
        return [*(shard.tar for shard in commit.shards),
                *(path for table in INDEX_TABLES for path, _ in self.unit_parts(commit, table))]

    def stale(self) -> list[Compaction]:
        """The live compactions whose run of units changed since they were written: a unit they
        cover was committed again or removed, or a unit of their run was committed since."""
        return [compaction for compaction in self.compactions
                if {commit.path for commit in self.members(compaction)} != set(compaction.covers.values())]

    def batches(self, commits: list[Commit], size: int) -> Iterator[list[Commit]]:
        """``commits`` in their order, in batches whose rows are read together: at most ``size``
        units with parts of their own, or the units one compaction covers."""
        batch: list[Commit] = []
        for commit in commits:
            compaction = self.covering(commit)
            if batch and (self.covering(batch[-1]) is not compaction or compaction is None and len(batch) >= size):
                yield batch
                batch = []
            batch.append(commit)
        if batch:
            yield batch

    def split_lost(self, present: set[str]) -> tuple[list[Commit], list[Commit], list[Compaction]]:
        """(sound units, broken units, broken compactions) given the files ``present`` (paths
        relative to the dataset root): a unit is broken where a shard or a part holding its rows is
        gone, a compaction where one of its parts is (and with it every unit it holds)."""
        broken_compactions = [compaction for compaction in self.compactions
                              if not all(path in present for path in compaction.files())]
        sound: list[Commit] = []
        broken: list[Commit] = []
        for commit in self.commits:
            (sound if all(path in present for path in self.files(commit)) else broken).append(commit)
        return sound, broken, broken_compactions


def present_files(storage: Storage) -> set[str]:
    """The shards and index parts in the dataset at ``storage``: one listing of each folder."""
    return {f"{folder}/{name}" for folder in (SHARD_DIR, *INDEX_TABLES) for name in storage.list(folder)}


LAYOUT_BATCH = 64
"""Unit markers read concurrently at a time."""


def read_layout(storage: Storage) -> IndexLayout:
    """The index layout of the dataset at ``storage`` (data contract 4): its live unit commits,
    read :data:`LAYOUT_BATCH` at a time, and its live compactions; one listing of ``_commits/``."""
    names = storage.list(COMMIT_DIR)
    markers = live_markers(storage, list_markers(storage, names))
    commits: list[Commit] = []
    for start in range(0, len(markers), LAYOUT_BATCH):
        commits += read_commits(storage, markers[start:start + LAYOUT_BATCH])
    return IndexLayout(commits, live_compactions(storage, names))
