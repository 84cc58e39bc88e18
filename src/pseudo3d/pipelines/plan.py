"""The build plan: the pending sources cut into units, the pieces of work one worker builds and
commits on its own (docs/data-contract.md, "Commit protocol").

A unit is a run of at most ``shards.max_sources`` consecutive pending sources, in input order.
Its digest hashes the configuration fingerprint, the data contract version and its sources' ids
and attempts, so the same unit contents always get the same commit marker name, whichever runner,
worker or attempt builds them; a resume with the same inputs plans the same units and skips the
committed ones from a listing of the markers alone.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from pseudo3d.schemas.commits import MarkerName
from pseudo3d.schemas.records import Source
from pseudo3d.schemas.version import SCHEMA_VERSION


@dataclass(frozen=True)
class Unit:
    """Sources one worker builds, writes and commits together."""

    index: int
    sources: tuple[Source, ...]
    digest: str
    """12 hex digits: :func:`unit_digest` of the sources."""

    @property
    def marker(self) -> MarkerName:
        return MarkerName(self.index, self.digest)


def unit_digest(sources: tuple[Source, ...], fingerprint: str) -> str:
    """The digest in a unit's marker name: SHA-256 over the data contract version, the
    configuration ``fingerprint`` and each source's id and attempt, 12 hex digits."""
    text = "\n".join([f"contract {SCHEMA_VERSION}", fingerprint,
                      *(f"{source.source_id} {source.attempt}" for source in sources)])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def plan_units(sources: list[Source], max_sources: int, fingerprint: str, first: int = 0) -> list[Unit]:
    """``sources`` in input order cut into units of at most ``max_sources``, numbered from
    ``first``."""
    units: list[Unit] = []
    for start in range(0, len(sources), max_sources):
        members = tuple(sources[start:start + max_sources])
        units.append(Unit(first + len(units), members, unit_digest(members, fingerprint)))
    return units
