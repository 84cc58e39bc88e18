"""What every runner's driver does around the work: resume, write shards, report, finalize.

A runner supplies only ``produce(pending, log_path)``: the outcomes of the pending sources, in
their order. The driver checks the assets, opens (or resumes) the dataset (a local directory or
an fsspec URL: :mod:`pseudo3d.storage`), feeds each
outcome to the one :class:`~pseudo3d.pipelines.shard_writer.ShardWriter`, shows progress and
writes the dataset-level files, so every runner commits shards the same way and the same input
gives the same dataset whichever runner built it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from tqdm import tqdm

from pseudo3d.config import BuildConfig
from pseudo3d.errors import Pseudo3DError
from pseudo3d.pipelines.finalize import finalize_dataset
from pseudo3d.pipelines.output_dir import ResumeState, prepare_output, scratch_dir
from pseudo3d.pipelines.shard_writer import ShardWriter
from pseudo3d.pipelines.spool import release as release_spool
from pseudo3d.reconstruction import BACKENDS
from pseudo3d.schemas.records import Source, SourceOutcome
from pseudo3d.storage import Storage

log = logging.getLogger(__name__)

BUILD_LOG = "logs/build.log"

Produce = Callable[[list[Source], Path], Iterator[SourceOutcome]]
"""``produce(pending, log_path)``: outcomes of ``pending`` in order; native logs go to ``log_path``."""


@dataclass
class BuildReport:
    """What one build invocation did (the card holds the dataset totals)."""

    storage: Storage
    """Where the dataset is."""
    inputs: int
    skipped: int
    """Sources already committed by an earlier build into the same directory."""
    processed: int
    ok: int
    failed: int
    clips: int
    frames: int
    seconds: float
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


def run_build(sources: list[Source], out: str | Path | Storage, config: BuildConfig, produce: Produce, *,
              overwrite: bool = False, retry_failed: str | None = None, progress: bool = True,
              qa_report: bool = True) -> BuildReport:
    """Build (or resume) the dataset at ``out`` (a directory, a URL or a Storage) from
    ``sources`` with ``produce``; ``retry_failed`` (``transient`` or ``all``) also builds
    committed failed sources again."""
    state, pending, report = start_build(sources, out, config, overwrite=overwrite, retry_failed=retry_failed)
    writer = ShardWriter(report.storage, config.shards, config.fingerprint(), taken=state.taken_indices,
                         numerics=state.numerics)
    start = time.perf_counter()
    bar = tqdm(total=len(pending), unit="video", desc="build", disable=not progress, dynamic_ncols=True)
    try:
        with build_log(report.storage) as log_path:
            for outcome in produce(pending, log_path):
                writer.add(outcome)
                release_spool(outcome)
                report.processed += 1
                report.ok += outcome.status == "ok"
                report.failed += outcome.status == "failed"
                report.clips += len(outcome.samples)
                report.frames += outcome.n_frames_decoded
                elapsed = time.perf_counter() - start
                bar.set_postfix_str(f"clips={report.clips} failed={report.failed} "
                                    f"{report.frames / elapsed if elapsed > 0 else 0.0:.0f} frames/s")
                bar.update()
            writer.close()
    except BaseException:
        writer.abort()
        raise
    finally:
        bar.close()
    report.seconds = time.perf_counter() - start
    report.shards_written = list(writer.committed)
    return finish_build(report, config, qa_report=qa_report)


def start_build(sources: list[Source], out: str | Path | Storage, config: BuildConfig, *, overwrite: bool = False,
                retry_failed: str | None = None) -> tuple[ResumeState, list[Source], BuildReport]:
    """Check the assets, open (or resume) the dataset at ``out``: its state, the sources still to
    build and an empty report. A runner that commits shards itself uses this and
    :func:`finish_build`."""
    storage = out if isinstance(out, Storage) else Storage(out)
    BACKENDS[config.backend].check_assets(config)
    if config.qa.sync_model is not None:
        check_sync_model(config.qa.sync_model)
    state = prepare_output(storage, config, overwrite=overwrite)
    pending = state.pending(sources, retry_failed)
    retried = sum(source.attempt > 1 for source in pending)
    if retried:
        log.info("building %d failed source(s) again (--retry-failed=%s)", retried, retry_failed)
    report = BuildReport(storage=storage, inputs=len(sources), skipped=len(sources) - len(pending),
                         processed=0, ok=0, failed=0, clips=0, frames=0, seconds=0.0)
    return state, pending, report


def check_sync_model(path: str) -> None:
    """Read SyncNet's weights once, before any worker loads them: a missing or wrong file (or no
    PyTorch) stops the build with a message naming it, instead of failing every source."""
    try:
        from pseudo3d.qa.syncnet import load_syncnet_state_dict
    except ImportError as exc:
        raise Pseudo3DError(f"qa.sync_model (--sync-model) needs PyTorch: pip install 'pseudo3d[train]' ({exc})") from None
    load_syncnet_state_dict(path)


def finish_build(report: BuildReport, config: BuildConfig, *, qa_report: bool = True) -> BuildReport:
    """Write the dataset-level files and the QA report from the committed shards."""
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
