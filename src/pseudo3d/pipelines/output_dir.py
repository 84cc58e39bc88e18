"""Preparing a dataset directory for a build: checks, resume state, clean-up of debris.

Shared by every runner, so all of them resume the same way.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pseudo3d.config import BuildConfig
from pseudo3d.errors import Pseudo3DError
from pseudo3d.pipelines.shard_writer import CommittedShard, committed_shards, remove_uncommitted
from pseudo3d.schemas.records import Source

log = logging.getLogger(__name__)

DATASET_FILES = ("sources.parquet", "manifest.parquet", "failures.parquet", "dataset.json")
DATASET_DIRS = ("shards", "qa", "logs")


@dataclass
class ResumeState:
    shards: list[CommittedShard]

    @property
    def done_source_ids(self) -> set[str]:
        return {row["source_id"] for shard in self.shards for row in shard.stats["sources"]}

    @property
    def taken_indices(self) -> set[int]:
        return {shard.index for shard in self.shards}

    def pending(self, sources: list[Source]) -> list[Source]:
        done = self.done_source_ids
        return [source for source in sources if source.source_id not in done]


def prepare_output(out_dir: Path, config: BuildConfig, overwrite: bool = False) -> ResumeState:
    """Create or reopen ``out_dir``; refuse to mix configurations; remove uncommitted debris."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise Pseudo3DError(f"--out {out_dir}: exists and is not a directory")
    if overwrite:
        _clear(out_dir)
    try:
        (out_dir / "shards").mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out_dir, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise Pseudo3DError(f"--out {out_dir}: cannot write there ({exc.strerror or exc})") from None

    removed = remove_uncommitted(out_dir / "shards")
    if removed:
        log.info("removed %d uncommitted file(s) left by an interrupted build", len(removed))
    shards = committed_shards(out_dir / "shards")
    fingerprint = config.fingerprint()
    foreign = sorted({s.stats.get("config_fingerprint") for s in shards} - {fingerprint})
    if foreign:
        raise Pseudo3DError(
            f"--out {out_dir} holds shards built with a different configuration "
            f"(fingerprint {foreign[0]}, this build {fingerprint}); build into a new directory "
            "or pass --overwrite to replace the dataset")
    return ResumeState(shards)


def _clear(out_dir: Path) -> None:
    """Remove what a build writes, and nothing else a user may keep beside it."""
    if not out_dir.is_dir():
        return
    for name in DATASET_FILES:
        (out_dir / name).unlink(missing_ok=True)
    for name in DATASET_DIRS:
        if (out_dir / name).is_dir():
            shutil.rmtree(out_dir / name)
