"""The shard writer: source outcomes in, committed WebDataset shards out.

Commit protocol (per shard ``shard-NNNNNN``): the tar and its sidecar parquet are written under
hidden temporary names, flushed, and renamed into place; the stats JSON is written the same way
**last**. A shard exists only once its JSON exists; anything else in ``shards/`` is debris from an
interrupted build and is removed by :func:`remove_uncommitted`.

Shards are *source-atomic*: all clips of a source go to one shard, and the shard's JSON lists
every source it covers (failed ones too) with their failure rows. That makes resuming exact:
the sources of the committed shards are done; the rest are processed again and packed, in input
order, into the lowest free shard indices. Packing closes a shard before a source that would push
it past ``max_samples`` or ``max_bytes``, so the same sources always give the same shards.

Determinism: members are written in sample order with fixed metadata (mtime 0, uid/gid 0, mode
0644, no user names), so the same input and configuration give byte-identical tars.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import pyarrow.parquet as pq

import pseudo3d
from pseudo3d.config import ShardConfig
from pseudo3d.schemas.records import EncodedSample, SourceOutcome
from pseudo3d.schemas.sample import encode_json
from pseudo3d.schemas.tables import manifest_table
from pseudo3d.schemas.version import SCHEMA_VERSION

SHARD_PREFIX = "shard-"


def shard_name(index: int) -> str:
    return f"{SHARD_PREFIX}{index:06d}"


@dataclass
class CommittedShard:
    index: int
    stats: dict[str, Any]

    @property
    def name(self) -> str:
        return shard_name(self.index)


def committed_shards(shard_dir: Path) -> list[CommittedShard]:
    """Shards whose commit marker (stats JSON) exists, by index."""
    shards = []
    if not shard_dir.is_dir():
        return shards
    for path in sorted(shard_dir.glob(f"{SHARD_PREFIX}*.json")):
        stem = path.stem[len(SHARD_PREFIX):]
        if not stem.isdigit() or not path.with_suffix(".tar").is_file():
            continue
        shards.append(CommittedShard(int(stem), json.loads(path.read_text())))
    return shards


def remove_uncommitted(shard_dir: Path) -> list[Path]:
    """Delete temporary files and tars/sidecars without a commit marker; returns what was removed."""
    removed = []
    if not shard_dir.is_dir():
        return removed
    for path in sorted(shard_dir.iterdir()):
        if path.name.startswith(".") and path.name.endswith(".tmp"):
            removed.append(path)
        elif path.name.startswith(SHARD_PREFIX) and path.suffix in (".tar", ".parquet"):
            if not path.with_suffix(".json").is_file():
                removed.append(path)
    for path in removed:
        path.unlink()
    return removed


@dataclass
class _OpenShard:
    index: int
    tar_tmp: Path
    tar: tarfile.TarFile
    rows: list[dict[str, Any]] = field(default_factory=list)
    sources: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)
    assets: dict[str, str] = field(default_factory=dict)
    n_bytes: int = 0


class ShardWriter:
    """Append source outcomes in order; ``close()`` commits the last shard."""

    def __init__(self, shard_dir: Path, config: ShardConfig, fingerprint: str, taken: Iterable[int] = ()):
        self.shard_dir = Path(shard_dir)
        self.shard_dir.mkdir(parents=True, exist_ok=True)
        self.config = config
        self.fingerprint = fingerprint
        self._free = _free_indices(set(taken))
        self._open: _OpenShard | None = None
        self.committed: list[str] = []

    def add(self, outcome: SourceOutcome) -> None:
        size = sum(sample.n_bytes for sample in outcome.samples)
        shard = self._open
        if shard is not None and shard.rows and (
                len(shard.rows) + len(outcome.samples) > self.config.max_samples
                or shard.n_bytes + size > self.config.max_bytes):
            self._commit()
        if self._open is None:
            self._open = self._start(next(self._free))
        shard = self._open
        for sample in outcome.samples:
            self._write_sample(shard, sample)
        shard.sources.append({**outcome.source_row(), "shard": shard_name(shard.index)})
        shard.failures.extend(failure.to_row() for failure in outcome.failures)
        shard.assets.update(outcome.assets)

    def close(self) -> None:
        if self._open is not None:
            self._commit()

    def abort(self) -> None:
        """Drop the open shard without publishing anything (used when the build fails)."""
        shard, self._open = self._open, None
        if shard is not None:
            shard.tar.close()
            shard.tar_tmp.unlink(missing_ok=True)

    def _start(self, index: int) -> _OpenShard:
        tar_tmp = self.shard_dir / f".{shard_name(index)}.tar.tmp"
        tar = tarfile.open(tar_tmp, mode="w", format=tarfile.PAX_FORMAT)
        return _OpenShard(index=index, tar_tmp=tar_tmp, tar=tar)

    def _write_sample(self, shard: _OpenShard, sample: EncodedSample) -> None:
        for suffix, data in sample.members.items():
            info = tarfile.TarInfo(f"{sample.key}.{suffix}")
            info.size = len(data)
            info.mtime = 0
            info.mode = 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            shard.tar.addfile(info, io.BytesIO(data))
        shard.rows.append({**sample.row, "shard": shard_name(shard.index)})
        shard.n_bytes += sample.n_bytes

    def _commit(self) -> None:
        shard, self._open = self._open, None
        name = shard_name(shard.index)
        shard.tar.close()
        digest = _fsync_and_hash(shard.tar_tmp)
        tar_path = self.shard_dir / f"{name}.tar"
        os.replace(shard.tar_tmp, tar_path)

        parquet_tmp = self.shard_dir / f".{name}.parquet.tmp"
        pq.write_table(manifest_table(shard.rows), parquet_tmp)
        os.replace(parquet_tmp, self.shard_dir / f"{name}.parquet")

        stats = {
            "schema_version": SCHEMA_VERSION,
            "pseudo3d_version": pseudo3d.__version__,
            "shard": name,
            "index": shard.index,
            "config_fingerprint": self.fingerprint,
            "n_samples": len(shard.rows),
            "n_bytes": tar_path.stat().st_size,
            "sha256": digest,
            "n_frames": int(sum(row["n_frames"] for row in shard.rows)),
            "seconds": float(sum(row["duration_s"] for row in shard.rows)),
            "keys": [row["key"] for row in shard.rows],
            "sources": shard.sources,
            "failures": shard.failures,
            "assets": dict(sorted(shard.assets.items())),
        }
        json_tmp = self.shard_dir / f".{name}.json.tmp"
        with open(json_tmp, "wb") as handle:
            handle.write(encode_json(stats))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(json_tmp, self.shard_dir / f"{name}.json")  # the commit
        self.committed.append(name)


def _fsync_and_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _free_indices(taken: set[int]) -> Iterator[int]:
    index = 0
    while True:
        if index not in taken:
            yield index
        index += 1
