"""The local runner, the embedded default: a process pool over sources on one machine.

Each worker process builds the stage chain once (models load once per worker) and turns whole
sources into encoded samples; the parent process receives the outcomes in input order and writes
and commits each unit (:mod:`pseudo3d.pipelines.shard_writer`), so the shards do not depend on the
number of workers.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Iterator, Sequence

from pseudo3d.config import BuildConfig
from pseudo3d.logs import redirect_process_stderr
from pseudo3d.pipelines.media import limit_threads
from pseudo3d.pipelines.output_dir import BuildPlan, scratch_dir
from pseudo3d.pipelines.process import Chunked, InFlight, SourcePipeline, uses_torch
from pseudo3d.pipelines.runners.driver import BuildReport, run_build
from pseudo3d.pipelines.runners.isolation import IsolatedPool, TaskDied, report_progress, report_units
from pseudo3d.pipelines.spool import SPOOL_DIR, remove_spool
from pseudo3d.schemas.records import Failure, Source, SourceOutcome
from pseudo3d.storage import Storage

log = logging.getLogger(__name__)


_WORKER_PIPELINE: SourcePipeline | None = None
_WORKER_ERROR = "the worker's stages were never built"  # replaced by what failed, when building them fails


def _init_worker(config: BuildConfig, log_path: Path, reconstruct: bool, threads: int,
                 spool_dir: Path | None = None) -> None:
    """Build the worker's stages once (spooling samples into ``spool_dir`` when given). A failure
    here must not kill the worker (it would be replaced forever): it is kept and reported as
    every task's failure row instead."""
    global _WORKER_PIPELINE, _WORKER_ERROR
    redirect_process_stderr(log_path)
    try:
        if uses_torch(config):
            import torch  # noqa: F401 - loaded first, so limit_threads caps it too
        limit_threads(threads)  # workers share the cores; no oversubscription
        _WORKER_PIPELINE = SourcePipeline(config, reconstruct=reconstruct)
        _WORKER_PIPELINE.spool_dir = spool_dir
        _WORKER_PIPELINE.on_probe = report_units
        _WORKER_PIPELINE.on_progress = report_progress
    except Exception as exc:  # noqa: BLE001 - reported per task below
        log.exception("worker set-up failed")
        _WORKER_ERROR = f"{type(exc).__name__}: {exc}"


def setup_failure(source: Source, error: str) -> SourceOutcome:
    """The outcome of a source whose worker could not build its stages (``error`` says why)."""
    failure = Failure.of(source, "setup", "worker_setup_failed", error)
    return SourceOutcome(source, "failed", failures=[failure], reason=f"worker_setup_failed: {error}")


def _run_source(source: Source) -> SourceOutcome | Chunked:
    return setup_failure(source, _WORKER_ERROR) if _WORKER_PIPELINE is None else _WORKER_PIPELINE(source)


def _track_source(source: Source) -> InFlight | Chunked:
    if _WORKER_PIPELINE is None:
        return InFlight(setup_failure(source, _WORKER_ERROR))
    return _WORKER_PIPELINE.track(source)


def retry_transient(source: Source, result: SourceOutcome | InFlight | Chunked | TaskDied, attempt: int) -> bool:
    """The pools' retry rule (``limits.transient_retries``): a dead worker or a failure of a
    transient kind is worth another attempt; a bad input is not."""
    if isinstance(result, Chunked):
        return False
    if isinstance(result, TaskDied):
        why = f"worker/{result.reason}: {result.detail}"
    else:
        outcome = result.outcome if isinstance(result, InFlight) else result
        if not outcome.transient:
            return False
        why = outcome.reason
    log.warning("%s failed transiently (%s) on attempt %d; building it again", source.uri, why, attempt)
    return True


def chunks(source: Source, result: SourceOutcome | InFlight | Chunked | TaskDied) -> tuple[Source, ...] | None:
    """The pools' ``expand`` rule: a source longer than ``decode.chunk_s`` is built as its chunks."""
    return result.pieces if isinstance(result, Chunked) else None


def isolated_pool(n_workers: int, config: BuildConfig, log_path: Path, whole_chain: bool, threads: int, *,
                  max_ahead: int | None = None, spool_dir: Path | None = None,
                  start_workers: int | None = None) -> IsolatedPool:
    """The pool every runner serves sources from: isolated workers with the watchdog of
    ``limits.timeout_*`` and the retries of ``limits.transient_retries``; a long source's
    results come chunk by chunk (``expand``: :func:`chunks`). ``whole_chain``: the
    workers run every stage; otherwise only probing and tracking. ``spool_dir``: the workers
    spool samples there (:mod:`pseudo3d.pipelines.spool`; only where the writer shares the disk).
    ``start_workers``: workers started at once (default ``n_workers``); the pool starts the others
    when tasks wait (a long source's chunks)."""
    limits = config.limits
    return IsolatedPool(n_workers, _init_worker, (config, log_path, whole_chain, threads, spool_dir),
                        _run_source if whole_chain else _track_source, max_ahead=max_ahead,
                        base_timeout=limits.timeout_base_s, per_unit=limits.timeout_per_video_s,
                        stall_timeout=limits.stall_timeout_s, max_buffered_bytes=limits.max_buffered_gb * 2 ** 30,
                        retries=limits.transient_retries, retry=retry_transient, expand=chunks,
                        start_workers=start_workers)


def died_outcome(source: Source, died: TaskDied) -> SourceOutcome:
    """The outcome of a source (or chunk) whose worker crashed or was killed by the watchdog."""
    message = f"{died.detail} while processing this input; the rest of the build went on"
    failure = Failure.of(source, "worker", died.reason, message)
    return SourceOutcome(source, "failed", failures=[failure], reason=f"{died.reason}: {died.detail}")


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def reconstructs_in_parent(config: BuildConfig) -> bool:
    """GPU work happens once per GPU: a GPU-capable backend (or SyncNet scoring) on a CUDA device
    reconstructs in the parent process, in batches spanning sources; everything else runs inside
    the CPU workers."""
    if not uses_torch(config):
        return False
    from pseudo3d.reconstruction.device import resolve_device

    return resolve_device(config.reconstruct.device).type == "cuda"


def build_local(sources: Sequence[Source], out: str | Path | Storage, config: BuildConfig, *, workers: int = 0,
                overwrite: bool = False, retry_failed: str | None = None, progress: bool = True,
                reconstruct_in_parent: bool | None = None, qa_report: bool = True) -> BuildReport:
    """Build (or resume) the dataset at ``out`` (a directory, an fsspec URL or a Storage) from
    ``sources``.

    ``reconstruct_in_parent`` overrides :func:`reconstructs_in_parent` (None: decide from the
    backend and device); ``qa_report=False`` skips drawing ``qa/report.html``.
    """
    if reconstruct_in_parent is None:
        reconstruct_in_parent = reconstructs_in_parent(config)
    storage = out if isinstance(out, Storage) else Storage(out)

    def produce(plan: BuildPlan, log_path: Path) -> Iterator[SourceOutcome]:
        n_workers = max(1, workers or default_workers())
        # The spool shares a local dataset's disk; a dataset behind a URL spools in its scratch folder.
        spool_root = storage.local_path() if storage.is_local else scratch_dir(storage)
        remove_spool(spool_root)  # what a killed build left
        try:
            yield from _outcomes(plan.sources(), plan.n_sources, config, n_workers, log_path, reconstruct_in_parent, spool_root / SPOOL_DIR)
        finally:
            remove_spool(spool_root)

    return run_build(sources, storage, config, produce, overwrite=overwrite, retry_failed=retry_failed,
                     progress=progress, qa_report=qa_report)


def _outcomes(pending: Iterator[Source], n_pending: int, config: BuildConfig, n_workers: int, log_path: Path,
              reconstruct_in_parent: bool, spool_dir: Path) -> Iterator[SourceOutcome]:
    """Outcomes of the ``n_pending`` sources ``pending`` in input order from isolated worker
    processes (one worker too), which take them from ``pending`` as they free up: a worker that
    crashes or hangs costs only its input, native log noise goes to ``log_path``, and the parent
    stays responsive. Workers running every stage spool their samples into ``spool_dir``. A long
    source gives one outcome per chunk, its chunks built side by side on the free workers."""
    if not n_pending:
        return
    threads = config.limits.threads_per_worker or max(1, default_workers() // n_workers)
    # Fewer inputs than workers: start one worker per input; a long input's chunks start the rest.
    with isolated_pool(n_workers, config, log_path, not reconstruct_in_parent, threads,
                       spool_dir=None if reconstruct_in_parent else spool_dir,
                       start_workers=min(n_workers, n_pending)) as pool:
        results = pool.imap(pending)
        if not reconstruct_in_parent:
            for source, result in results:
                yield died_outcome(source, result) if isinstance(result, TaskDied) else result
            return
        parent = SourcePipeline(config, track=False)
        group: list[InFlight] = []
        for source, result in results:
            group.append(InFlight(died_outcome(source, result)) if isinstance(result, TaskDied) else result)
            if sum(member.n_clip_frames for member in group) >= config.reconstruct.batch_size:
                yield from _reconstruct_group(parent, group)
                group = []
        yield from _reconstruct_group(parent, group)


def _reconstruct_group(parent: SourcePipeline, group: list[InFlight]) -> Iterator[SourceOutcome]:
    parent.reconstruct(group)
    for item in group:
        yield parent.finish(item)
