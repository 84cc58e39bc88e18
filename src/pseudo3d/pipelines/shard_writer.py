"""The shard writer: source outcomes in, committed WebDataset shards out.

Commit protocol (per shard ``shard-NNNNNN``), the same on local paths and object stores: the tar
is streamed out and published whole (:mod:`pseudo3d.storage`: a temporary name, fsync and rename
on a local path; a multipart upload on an object store), then its sidecar parquet, then the stats
JSON **last**. The tar is hashed as it is written. A shard exists only once its JSON exists;
anything else in ``shards/`` is debris from an interrupted build and is removed by
:func:`remove_uncommitted`.

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
import posixpath
import tarfile
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

import pseudo3d
from pseudo3d.config import ShardConfig
from pseudo3d.errors import Pseudo3DError
from pseudo3d.schemas.layout import SHARD_DIR, SHARD_PREFIX, shard_name
from pseudo3d.schemas.records import EncodedSample, SourceOutcome
from pseudo3d.schemas.sample import encode_json
from pseudo3d.schemas.tables import manifest_table
from pseudo3d.schemas.version import SCHEMA_VERSION
from pseudo3d.storage import Storage, is_temporary, parquet_bytes



CONCURRENT = ("only one build may write into a dataset at a time; this shard was not committed, so once the "
              "other build has finished, running this one again resumes it")


@dataclass
class CommittedShard:
    index: int
    stats: dict[str, Any]

    @property
    def name(self) -> str:
        return shard_name(self.index)


def committed_shards(storage: Storage, folder: str = SHARD_DIR) -> list[CommittedShard]:
    """Shards of ``storage``'s ``folder`` whose commit marker (stats JSON) exists, by index."""
    names = set(storage.list(folder))
    shards = []
    for name in sorted(names):
        stem = name[len(SHARD_PREFIX):-len(".json")]
        if not (name.startswith(SHARD_PREFIX) and name.endswith(".json") and stem.isdigit()):
            continue
        if f"{SHARD_PREFIX}{stem}.tar" in names:
            shards.append(CommittedShard(int(stem), json.loads(storage.read_bytes(posixpath.join(folder, name)))))
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


def remove_uncommitted(storage: Storage, folder: str = SHARD_DIR) -> list[str]:
    """Delete temporary files and folders, tars and sidecars without a commit marker, and commit
    markers whose tar is gone, from ``storage``'s ``folder``; returns the names removed."""
    names = storage.list(folder)
    removed = []
    for name in names:
        stem, _, suffix = name.rpartition(".")
        if is_temporary(name):  # a file, or a runner's staging folder
            storage.delete_tree(posixpath.join(folder, name))
        elif name.startswith(SHARD_PREFIX) and suffix in ("tar", "parquet") and f"{stem}.json" not in names:
            storage.delete(posixpath.join(folder, name))
        elif name.startswith(SHARD_PREFIX) and suffix == "json" and f"{stem}.tar" not in names:
            storage.delete(posixpath.join(folder, name))
        else:
            continue
        removed.append(name)
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
        if opens or self._index is None:  # the same test: opens covers a None index, not to mypy
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


def _deciding(numerics: dict[str, dict[str, str]]) -> dict[str, dict[str, str | None]]:
    return {model: {key: values.get(key) for key in NUMERICS_DECIDING} for model, values in numerics.items()}


def _describe(numerics: dict[str, dict[str, str]]) -> str:
    return ", ".join(f"{model} on {values.get('device')} in {values.get('precision')}"
                     for model, values in sorted(numerics.items()))


class ShardBuilder:
    """One shard being written into ``storage``'s ``folder``; :meth:`finish` writes its sidecar
    and, last, its stats JSON (the commit). ``numerics``: what the dataset's outputs were computed
    with so far (:func:`check_numerics`), or None.
    """

    def __init__(self, storage: Storage, folder: str, index: int, fingerprint: str,
                 numerics: dict[str, dict[str, str]] | None = None):
        self.storage = storage
        self.folder = folder
        self.index = index
        self.name = shard_name(index)
        self.fingerprint = fingerprint
        self.numerics = numerics or {}
        self.rows: list[dict[str, Any]] = []
        self.sources: list[dict[str, Any]] = []
        self.failures: list[dict[str, Any]] = []
        self.assets: dict[str, str] = {}
        # Every file of a shard is published only where none is: a second build writing into the
        # same dataset at the same time fails (CONCURRENT) instead of overwriting this one's shards.
        self._file = storage.open_write(self.file("tar"), exclusive=True)
        # typeshed's file protocol asks for read and seek too, which mode "w" never calls
        self._tar = tarfile.open(fileobj=self._file, mode="w", format=tarfile.PAX_FORMAT)  # type: ignore[call-overload]

    def file(self, suffix: str) -> str:
        """The relative path of this shard's file with ``suffix`` (``tar``, ``parquet``, ``json``)."""
        return posixpath.join(self.folder, f"{self.name}.{suffix}")

    def add(self, outcome: SourceOutcome) -> None:
        check_numerics(self.numerics, outcome.numerics)
        self.numerics = self.numerics or outcome.numerics
        for sample in outcome.samples:
            self._write_sample(sample)
        self.sources.append({**outcome.source_row(), "shard": self.name})
        self.failures.extend(failure.to_row() for failure in outcome.failures)
        self.assets.update(outcome.assets)

    def abort(self) -> None:
        """Drop the shard: its tar is never published (the sidecar and JSON are not written yet)."""
        self._tar.close()
        self._file.discard()

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

    def finish(self) -> None:
        """Publish the tar, then the sidecar parquet, then the stats JSON: the commit. Raises
        :class:`Pseudo3DError` when another writer published a file of this shard meanwhile."""
        try:
            self._commit()
        except FileExistsError:
            raise Pseudo3DError(f"{self.storage.url_of(self.file('tar'))} was published by another build while "
                                f"this one was writing it: {CONCURRENT}") from None

    def _commit(self) -> None:
        self._tar.close()
        self._file.close()  # published whole; hashed as it was written
        digest, tar_size = self._file.hexdigest(), self._file.size
        self.storage.write_bytes(self.file("parquet"), parquet_bytes(manifest_table(self.rows)), exclusive=True)
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
        self.storage.write_bytes(self.file("json"), encode_json(stats), exclusive=True)


def publish_shard(storage: Storage, staged: str, index: int, folder: str = SHARD_DIR) -> None:
    """Move shard ``index``, finished in ``storage``'s folder ``staged``, into ``folder``, the
    commit marker last, never over a file another build published (:data:`CONCURRENT`). Safe to
    repeat after an interruption: files already moved are left alone."""
    name = shard_name(index)
    for suffix in SHARD_FILES:
        source, target = posixpath.join(staged, f"{name}.{suffix}"), posixpath.join(folder, f"{name}.{suffix}")
        if storage.exists(source):
            try:
                storage.move(source, target, exclusive=True)
            except FileExistsError:
                raise Pseudo3DError(f"{storage.url_of(target)} was published by another build while this one was "
                                    f"writing it: {CONCURRENT}") from None
        elif not storage.exists(target):
            raise FileNotFoundError(f"{storage.url_of(source)}: the staged file of {name} is missing")


class ShardWriter:
    """Append source outcomes in order; ``close()`` commits the last shard."""

    def __init__(self, storage: Storage, config: ShardConfig, fingerprint: str, taken: Iterable[int] = (),
                 numerics: dict[str, dict[str, str]] | None = None, folder: str = SHARD_DIR):
        self.storage = storage
        self.folder = folder
        self.fingerprint = fingerprint
        self.numerics = numerics
        self._packer = ShardPacker(config, taken)
        self._open: ShardBuilder | None = None
        self.committed: list[str] = []

    def add(self, outcome: SourceOutcome) -> None:
        index, opens = self._packer.place(*outcome_size(outcome))
        if opens:
            self._commit()
            self._open = ShardBuilder(self.storage, self.folder, index, self.fingerprint, self.numerics)
        elif self._open is None:  # the packer opened a shard for the first outcome: closed or aborted since
            raise RuntimeError("ShardWriter.add after close or abort")
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
            shard.finish()
            self.committed.append(shard.name)


def _free_indices(taken: set[int]) -> Iterator[int]:
    index = 0
    while True:
        if index not in taken:
            yield index
        index += 1
