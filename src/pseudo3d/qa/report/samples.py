"""Reading a few members of a few samples from a shard, without reading the rest of it.

Shards can hold hundreds of clips (and face crops); the gallery needs a handful of arrays of a
handful of clips, so members are skipped by name before their bytes are read. Reading and
decoding go through :mod:`pseudo3d.schemas.shard_reader`, which refuses links, unsafe names,
oversized members and pickle-capable kinds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from pseudo3d.schemas.sample import decode_sample
from pseudo3d.schemas.shard_reader import iter_raw_samples


def read_members(shard: str | Path, keys: Iterable[str], suffixes: Iterable[str]) -> dict[str, dict]:
    """``{key: {suffix: decoded value}}`` for the wanted ``keys`` and member ``suffixes`` (e.g.
    ``"meta.json"``, ``"mouth_open.npy"``) of one shard. Keys absent from the shard are absent
    from the result. Raises :class:`~pseudo3d.schemas.shard_reader.UnsafeShardError` for a shard
    pseudo3d refuses to read."""
    return {key: decode_sample(members) for key, members in iter_raw_samples(shard, suffixes, keys=keys)}
