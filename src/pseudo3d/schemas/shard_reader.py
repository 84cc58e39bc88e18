"""Reading pseudo3d shards safely, without webdataset.

Members are grouped into samples by WebDataset's rule (the key is the member path up to the first
dot of its file name). Shards may come from elsewhere, so the reader refuses what it should not
touch: links and device files, absolute or parent-relative names, member kinds that could carry
pickles, and members larger than ``max_member_bytes`` (a forged size must not make a reader
allocate gigabytes).
"""

from __future__ import annotations

import posixpath
import tarfile
from pathlib import Path
from typing import Iterable, Iterator

import fsspec
from fsspec.implementations.local import LocalFileSystem

from pseudo3d.schemas.sample import MEMBER_DECODERS, decode_sample


MAX_MEMBER_BYTES = 1 << 30
"""The largest member read by default (1 GiB; a 60 s clip's 224×224 crops are 226 MB)."""


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


REMOTE_READ_BYTES = 32 * 2 ** 20
"""A remote shard is streamed in requests of this many bytes (one GET each), read ahead."""


def iter_raw_samples(path: str | Path, wanted: Iterable[str] | None = None, *, keys: Iterable[str] | None = None,
                     max_member_bytes: int = MAX_MEMBER_BYTES) -> Iterator[tuple[str, dict[str, bytes]]]:
    """Yield ``(key, {suffix: bytes})`` per sample, in tar order. ``path`` may be an fsspec URL
    (read as a stream); ``wanted`` keeps only those member suffixes and ``keys`` only those
    samples (the others are skipped unread where the file can seek, and reading stops once every
    wanted key has passed). Every member's name, kind and size is checked either way: raises
    :class:`UnsafeShardError` naming the member and the limit."""
    wanted = None if wanted is None else frozenset(wanted)
    keys = None if keys is None else frozenset(keys)
    passed: set[str] = set()
    fs, local = fsspec.core.url_to_fs(str(path))
    remote = not isinstance(fs, LocalFileSystem)
    options = {"block_size": REMOTE_READ_BYTES, "cache_type": "readahead"} if remote else {}
    with fs.open(local, "rb", **options) as handle, tarfile.open(fileobj=handle, mode="r|" if remote else "r:") as tar:
        key, members = None, {}
        for info in tar:
            if info.isdir():
                continue
            if not info.isreg():
                raise UnsafeShardError(f"{path}: member {info.name!r} is not a regular file")
            if info.size > max_member_bytes:
                raise UnsafeShardError(f"{path}: member {info.name!r} is {info.size} bytes, over the reader's limit "
                                       f"of {max_member_bytes} (max_member_bytes)")
            member_key, suffix = _split_member(info.name)
            if member_key != key and key is not None:
                if keys is None or key in keys:
                    yield key, members
                passed.add(key)
                members = {}
                if keys is not None and keys <= passed:
                    return  # samples are contiguous: every wanted one has been read
            key = member_key
            if (wanted is None or suffix in wanted) and (keys is None or member_key in keys):
                handle_member = tar.extractfile(info)
                members[suffix] = handle_member.read() if handle_member is not None else b""
        if key is not None and (keys is None or key in keys):
            yield key, members


def iter_samples(path: str | Path) -> Iterator[dict]:
    """Yield decoded samples: ``{"__key__": key, "meta.json": {...}, "audio.flac": (audio, sr),
    "NAME.npy": array, ...}``."""
    for key, members in iter_raw_samples(path):
        sample = decode_sample(members)
        sample["__key__"] = key
        yield sample
