"""The shard writer: source outcomes in, committed WebDataset shards out.

Commit protocol (per shard ``shard-NNNNNN``): the tar and its sidecar parquet are written under
hidden temporary names, fsynced, and renamed into place (the directory fsynced after each rename,
:mod:`pseudo3d.files`); the stats JSON is written the same way **last**. The tar is hashed as it
is written. A shard exists only once its JSON exists; anything else in ``shards/`` is debris from an
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

import io
import json
import os
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

import pyarrow.parquet as pq

import pseudo3d
from pseudo3d.config import ShardConfig
from pseudo3d.errors import Pseudo3DError
from pseudo3d.files import HashingWriter, fsync_file, publish, temporary_path
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


def current_sources(shards: list[CommittedShard]) -> dict[str, tuple[CommittedShard, dict[str, Any]]]:
    """Source id → (the shard, the source row) of each source's highest ``attempt``: a source
    built again by ``--retry-failed`` keeps its old failed row in its old shard, and this row
    supersedes it. Only failed sources (which have no samples) are ever built again."""
    current: dict[str, tuple[CommittedShard, dict[str, Any]]] = {}
    for shard in shards:
        for row in shard.stats["sources"]:
            held = current.get(row["source_id"])
            if held is None or row.get("attempt", 1) > held[1].get("attempt", 1):
                current[row["source_id"]] = (shard, row)
    return current


def remove_uncommitted(shard_dir: Path) -> list[Path]:
    """Delete temporary files and tars/sidecars without a commit marker; returns what was removed."""
    removed = []
    if not shard_dir.is_dir():
        return removed
    for path in sorted(shard_dir.iterdir()):
        if path.name.startswith(".") and path.name.endswith(".tmp"):  # a file, or a runner's staging directory
            removed.append(path)
        elif path.name.startswith(SHARD_PREFIX) and path.suffix in (".tar", ".parquet"):
            if not path.with_suffix(".json").is_file():
                removed.append(path)
    for path in removed:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    return removed


class ShardPacker:
    """The packing rule, in one place: which shard each source goes to, given the sources in input
    order. A shard closes before a source that would push it past ``max_samples`` or ``max_bytes``
    (a shard holds at least one source however large); new shards take the lowest free indices."""

    def __init__(self, config: ShardConfig, taken: Iterable[int] = ()):
        self.config = config
        self._free = _free_indices(set(taken))
        self._index: int | None = None
        self._samples = 0
        self._bytes = 0

    def place(self, n_samples: int, n_bytes: int) -> tuple[int, bool]:
        """The shard index of the next source and whether that source opens a new shard."""
        opens = self._index is None or (self._samples > 0 and (
            self._samples + n_samples > self.config.max_samples or self._bytes + n_bytes > self.config.max_bytes))
        if opens:
            self._index = next(self._free)
            self._samples = self._bytes = 0
        self._samples += n_samples
        self._bytes += n_bytes
        return self._index, opens


def outcome_size(outcome: SourceOutcome) -> tuple[int, int]:
    """What packing needs to know of an outcome: its samples and their bytes."""
    return len(outcome.samples), sum(sample.n_bytes for sample in outcome.samples)


SHARD_FILES = ("tar", "parquet", "json")
"""A shard's files in publishing order: the stats JSON, the commit marker, comes last."""


NUMERICS_DECIDING = ("device", "precision")
"""The parts of a model's numerics that decide output bytes (versions are recorded, not checked)."""


def check_numerics(expected: dict[str, dict[str, str]] | None, found: dict[str, dict[str, str]]) -> None:
    """Refuse outputs computed on another device kind or in another precision than ``expected``
    (the dataset's): CUDA's bf16 and the CPU's fp32 give different bytes, so one dataset must not
    mix them. Raises :class:`Pseudo3DError` naming both."""
    if not expected or not found or _deciding(expected) == _deciding(found):
        return
    raise Pseudo3DError(
        f"this build computes {_describe(found)}, but the dataset was built with {_describe(expected)}; "
        "the outputs would differ: build into a new directory, pass --overwrite, or set "
        "reconstruct.device to match")


def _deciding(numerics: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    return {model: {key: values.get(key) for key in NUMERICS_DECIDING} for model, values in numerics.items()}


def _describe(numerics: dict[str, dict[str, str]]) -> str:
    return ", ".join(f"{model} on {values.get('device')} in {values.get('precision')}"
                     for model, values in sorted(numerics.items()))


class ShardBuilder:
    """One shard being written into ``directory`` under hidden temporary names.

    ``finish(publish=True)`` renames each file into place as soon as it is complete (the local
    writer's commit); ``publish=False`` leaves all three temporary, for a runner that publishes
    them later with :func:`publish_shard` (the Beam runner's finalize step). ``numerics``: what
    the dataset's outputs were computed with so far (:func:`check_numerics`), or None.
    """

    def __init__(self, directory: Path, index: int, fingerprint: str,
                 numerics: dict[str, dict[str, str]] | None = None):
        self.directory = Path(directory)
        self.index = index
        self.name = shard_name(index)
        self.fingerprint = fingerprint
        self.numerics = numerics or {}
        self.rows: list[dict[str, Any]] = []
        self.sources: list[dict[str, Any]] = []
        self.failures: list[dict[str, Any]] = []
        self.assets: dict[str, str] = {}
        self._file = HashingWriter(self.temporary("tar"))
        self._tar = tarfile.open(fileobj=self._file, mode="w", format=tarfile.PAX_FORMAT)

    def temporary(self, suffix: str) -> Path:
        return _temporary_path(self.directory, self.name, suffix)

    def add(self, outcome: SourceOutcome) -> None:
        check_numerics(self.numerics, outcome.numerics)
        self.numerics = self.numerics or outcome.numerics
        for sample in outcome.samples:
            self._write_sample(sample)
        self.sources.append({**outcome.source_row(), "shard": self.name})
        self.failures.extend(failure.to_row() for failure in outcome.failures)
        self.assets.update(outcome.assets)

    def abort(self) -> None:
        self._tar.close()
        self._file.close(sync=False)
        for suffix in SHARD_FILES:
            self.temporary(suffix).unlink(missing_ok=True)

    def _write_sample(self, sample: EncodedSample) -> None:
        for suffix, data in sample.members.items():
            info = tarfile.TarInfo(f"{sample.key}.{suffix}")
            info.size = len(data)
            info.mtime = 0
            info.mode = 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            self._tar.addfile(info, io.BytesIO(data))
        self.rows.append({**sample.row, "shard": self.name})

    def finish(self, *, publish: bool) -> None:
        self._tar.close()
        self._file.close()  # flushed and fsynced; hashed as it was written
        digest, tar_size = self._file.hexdigest(), self._file.size
        if publish:
            self._publish("tar")
        pq.write_table(manifest_table(self.rows), self.temporary("parquet"))
        fsync_file(self.temporary("parquet"))
        if publish:
            self._publish("parquet")
        stats = {
            "schema_version": SCHEMA_VERSION,
            "pseudo3d_version": pseudo3d.__version__,
            "shard": self.name,
            "index": self.index,
            "config_fingerprint": self.fingerprint,
            "n_samples": len(self.rows),
            "n_bytes": tar_size,
            "sha256": digest,
            "n_frames": int(sum(row["n_frames"] for row in self.rows)),
            "seconds": float(sum(row["duration_s"] for row in self.rows)),
            "keys": [row["key"] for row in self.rows],
            "sources": self.sources,
            "failures": self.failures,
            "assets": dict(sorted(self.assets.items())),
            "numerics": self.numerics,
        }
        with open(self.temporary("json"), "wb") as handle:
            handle.write(encode_json(stats))
            handle.flush()
            os.fsync(handle.fileno())
        if publish:
            self._publish("json")  # the commit

    def _publish(self, suffix: str) -> None:
        publish(self.temporary(suffix), self.directory / f"{self.name}.{suffix}")


def publish_shard(staged: Path, shard_dir: Path, index: int) -> None:
    """Move a shard finished with ``publish=False`` in ``staged`` into ``shard_dir``, the commit
    marker last. Safe to repeat after an interruption: files already moved are left alone."""
    name = shard_name(index)
    for suffix in SHARD_FILES:
        source, target = _temporary_path(Path(staged), name, suffix), Path(shard_dir) / f"{name}.{suffix}"
        if source.exists():
            publish(source, target)
        elif not target.exists():
            raise FileNotFoundError(f"{source}: the staged file of {name} is missing")


class ShardWriter:
    """Append source outcomes in order; ``close()`` commits the last shard."""

    def __init__(self, shard_dir: Path, config: ShardConfig, fingerprint: str, taken: Iterable[int] = (),
                 numerics: dict[str, dict[str, str]] | None = None):
        self.shard_dir = Path(shard_dir)
        self.shard_dir.mkdir(parents=True, exist_ok=True)
        self.fingerprint = fingerprint
        self.numerics = numerics
        self._packer = ShardPacker(config, taken)
        self._open: ShardBuilder | None = None
        self.committed: list[str] = []

    def add(self, outcome: SourceOutcome) -> None:
        index, opens = self._packer.place(*outcome_size(outcome))
        if opens:
            self._commit()
            self._open = ShardBuilder(self.shard_dir, index, self.fingerprint, self.numerics)
        self._open.add(outcome)
        self.numerics = self._open.numerics

    def close(self) -> None:
        self._commit()

    def abort(self) -> None:
        """Drop the open shard without publishing anything (used when the build fails)."""
        shard, self._open = self._open, None
        if shard is not None:
            shard.abort()

    def _commit(self) -> None:
        shard, self._open = self._open, None
        if shard is not None:
            shard.finish(publish=True)
            self.committed.append(shard.name)


def _temporary_path(directory: Path, name: str, suffix: str) -> Path:
    return temporary_path(directory / f"{name}.{suffix}")


def _free_indices(taken: set[int]) -> Iterator[int]:
    index = 0
    while True:
        if index not in taken:
            yield index
        index += 1
