"""Encoded samples spooled to disk as a worker makes them.

A long video gives many clips; held until the source is done, their encoded samples (about 20 kB
a frame with the default backend, 1.8 GB an hour) would gather in the worker's memory, then be
pickled whole through the pipe to the parent. With a spool, the worker appends each sample's
members to one file per source as soon as the clip is encoded and keeps only where they lie; the
outcome that travels is small, and the shard writer reads the members back one sample at a time.
The local runner spools into the output directory's :data:`SPOOL_DIR` (the same disk as the
shards, never a RAM-backed ``/tmp``), removed when the build ends and at the start of the next.
The spool needs disk room for the samples of the sources being built or waiting for the writer
(a few per worker) besides the shards; a full disk fails the clip being spooled with
``encode/io_error`` (transient), as writing the shard would have.
Ray's unit actors write their units themselves, so they spool too, each into a folder of its own
on its node (:func:`actor_spool`). Beam, whose writer may sit on another machine, does not.
"""

from __future__ import annotations

import errno
import os
import shutil
import socket
import uuid
from pathlib import Path
from typing import BinaryIO, Iterator, Mapping

from pseudo3d.schemas.records import EncodedSample, SourceOutcome

SPOOL_DIR = ".spool"
"""The spool's folder inside the output directory."""


class SpooledMembers(Mapping[str, bytes]):
    """A sample's members, member name suffix → bytes, read from its spool file when asked for."""

    def __init__(self, path: str, spans: dict[str, tuple[int, int]]):
        self.path = path
        self.spans = spans
        """Suffix → (offset, size) in bytes."""

    @property
    def n_bytes(self) -> int:
        return sum(size for _, size in self.spans.values())

    def __getitem__(self, suffix: str) -> bytes:
        with open(self.path, "rb") as file:
            return self._read(file, suffix)

    def items(self) -> list[tuple[str, bytes]]:  # type: ignore[override]
        """Every member, read with one opening of the file (the shard writer's way in)."""
        with open(self.path, "rb") as file:
            return [(suffix, self._read(file, suffix)) for suffix in self.spans]

    def _read(self, file, suffix: str) -> bytes:
        offset, size = self.spans[suffix]
        file.seek(offset)
        data = file.read(size)
        if len(data) != size:
            raise OSError(errno.EIO, f"the spool file ends {size - len(data)} bytes short of member {suffix!r}",
                          self.path)
        return data

    def __iter__(self) -> Iterator[str]:
        return iter(self.spans)

    def __len__(self) -> int:
        return len(self.spans)


class SampleSpool:
    """One source's spool file in ``directory``, appended to sample by sample."""

    def __init__(self, directory: Path, source_id: str):
        self.path = Path(directory) / f"{source_id}-{uuid.uuid4().hex}.spool"
        self._file: BinaryIO | None = None

    def add(self, sample: EncodedSample) -> EncodedSample:
        """Write ``sample``'s members; the same sample, its members now read from the file."""
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "wb")
        spans = {}
        for suffix, data in sample.members.items():
            offset = self._file.tell()  # not a running count: a write that failed part-way moved it
            self._file.write(data)
            spans[suffix] = (offset, len(data))
        self._file.flush()  # the parent reads it once the outcome arrives
        return EncodedSample(sample.key, SpooledMembers(str(self.path), spans), sample.row)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def discard(self) -> None:
        """Close and delete the file (the samples are not needed)."""
        self.close()
        self.path.unlink(missing_ok=True)


def release(outcome: SourceOutcome) -> None:
    """Delete the spool files ``outcome``'s samples are read from (once they are in a shard)."""
    for path in {sample.members.path for sample in outcome.samples if isinstance(sample.members, SpooledMembers)}:
        Path(path).unlink(missing_ok=True)


def remove_spool(out_dir: Path) -> None:
    """Delete ``out_dir``'s spool folder and whatever an interrupted build left in it."""
    shutil.rmtree(Path(out_dir) / SPOOL_DIR, ignore_errors=True)


def actor_spool(root: Path) -> Path:
    """A spool folder of this process's own under ``root`` (``root/SPOOL_DIR/HOST-PID``), for a
    long-lived worker that writes what it spools (a Ray unit actor). Folders of processes of this
    host that no longer run (killed actors) are removed first."""
    folder = Path(root) / SPOOL_DIR
    host = socket.gethostname()
    for entry in folder.glob(f"{host}-*"):
        pid = entry.name.rpartition("-")[2]
        if pid.isdigit() and int(pid) != os.getpid() and not _running(int(pid)):
            shutil.rmtree(entry, ignore_errors=True)
    own = folder / f"{host}-{os.getpid()}"
    shutil.rmtree(own, ignore_errors=True)  # a dead process's, whose pid this one now has
    return own


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
