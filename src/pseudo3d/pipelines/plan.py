"""The build plan: the pending sources cut into units, the pieces of work one worker builds and
commits on its own (docs/data-contract.md, "Commit protocol").

A unit is a run of at most ``shards.max_sources`` consecutive pending sources, in input order.
Its digest hashes the configuration fingerprint, the data contract version and its sources' ids
and attempts, so the same unit contents always get the same commit marker name, whichever runner,
worker or attempt builds them; a resume with the same inputs plans the same units and skips the
committed ones from a listing of the markers alone.

``--retry-failed`` commits a committed unit again: a unit whose :class:`UnitBase` is the committed
version, which builds only the sources to retry and keeps the rest of that version (its shards,
manifest parts and the other sources' rows) as they are.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Iterable

from pseudo3d.schemas.commits import MarkerName, ShardFile
from pseudo3d.schemas.records import Source
from pseudo3d.schemas.version import SCHEMA_VERSION


@dataclass(frozen=True)
class UnitBase:
    """The committed version of a unit that ``--retry-failed`` commits again: what the new version
    keeps of it. A failed source has no samples, so every shard and manifest part of the committed
    version stays as it is."""

    replaces: str
    """The committed version's marker (a path relative to the dataset root)."""
    shards: tuple[ShardFile, ...]
    manifest: tuple[str, ...]
    """Its manifest parts."""
    sources: tuple[dict[str, Any], ...]
    """All its source rows, in the unit's order; those of the sources built again are replaced."""
    failures: tuple[dict[str, Any], ...]
    """The failure rows of its sources that are not built again."""
    dropped: tuple[str, ...]
    """Its files the new version does not name (its sources and failures parts)."""
    assets: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Unit:
    """Sources one worker builds, writes and commits together."""

    index: int
    sources: tuple[Source, ...]
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


def plan_units(sources: list[Source], max_sources: int, fingerprint: str, first: int = 0) -> list[Unit]:
    """``sources`` in input order cut into units of at most ``max_sources``, numbered from
    ``first``."""
    units: list[Unit] = []
    for start in range(0, len(sources), max_sources):
        members = tuple(sources[start:start + max_sources])
        digest = unit_digest(((source.source_id, source.attempt) for source in members), fingerprint)
        units.append(Unit(first + len(units), members, digest))
    return units
