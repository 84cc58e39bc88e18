"""Durable, atomic file writes: the one way pseudo3d publishes a file.

A file is written under a hidden temporary name in its final directory, flushed and fsynced,
renamed into place, and then the directory is fsynced, so that after a power loss the file is
either absent or whole, and a rename that was reported done stays done (POSIX leaves the
directory entry in the page cache until the directory itself is synced).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Callable


def temporary_path(path: Path) -> Path:
    """The hidden temporary name ``path`` is written under before it is published."""
    return path.with_name(f".{path.name}.tmp")


def fsync_file(path: Path) -> None:
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


def fsync_directory(path: Path) -> None:
    """Make the entries of directory ``path`` (renames, new files) durable. A filesystem that
    cannot sync a directory (some network and FUSE filesystems) is left as it is."""
    try:
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def publish(temporary: Path, path: Path) -> None:
    """Rename the complete, synced ``temporary`` to ``path`` and sync the directory."""
    os.replace(temporary, path)
    fsync_directory(Path(path).parent)


def write_atomically(path: Path, write: Callable[[Path], object]) -> Path:
    """Publish ``path`` whole: ``write(temporary)`` writes the content, which is then synced and
    renamed into place; on any error the temporary file is removed and ``path`` is untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_path(path)
    try:
        write(temporary)
        fsync_file(temporary)
        publish(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


def write_bytes_atomically(path: Path, data: bytes) -> Path:
    return write_atomically(path, lambda temporary: temporary.write_bytes(data))


class HashingWriter:
    """A binary file opened for writing that hashes (SHA-256) and counts what goes through it,
    so a shard's digest needs no second read of the file."""

    def __init__(self, path: Path):
        self._handle = open(path, "wb")
        self._digest = hashlib.sha256()
        self.size = 0

    def write(self, data) -> int:
        self._digest.update(data)
        self.size += len(data)
        return self._handle.write(data)

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        self._handle.flush()

    def hexdigest(self) -> str:
        return self._digest.hexdigest()

    def close(self, *, sync: bool = True) -> None:
        """Flush, fsync (unless ``sync=False``, for a file about to be deleted) and close."""
        if self._handle.closed:
            return
        self._handle.flush()
        if sync:
            os.fsync(self._handle.fileno())
        self._handle.close()


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes (assets and weights in sample meta and the dataset card)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
