"""Reading a few members of a few samples from a shard, without reading the rest of it.

Shards can hold hundreds of clips (and face crops); the gallery needs a handful of arrays of a
handful of clips, so members are skipped by name before their bytes are read. Decoding goes
through :func:`pseudo3d.schemas.sample.decode_sample`, which refuses pickle-capable members.
"""

from __future__ import annotations

import posixpath
import tarfile
from pathlib import Path
from typing import Iterable

from pseudo3d.schemas.sample import decode_sample


def read_members(shard: str | Path, keys: Iterable[str], suffixes: Iterable[str]) -> dict[str, dict]:
    """``{key: {suffix: decoded value}}`` for the wanted ``keys`` and member ``suffixes`` (e.g.
    ``"meta.json"``, ``"mouth_open.npy"``) of one shard. Keys absent from the shard are absent
    from the result; links, devices and unsafe names are never read."""
    wanted_keys, wanted_suffixes = set(keys), set(suffixes)
    raw: dict[str, dict[str, bytes]] = {}
    finished: set[str] = set()
    with tarfile.open(shard, mode="r:") as tar:
        for info in tar:
            if not info.isreg() or info.name.startswith("/") or ".." in info.name.split("/"):
                continue
            directory, base = posixpath.split(info.name)
            stem, dot, suffix = base.partition(".")
            key = posixpath.join(directory, stem)
            if key not in wanted_keys or suffix not in wanted_suffixes:
                if raw and key not in wanted_keys:
                    finished.update(raw)
                    if finished >= wanted_keys:
                        break  # samples are contiguous: every wanted one has been passed
                continue
            handle = tar.extractfile(info)
            raw.setdefault(key, {})[suffix] = handle.read() if handle is not None else b""
    return {key: decode_sample(members) for key, members in raw.items()}
