"""Preparing a dataset directory for a build: checks, resume state, clean-up of debris.

Shared by every runner, so all of them resume the same way.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from pseudo3d.config import BuildConfig
from pseudo3d.errors import Pseudo3DError
from pseudo3d.pipelines.shard_writer import CommittedShard, committed_shards, current_sources, remove_uncommitted
from pseudo3d.pipelines.spool import remove_spool
from pseudo3d.schemas.layout import SHARD_DIR
from pseudo3d.schemas.records import Source
from pseudo3d.schemas.version import SCHEMA_VERSION
from pseudo3d.storage import Storage

log = logging.getLogger(__name__)

DATASET_FILES = ("sources.parquet", "manifest.parquet", "failures.parquet", "dataset.json")
DATASET_DIRS = ("shards", "qa", "logs")


RETRY_FAILED = ("transient", "all")
"""``--retry-failed`` choices: build again the failed sources whose failure is transient, or all."""


@dataclass
class ResumeState:
    shards: list[CommittedShard]

    @property
    def done_source_ids(self) -> set[str]:
        return {row["source_id"] for shard in self.shards for row in shard.stats["sources"]}

    @property
    def taken_indices(self) -> set[int]:
        return {shard.index for shard in self.shards}

    @property
    def numerics(self) -> dict[str, dict[str, str]] | None:
        """What the committed outputs were computed with (the first shard that records it)."""
        return next((shard.stats["numerics"] for shard in self.shards if shard.stats.get("numerics")), None)

    def pending(self, sources: list[Source], retry_failed: str | None = None) -> list[Source]:
        """The sources to build: those no committed shard covers, and with ``retry_failed``
        (:data:`RETRY_FAILED`) the committed failed ones whose failure is transient (or every
        failed one), each with its next ``attempt``."""
        current = current_sources(self.shards)
        pending = []
        for source in sources:
            held = current.get(source.source_id)
            if held is None:
                pending.append(source)
            elif retry_failed and held[1]["status"] == "failed" and (retry_failed == "all" or _transient(*held)):
                pending.append(dataclasses.replace(source, attempt=held[1].get("attempt", 1) + 1))
        return pending


def _transient(shard: CommittedShard, row: dict) -> bool:
    return any(failure["source_id"] == row["source_id"] and failure.get("kind") == "transient"
               for failure in shard.stats["failures"])


def prepare_output(storage: Storage, config: BuildConfig, overwrite: bool = False) -> ResumeState:
    """Create or reopen the dataset at ``storage``; refuse to mix configurations; remove
    uncommitted debris."""
    storage.check()
    if storage.is_file(""):
        raise Pseudo3DError(f"--out {storage.url}: exists and is not a directory")
    if overwrite:
        _clear(storage)
    probe = f".write-test-{uuid.uuid4().hex}"
    try:
        if storage.is_local:
            storage.local_path(SHARD_DIR).mkdir(parents=True, exist_ok=True)
        storage.write_bytes(probe, b"")
        storage.delete(probe)
    except Exception as exc:  # noqa: BLE001 - no such bucket, access denied, a read-only filesystem, no route...
        raise Pseudo3DError(f"--out {storage.url}: cannot write there ({_reason(exc)})") from None

    if storage.is_local:
        remove_spool(storage.local_path())  # samples an interrupted build had not written yet
    removed = remove_uncommitted(storage)
    if removed:
        log.info("removed %d uncommitted file(s) left by an interrupted build", len(removed))
    shards = committed_shards(storage)
    versions = sorted({s.stats.get("schema_version") for s in shards} - {SCHEMA_VERSION}, key=str)
    if versions:
        raise Pseudo3DError(
            f"--out {storage.url} holds shards of data contract version {versions[0]}; this pseudo3d writes "
            f"version {SCHEMA_VERSION}, whose source ids differ, so a resume would build every source again "
            "beside the old ones: build into a new directory or pass --overwrite (docs/data-contract.md, Versions)")
    fingerprint = config.fingerprint()
    # key=str: a shard without a fingerprint gives None, which does not compare with a str
    foreign = sorted({s.stats.get("config_fingerprint") for s in shards} - {fingerprint}, key=str)
    if foreign:
        raise Pseudo3DError(
            f"--out {storage.url} holds shards built with a different configuration "
            f"(fingerprint {foreign[0]}, this build {fingerprint}); build into a new directory "
            "or pass --overwrite to replace the dataset")
    return ResumeState(shards)


def scratch_dir(storage: Storage) -> Path:
    """The local folder a build of the dataset behind a URL keeps its spool and log in, while it
    runs: ``$XDG_CACHE_HOME/pseudo3d/builds/<hash of the URL>`` (``~/.cache`` by default), on
    disk rather than a RAM-backed ``/tmp``, and the same for every build of that dataset on this
    machine, so the next build clears what a killed one left. Where that cannot be created (no
    writable home, as in some containers), the system's temporary folder is used instead."""
    name = hashlib.sha256(storage.url.encode()).hexdigest()[:16]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    for folder in (cache / "pseudo3d" / "builds" / name, Path(tempfile.gettempdir()) / "pseudo3d-builds" / name):
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        return folder
    raise Pseudo3DError(f"--out {storage.url}: no local folder for the build's spool and log: neither {cache} nor "
                        f"{tempfile.gettempdir()} is writable (set XDG_CACHE_HOME to a writable folder)")


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or f"{type(exc).__name__}: {exc or 'no details'}"


def _clear(storage: Storage) -> None:
    """Remove what a build writes, and nothing else a user may keep beside it."""
    for name in DATASET_FILES:
        storage.delete(name)
    for name in DATASET_DIRS:
        storage.delete_tree(name)
