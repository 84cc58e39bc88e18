"""The local runner, the embedded default: a process pool over sources on one machine.

Each worker process builds the stage chain once (models load once per worker) and turns whole
sources into encoded samples; the parent process receives the outcomes in input order and feeds
the shard writer, so the shards do not depend on the number of workers.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from tqdm import tqdm

from pseudo3d.config import BuildConfig
from pseudo3d.logs import redirect_process_stderr
from pseudo3d.pipelines.finalize import finalize_dataset
from pseudo3d.pipelines.output_dir import prepare_output
from pseudo3d.pipelines.process import InFlight, SourcePipeline
from pseudo3d.pipelines.runners.isolation import IsolatedPool, TaskDied, report_units
from pseudo3d.pipelines.shard_writer import ShardWriter
from pseudo3d.reconstruction import BACKENDS
from pseudo3d.schemas.records import Failure, Source, SourceOutcome

log = logging.getLogger(__name__)


@dataclass
class BuildReport:
    """What one build invocation did (the card holds the dataset totals)."""

    out_dir: Path
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
    qa_report: Path | None = None

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


_WORKER_PIPELINE: SourcePipeline | None = None
_WORKER_ERROR: str | None = None


def _init_worker(config: BuildConfig, log_path: Path, reconstruct: bool, threads: int) -> None:
    """Build the worker's stages once. A failure here must not kill the worker (it would be
    replaced forever): it is kept and reported as every task's failure row instead."""
    global _WORKER_PIPELINE, _WORKER_ERROR
    redirect_process_stderr(log_path)
    try:
        if BACKENDS[config.backend].gpu_capable:
            import torch

            torch.set_num_threads(threads)  # workers share the cores; no oversubscription
        _WORKER_PIPELINE = SourcePipeline(config, reconstruct=reconstruct)
        _WORKER_PIPELINE.on_probe = lambda probe: report_units(probe.duration_s)
    except Exception as exc:  # noqa: BLE001 - reported per task below
        log.exception("worker set-up failed")
        _WORKER_ERROR = f"{type(exc).__name__}: {exc}"


def _inject_fault(source: Source) -> None:
    """Test hook: ``PSEUDO3D_FAULTS="crash=NAME;hang=NAME"`` makes the worker handling a source
    whose identity contains NAME die from SIGSEGV, or stop responding, as a native decoder bug
    would. Unset in normal use."""
    for rule in filter(None, os.environ.get("PSEUDO3D_FAULTS", "").split(";")):
        kind, _, name = rule.partition("=")
        if name and name in source.identity:
            if kind == "crash":
                os.kill(os.getpid(), signal.SIGSEGV)
            if kind == "hang":
                report_units(0.0)
                time.sleep(10 ** 6)


def _setup_failure(source: Source) -> SourceOutcome:
    failure = Failure(source.source_id, source.uri, "setup", "worker_setup_failed", _WORKER_ERROR)
    return SourceOutcome(source, "failed", failures=[failure], reason=f"worker_setup_failed: {_WORKER_ERROR}")


def _run_source(source: Source) -> SourceOutcome:
    _inject_fault(source)
    return _setup_failure(source) if _WORKER_PIPELINE is None else _WORKER_PIPELINE(source)


def _track_source(source: Source) -> InFlight:
    _inject_fault(source)
    return InFlight(_setup_failure(source)) if _WORKER_PIPELINE is None else _WORKER_PIPELINE.track(source)


def _died(source: Source, died: TaskDied) -> SourceOutcome:
    """The outcome of a source whose worker crashed or was killed by the watchdog."""
    message = f"{died.detail} while processing this input; the rest of the build went on"
    failure = Failure(source.source_id, source.uri, "worker", died.reason, message)
    return SourceOutcome(source, "failed", failures=[failure], reason=f"{died.reason}: {died.detail}")


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def reconstructs_in_parent(config: BuildConfig) -> bool:
    """GPU work happens once per GPU: a GPU-capable backend on a CUDA device reconstructs in the
    parent process, in batches spanning sources; everything else runs inside the CPU workers."""
    if not BACKENDS[config.backend].gpu_capable:
        return False
    from pseudo3d.reconstruction.device import resolve_device

    return resolve_device(config.reconstruct.device).type == "cuda"


def build_local(sources: list[Source], out_dir: Path, config: BuildConfig, *, workers: int = 0,
                overwrite: bool = False, progress: bool = True,
                reconstruct_in_parent: bool | None = None, qa_report: bool = True) -> BuildReport:
    """Build (or resume) the dataset at ``out_dir`` from ``sources``.

    ``reconstruct_in_parent`` overrides :func:`reconstructs_in_parent` (None: decide from the
    backend and device); ``qa_report=False`` skips drawing ``qa/report.html``.
    """
    out_dir = Path(out_dir)
    BACKENDS[config.backend].check_assets(config)
    state = prepare_output(out_dir, config, overwrite=overwrite)
    pending = state.pending(sources)
    report = BuildReport(out_dir=out_dir, inputs=len(sources), skipped=len(sources) - len(pending),
                         processed=0, ok=0, failed=0, clips=0, frames=0, seconds=0.0)
    writer = ShardWriter(out_dir / "shards", config.shards, config.fingerprint(), taken=state.taken_indices)
    n_workers = max(1, min(workers or default_workers(), len(pending)))
    if reconstruct_in_parent is None:
        reconstruct_in_parent = reconstructs_in_parent(config)
    start = time.perf_counter()
    bar = tqdm(total=len(pending), unit="video", desc="build", disable=not progress, dynamic_ncols=True)
    try:
        outcomes = _outcomes(pending, config, n_workers, out_dir / "logs" / "build.log", reconstruct_in_parent)
        for outcome in outcomes:
            writer.add(outcome)
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
    report.card, report.qa_report = finalize_dataset(out_dir, config, report=qa_report)
    return report


def _outcomes(pending: list[Source], config: BuildConfig, n_workers: int, log_path: Path,
              reconstruct_in_parent: bool) -> Iterator[SourceOutcome]:
    """Outcomes in input order from isolated worker processes (one worker too): a worker that
    crashes or hangs costs only its input, native log noise goes to ``log_path``, and the parent
    stays responsive."""
    if not pending:
        return
    threads = max(1, default_workers() // n_workers)
    initargs = (config, log_path, not reconstruct_in_parent, threads)
    task = _track_source if reconstruct_in_parent else _run_source
    with IsolatedPool(n_workers, _init_worker, initargs, task, base_timeout=config.limits.timeout_base_s,
                      per_unit=config.limits.timeout_per_video_s) as pool:
        results = zip(pending, pool.imap(pending))
        if not reconstruct_in_parent:
            for source, result in results:
                yield _died(source, result) if isinstance(result, TaskDied) else result
            return
        parent = SourcePipeline(config, track=False)
        group: list[InFlight] = []
        for source, result in results:
            group.append(InFlight(_died(source, result)) if isinstance(result, TaskDied) else result)
            if sum(member.n_clip_frames for member in group) >= config.reconstruct.batch_size:
                yield from _reconstruct_group(parent, group)
                group = []
        yield from _reconstruct_group(parent, group)


def _reconstruct_group(parent: SourcePipeline, group: list[InFlight]) -> Iterator[SourceOutcome]:
    parent.reconstruct(group)
    for item in group:
        yield parent.finish(item)
