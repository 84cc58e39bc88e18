"""What every runner's driver does around the work: plan, resume, commit, report, finalize.

A runner supplies only ``produce(plan, log_path)``. The driver checks the assets, opens (or
resumes) the dataset (a local directory or an fsspec URL: :mod:`pseudo3d.storage`) and plans the
units still to build (:func:`~pseudo3d.pipelines.output_dir.plan_build`). For each unit the runner
gives either its sources' outcomes in order, which the driver writes and commits with a
:class:`~pseudo3d.pipelines.shard_writer.UnitWriter` (the local runner), or a :class:`UnitDone`
from a worker that wrote and committed the unit itself (Ray, Beam). The driver shows progress and
writes the dataset-level files, so every runner commits units the same way and the same input
gives the same shards whichever runner built them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from tqdm import tqdm

from pseudo3d.config import BuildConfig
from pseudo3d.errors import Pseudo3DError
from pseudo3d.pipelines.finalize import finalize_dataset
from pseudo3d.pipelines.lease import BuildLease
from pseudo3d.pipelines.output_dir import BuildPlan, plan_build, prepare_output, scratch_dir
from pseudo3d.pipelines.plan import Unit
from pseudo3d.pipelines.shard_writer import UnitWriter, remove_uncommitted
from pseudo3d.pipelines.spool import release as release_spool
from pseudo3d.reconstruction import BACKENDS
from pseudo3d.schemas.commits import Commit
from pseudo3d.schemas.records import Source, SourceOutcome
from pseudo3d.storage import Storage

log = logging.getLogger(__name__)

BUILD_LOG = "logs/build.log"

Produce = Callable[[BuildPlan, Path], Iterator["SourceOutcome | UnitDone"]]
"""``produce(plan, log_path)``: for each of ``plan.units``, either the outcomes of its sources in order (the
driver writes and commits the unit; a long source's come chunk by chunk) or one :class:`UnitDone` (a
worker wrote and committed it); native logs go to ``log_path``."""


@dataclass
class UnitDone:
    """What a worker that wrote and committed a unit itself tells the driver: counts only."""

    unit: int
    committed: bool
    """False where another writer committed the unit first (its counts are this attempt's)."""
    sources: int
    ok: int
    clips: int
    frames_decoded: int
    shards: tuple[str, ...]
    _open_ok: bool = field(default=False, repr=False)
    """Whether a chunk of the source being counted was ok (a source is ok when one of its chunks is)."""

    @classmethod
    def of(cls, unit: Unit, outcomes: list[SourceOutcome], commit: Commit | None) -> "UnitDone":
        done = cls(unit=unit.index, committed=False, sources=0, ok=0, clips=0, frames_decoded=0, shards=())
        for outcome in outcomes:
            done.add(outcome)
        return done.committed_as(commit)

    def add(self, outcome: SourceOutcome) -> None:
        """Count one more of the unit's outcomes, in order (a writer that streams them keeps no
        list); a long source's chunks count as one source."""
        self._open_ok = self._open_ok or outcome.status == "ok"
        if outcome.source.completes:
            self.sources += 1
            self.ok += self._open_ok
            self._open_ok = False
        self.clips += len(outcome.samples)
        self.frames_decoded += outcome.n_frames_decoded

    @classmethod
    def of_commit(cls, unit: Unit, commit: Commit) -> "UnitDone":
        """The counts of ``unit`` from its commit (a unit committed again by ``--retry-failed``:
        those of the sources it built again)."""
        base = unit.base
        ok_before = sum(row["status"] == "ok" for row in base.sources) if base else 0
        clips_before = sum(shard.n_samples for shard in base.shards) if base else 0
        done = cls(unit=unit.index, committed=True, sources=len(unit.sources), ok=commit.counts["ok"] - ok_before,
                   clips=int(commit.stats["n_samples"]) - clips_before, frames_decoded=0, shards=())
        return done.committed_as(commit)

    def committed_as(self, commit: Commit | None) -> "UnitDone":
        """These counts, with ``commit`` (None: another writer committed the unit first); the
        shards are those its writer wrote."""
        self.committed = commit is not None
        self.shards = tuple(shard.name for shard in commit.shards
                            if shard.name.endswith(f"-{commit.stats['attempt']}")) if commit else ()
        return self


@dataclass
class BuildReport:
    """What one build invocation did (the card holds the dataset totals)."""

    storage: Storage
    """Where the dataset is."""
    inputs: int
    skipped: int
    """Sources already committed by an earlier build into the same dataset."""
    processed: int
    ok: int
    failed: int
    clips: int
    frames: int
    seconds: float
    units: int = 0
    """Units committed by this build."""
    shards_written: list[str] = field(default_factory=list)
    card: dict[str, Any] = field(default_factory=dict)
    qa_report: str | None = None
    """Where the QA report was written (a local path or a URL), or None."""

    @property
    def out(self) -> str:
        """The dataset's local path or URL."""
        return self.storage.url

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def count(self, done: UnitDone) -> None:
        """Add a committed unit's counts."""
        self.units += done.committed
        self.processed += done.sources
        self.ok += done.ok
        self.failed += done.sources - done.ok
        self.clips += done.clips
        self.frames += done.frames_decoded
        self.shards_written.extend(done.shards)


def run_build(sources: Sequence[Source], out: str | Path | Storage, config: BuildConfig, produce: Produce, *,
              overwrite: bool = False, retry_failed: str | None = None, progress: bool = True,
              qa_report: bool = True) -> BuildReport:
    """Build (or resume) the dataset at ``out`` (a directory, a URL or a Storage) from
    ``sources`` with ``produce``; ``retry_failed`` (``transient`` or ``all``) also builds
    committed failed sources again."""
    with open_build(sources, out, config, overwrite=overwrite, retry_failed=retry_failed) as (plan, report):
        _produce_units(plan, report, config, produce, progress)
        return finish_build(report, config, qa_report=qa_report)


def _produce_units(plan: BuildPlan, report: BuildReport, config: BuildConfig, produce: Produce, progress: bool) -> None:
    """Run ``produce`` over the plan's units, committing those it gives as outcomes, counting those
    it committed itself, with a progress bar."""
    start = time.perf_counter()
    bar = tqdm(total=plan.n_sources, unit="video", desc="build", disable=not progress, dynamic_ncols=True)
    units = iter(plan.units)
    writer: UnitWriter | None = None
    done: UnitDone | None = None
    numerics = plan.numerics
    try:
        with build_log(report.storage) as log_path:
            for item in produce(plan, log_path):
                if isinstance(item, UnitDone):
                    report.count(item)
                    bar.update(item.sources)
                else:
                    if writer is None or done is None:
                        writer = UnitWriter(report.storage, next(units), config.shards, config.fingerprint(), numerics)
                        done = UnitDone(unit=writer.unit.index, committed=False, sources=0, ok=0, clips=0,
                                        frames_decoded=0, shards=())
                    writer.add(item)
                    release_spool(item)
                    done.add(item)
                    bar.update(int(item.source.completes))
                    if done.sources == len(writer.unit.sources):
                        report.count(done.committed_as(writer.commit()))
                        numerics, writer, done = writer.numerics, None, None
                elapsed = time.perf_counter() - start
                bar.set_postfix_str(f"clips={report.clips} failed={report.failed} "
                                    f"{report.frames / elapsed if elapsed > 0 else 0.0:.0f} frames/s")
            if writer is not None and done is not None:
                raise RuntimeError(f"unit {writer.unit.index}: the runner gave outcomes of {done.sources} sources "
                                   f"of {len(writer.unit.sources)}")
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    finally:
        bar.close()
    report.seconds = time.perf_counter() - start


@contextlib.contextmanager
def open_build(sources: Sequence[Source], out: str | Path | Storage, config: BuildConfig, *, overwrite: bool = False,
               retry_failed: str | None = None) -> Iterator[tuple[BuildPlan, BuildReport]]:
    """Check the assets, take the dataset's lease (:mod:`pseudo3d.pipelines.lease`), open (or
    resume) the dataset at ``out``: the units still to build and an empty report, while the lease
    is held. A runner that drives the build itself uses this and :func:`finish_build` inside it."""
    storage = out if isinstance(out, Storage) else Storage(out)
    BACKENDS[config.backend].check_assets(config)
    if config.qa.sync_model is not None:
        check_sync_model(config.qa.sync_model)
    lease = BuildLease(storage)
    try:
        markers = prepare_output(storage, config, lease, overwrite=overwrite)
        plan = plan_build(storage, sources, config, retry_failed, markers)
        yield plan, BuildReport(storage=storage, inputs=len(sources), skipped=plan.skipped,
                                processed=0, ok=0, failed=0, clips=0, frames=0, seconds=0.0)
    finally:
        lease.release()


def check_sync_model(path: str) -> None:
    """Read SyncNet's weights once, before any worker loads them: a missing or wrong file (or no
    PyTorch) stops the build with a message naming it, instead of failing every source."""
    try:
        from pseudo3d.qa.syncnet import load_syncnet_state_dict
    except ImportError as exc:
        raise Pseudo3DError(f"qa.sync_model (--sync-model) needs PyTorch: pip install 'pseudo3d[train]' ({exc})") from None
    load_syncnet_state_dict(path)


def finish_build(report: BuildReport, config: BuildConfig, *, qa_report: bool = True) -> BuildReport:
    """Remove the shards of writers that died or lost a commit race during the build, then write
    the dataset-level files and the QA report from the commits."""
    removed = remove_uncommitted(report.storage)
    if removed:
        log.info("removed %d file(s) of unit writers that did not commit", len(removed))
    report.card, report.qa_report = finalize_dataset(report.storage, config, report=qa_report)
    return report


@contextlib.contextmanager
def build_log(storage: Storage) -> Iterator[Path]:
    """The local file the workers' native log output goes to: ``logs/build.log`` in a local
    dataset (appended to by every build). For a dataset behind a URL, ``build.log`` in the
    dataset's local scratch folder (:func:`~pseudo3d.pipelines.output_dir.scratch_dir`), uploaded
    as ``logs/build-<UTC time it was started>.log`` when the build ends; a log a killed build left
    there is uploaded by the next build into the same dataset."""
    if storage.is_local:
        path = storage.local_path(BUILD_LOG)
        path.parent.mkdir(parents=True, exist_ok=True)
        yield path
        return
    path = scratch_dir(storage) / "build.log"
    _upload_log(storage, path)  # a killed build's
    try:
        yield path
    finally:
        _upload_log(storage, path)


def _upload_log(storage: Storage, path: Path) -> None:
    if not path.is_file():
        return
    started = dt.datetime.fromtimestamp(path.stat().st_ctime, dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    try:
        storage.write_bytes(f"logs/build-{started}.log", path.read_bytes())
        path.unlink()
    except OSError as exc:
        log.warning("the build log %s could not be uploaded to %s (%s); the next build tries again", path,
                    storage.url, exc)
