"""Reading pseudo3d shards safely, without webdataset.

Members are grouped into samples by WebDataset's rule (the key is the member path up to the first
dot of its file name). Shards may come from elsewhere, so the reader refuses what it should not
touch: links and device files, absolute or parent-relative names, and member kinds that could
carry pickles.
"""

from __future__ import annotations

import posixpath
import tarfile
from pathlib import Path
from typing import Iterable, Iterator

import fsspec
from fsspec.implementations.local import LocalFileSystem

from pseudo3d.schemas.sample import MEMBER_DECODERS, decode_sample


class UnsafeShardError(ValueError):
    """The shard holds a member pseudo3d refuses to read."""


def _split_member(name: str) -> tuple[str, str]:
    if name.startswith("/") or "\\" in name or any(part == ".." for part in name.split("/")):
        raise UnsafeShardError(f"unsafe member name {name!r}")
    directory, base = posixpath.split(name)
    stem, dot, suffix = base.partition(".")
    if not dot or not stem:
        raise UnsafeShardError(f"member {name!r} has no KEY.SUFFIX name")
    kind = suffix.rsplit(".", 1)[-1]
    if kind not in MEMBER_DECODERS:
        raise UnsafeShardError(f"refusing member {name!r}: only {', '.join(sorted(MEMBER_DECODERS))} "
                               "members are read (pickle-capable formats are never loaded)")
    return posixpath.join(directory, stem), suffix


def iter_raw_samples(path: str | Path, wanted: Iterable[str] | None = None) -> Iterator[tuple[str, dict[str, bytes]]]:
    """Yield ``(key, {suffix: bytes})`` per sample, in tar order. ``path`` may be an fsspec URL
    (read as a stream); ``wanted`` keeps only those member suffixes (the others are skipped
    unread where the file can seek). Every member's name and kind is checked either way."""
    wanted = None if wanted is None else frozenset(wanted)
    fs, local = fsspec.core.url_to_fs(str(path))
    mode = "r:" if isinstance(fs, LocalFileSystem) else "r|"
    with fs.open(local, "rb") as handle, tarfile.open(fileobj=handle, mode=mode) as tar:
        key, members = None, {}
        for info in tar:
            if info.isdir():
                continue
            if not info.isreg():
                raise UnsafeShardError(f"{path}: member {info.name!r} is not a regular file")
            member_key, suffix = _split_member(info.name)
            if member_key != key and key is not None:
                yield key, members
                members = {}
            key = member_key
            if wanted is None or suffix in wanted:
                handle_member = tar.extractfile(info)
                members[suffix] = handle_member.read() if handle_member is not None else b""
        if key is not None:
            yield key, members


def iter_samples(path: str | Path) -> Iterator[dict]:
    """Yield decoded samples: ``{"__key__": key, "meta.json": {...}, "audio.flac": (audio, sr),
    "NAME.npy": array, ...}``."""
    for key, members in iter_raw_samples(path):
        sample = decode_sample(members)
        sample["__key__"] = key
        yield sample
