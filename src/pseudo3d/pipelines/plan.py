"""The build plan: the pending sources cut into units, the pieces of work one worker builds and
commits on its own (docs/data-contract.md, "Commit protocol").

A unit is a run of at most ``shards.max_sources`` consecutive pending sources, in input order,
whose input files hold at most ``shards.max_unit_bytes`` bytes (a larger source alone).
Its digest hashes the configuration fingerprint, the data contract version and its sources' ids
and attempts, so the same unit contents always get the same commit marker name, whichever runner,
worker or attempt builds them; a resume with the same inputs plans the same units and skips the
committed ones from a listing of the markers alone.

``--retry-failed`` commits a committed unit again: a unit whose :class:`UnitBase` is the committed
version, which builds only the sources to retry and keeps the rest of that version (its shards,
manifest rows and the other sources' rows) as they are.

A runner whose workers should not receive the sources from its driver (Beam: a pipeline's graph
must stay small however many the inputs) writes the plan into the dataset as Parquet parts
(:func:`write_plan`), which its workers read (:func:`read_plan_part`).
"""

from __future__ import annotations

import hashlib
import posixpath
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pseudo3d.pipelines.sources import SourceList
from pseudo3d.schemas.commits import MarkerName, ShardFile
from pseudo3d.schemas.compactions import Part
from pseudo3d.schemas.layout import PLAN_DIR
from pseudo3d.schemas.records import Source
from pseudo3d.schemas.version import SCHEMA_VERSION
from pseudo3d.storage import Storage, parquet_bytes


@dataclass(frozen=True)
class UnitBase:
    """The committed version of a unit that ``--retry-failed`` commits again: what the new version
    keeps of it. A failed source has no samples, so every shard and manifest row of the committed
    version stays as it is."""

    replaces: str
    """The committed version's marker (a path relative to the dataset root)."""
    shards: tuple[ShardFile, ...]
    manifest: tuple[Part, ...]
    """The parts holding its manifest rows, each with the units to keep of it
    (:meth:`~pseudo3d.schemas.compactions.IndexLayout.unit_parts`): the new version's writer reads
    them into its own manifest part, then its new clips."""
    sources: tuple[dict[str, Any], ...]
    """All its source rows, in the unit's order; those of the sources built again are replaced."""
    failures: tuple[dict[str, Any], ...]
    """The failure rows of its sources that are not built again."""
    dropped: tuple[str, ...]
    """Its own index parts, which the new version does not name (none where a compaction holds its
    rows)."""
    assets: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Unit:
    """Sources one worker builds, writes and commits together."""

    index: int
    sources: Sequence[Source]
    """The unit's sources in order: a view of the build's :class:`~pseudo3d.pipelines.sources.SourceList`
    (its Sources made when read; pickled, only its own rows travel)."""
    digest: str
    """12 hex digits: :func:`unit_digest` of the sources (with ``base``: of all the unit's sources)."""
    base: UnitBase | None = None
    """For a unit committed again by ``--retry-failed``: its committed version; ``sources`` are
    then only the sources built again."""

    @property
    def marker(self) -> MarkerName:
        return MarkerName(self.index, self.digest)


def unit_digest(sources: Iterable[tuple[str, int]], fingerprint: str) -> str:
    """The digest in a unit's marker name: SHA-256 over the data contract version, the
    configuration ``fingerprint`` and each source's (id, attempt), 12 hex digits."""
    text = "\n".join([f"contract {SCHEMA_VERSION}", fingerprint,
                      *(f"{source_id} {attempt}" for source_id, attempt in sources)])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def plan_units(sources: Sequence[Source], max_sources: int, fingerprint: str, first: int = 0,
               max_bytes: int | None = None) -> list[Unit]:
    """``sources`` in input order cut into units numbered from ``first``: a unit is closed before
    a source that would take it past ``max_sources`` sources or (where given) past ``max_bytes``
    bytes of input files (:attr:`Source.size_bytes`; unknown counts 0); a unit holds at least one
    source. The units' sources are views of ``sources`` as a
    :class:`~pseudo3d.pipelines.sources.SourceList`."""
    listed = SourceList.of(sources)
    sizes = listed.table.column("size_bytes").fill_null(0).to_numpy() if max_bytes is not None else None
    starts: list[int] = []
    held = count = 0
    for position in range(len(listed)):
        size = int(sizes[position]) if sizes is not None else 0
        if not starts or count >= max_sources or (max_bytes is not None and held + size > max_bytes):
            starts.append(position)
            held = count = 0
        held += size
        count += 1
    units = []
    for index, (start, stop) in enumerate(zip(starts, [*starts[1:], len(listed)])):
        members = listed.slice(start, stop)
        units.append(Unit(first + index, members,
                          unit_digest(zip(members.column("source_id"), members.column("attempt")), fingerprint)))
    return units


PLAN_PART_SOURCES = 10_000
"""Sources per part of a written plan."""


def write_plan(storage: Storage, units: list[Unit], name: str) -> list[str]:
    """Write the sources of ``units`` into the dataset at ``storage`` as Parquet parts of at most
    :data:`PLAN_PART_SOURCES` rows, ``_plan/NAME/part-NNNNNN.parquet``: per source its unit, its
    position in the unit and its fields (:data:`~pseudo3d.pipelines.sources.SOURCE_SCHEMA`).
    Returns the parts' paths relative to the dataset root. The parts hold the inputs' local paths:
    the runner deletes them when the build ends (:func:`remove_plan`)."""
    pieces = []
    for unit in units:
        table = SourceList.of(unit.sources).table
        pieces.append(table.add_column(0, "unit", pa.array(np.full(len(table), unit.index, np.int64)))
                      .add_column(1, "position", pa.array(np.arange(len(table), dtype=np.int64))))
    rows = pa.concat_tables(pieces) if pieces else pa.table({})
    paths = []
    for start in range(0, len(rows), PLAN_PART_SOURCES):
        path = posixpath.join(PLAN_DIR, name, f"part-{start // PLAN_PART_SOURCES:06d}.parquet")
        storage.write_bytes(path, parquet_bytes(rows.slice(start, PLAN_PART_SOURCES)))
        paths.append(path)
    return paths


def read_plan_part(storage: Storage, path: str) -> Iterator[tuple[int, int, Source]]:
    """(unit, position, source) of each source in the plan part ``path`` of the dataset at
    ``storage`` (:func:`write_plan`), equal to the sources written."""
    table = pq.read_table(pa.BufferReader(storage.read_bytes(path)))
    units, positions = table.column("unit").to_pylist(), table.column("position").to_pylist()
    yield from zip(units, positions, SourceList(table.drop_columns(["unit", "position"])))


def remove_plan(storage: Storage) -> None:
    """Delete every plan written into the dataset at ``storage`` (a build's own when it ends, or a
    killed build's)."""
    storage.delete_tree(PLAN_DIR)
