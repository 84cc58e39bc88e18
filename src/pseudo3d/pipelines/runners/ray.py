"""The Ray runner: the same build on a Ray cluster, streamed through Ray Data.

    sources ──► CPU actors: probe, decode, track ──► GPU actors: reconstruct ──► driver: shard writer
               (and reconstruct, smooth, QA when      (when the backend runs on    (same writer, same
                the backend runs on CPU)               GPUs; then smooth, QA)       commit, same files)

The stages are the local runner's: each CPU actor serves its sources through an
:class:`~pseudo3d.pipelines.runners.isolation.IsolatedPool` of one process, so the watchdog, the
``worker/crashed`` and ``worker/timeout`` rows and model loading once per worker work exactly as on
one machine. Ray adds the cluster: actors on every node, restarts of killed actors with their task
retried (``max_task_retries``), streaming with backpressure, and GPU actors holding the model once.

Order is preserved (``preserve_order``), so the driver receives outcomes in the local runner's
order and writes byte-identical shards. A block that still fails after its retries is not allowed
to abort the job (``max_errored_blocks``): the driver notices the sources that never came back
and records each as a ``worker/crashed`` failure row, so nothing is silently dropped.

No stage imports ray; only this module does.
"""

from __future__ import annotations

import logging
import os
import secrets
import warnings
from pathlib import Path
from typing import Any, Iterator

from pseudo3d.config import BuildConfig
from pseudo3d.errors import Pseudo3DError
from pseudo3d.pipelines.process import InFlight, SourcePipeline, uses_torch
from pseudo3d.pipelines.runners import local
from pseudo3d.pipelines.runners.driver import BuildReport, run_build
from pseudo3d.pipelines.runners.isolation import TaskDied
from pseudo3d.schemas.records import Source, SourceOutcome

log = logging.getLogger(__name__)

TASK_RETRIES = 3
"""Times a task is retried on a restarted actor after its actor died (node loss, a kill)."""
SOURCES_PER_GPU_BATCH = 8
"""Tracked sources handed to a reconstruction actor at once; the backend cuts their frames into
``reconstruct.batch_size`` batches spanning clips and sources."""
LOOPBACK = "127.0.0.1"


def build_ray(sources: list[Source], out: str | Path, config: BuildConfig, *, address: str | None = None,
              workers: int = 0, gpu_actors: int | None = None, split: bool | None = None,
              overwrite: bool = False, retry_failed: str | None = None, progress: bool = True,
              qa_report: bool = True) -> BuildReport:
    """Build (or resume) the dataset at ``out`` (a directory or an fsspec URL) on Ray.

    ``address``: ``None`` starts a private single-node Ray bound to 127.0.0.1 and stops it
    afterwards; ``"auto"``, ``HOST:PORT`` or ``ray://HOST:PORT`` join an existing cluster.
    ``workers``: CPU actors (0: one per CPU in the cluster). ``gpu_actors``: reconstruction
    actors, one GPU each (None: one per GPU in the cluster). ``split``: reconstruct in separate
    actors (None: when the backend can use a GPU and the cluster has one).
    """
    import ray

    if not progress:
        logging.getLogger("ray.data").setLevel(logging.WARNING)
    started = _connect(address)
    try:
        resources = ray.cluster_resources()
        n_cpus, n_gpus = int(resources.get("CPU", 1)), int(resources.get("GPU", 0))
        if split is None:
            split = uses_torch(config) and n_gpus > 0
        n_cpu_actors, n_gpu_actors = actor_counts(n_cpus, n_gpus, workers=workers, gpu_actors=gpu_actors, split=split)

        def produce(pending: list[Source], log_path: Path) -> Iterator[SourceOutcome]:
            return _outcomes(pending, config, log_path, n_cpu_actors, split, n_gpu_actors, n_gpus > 0)

        return run_build(sources, out, config, produce, overwrite=overwrite, retry_failed=retry_failed,
                         progress=progress,
                         qa_report=qa_report)
    finally:
        if started:
            ray.shutdown()


def actor_counts(cpus: int, gpus: int, *, workers: int = 0, gpu_actors: int | None = None,
                 split: bool = False) -> tuple[int, int]:
    """(CPU actors, reconstruction actors) for a cluster of ``cpus`` CPUs and ``gpus`` GPUs.

    Every actor takes one CPU. Split (reconstruction in its own actors), there is one
    reconstruction actor per GPU (``gpu_actors`` overrides), and the CPU actors get the CPUs those
    leave: 256 CPUs and 8 GPUs give 248 + 8 actors, all of which start. ``workers`` overrides the
    CPU actors; a request beyond the cluster's CPUs is logged (an autoscaling cluster may grow to
    it; a fixed one runs the actors that fit)."""
    n_gpu_actors = (gpu_actors if gpu_actors is not None else max(1, gpus)) if split else 0
    n_cpu_actors = workers or max(1, cpus - n_gpu_actors)
    if n_cpu_actors + n_gpu_actors > cpus:
        log.warning("%d CPU actors and %d reconstruction actors ask for %d CPUs; the cluster has %d now",
                    n_cpu_actors, n_gpu_actors, n_cpu_actors + n_gpu_actors, cpus)
    return n_cpu_actors, n_gpu_actors


def _connect(address: str | None) -> bool:
    """Join or start Ray; True when this call started it (and must stop it)."""
    import ray

    if ray.is_initialized():
        return False
    if address is None:
        # A private single-node Ray: node address 127.0.0.1, no dashboard, and token
        # authentication with a fresh random token, since some of Ray's gRPC servers listen on
        # every interface whatever the node address (docs/ray.md).
        os.environ.setdefault("RAY_AUTH_MODE", "token")
        if os.environ["RAY_AUTH_MODE"] == "token":
            os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))
        from ray._raylet import Config  # type: ignore[attr-defined]  # _raylet.pyi leaves out Cython's Config

        Config.initialize("")  # Ray reads RAY_AUTH_MODE when imported: make it see the change
        ray.init(_node_ip_address=LOOPBACK, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
        return True
    try:
        ray.init(address=address, log_to_driver=False, configure_logging=False)
    except (ConnectionError, RuntimeError) as exc:
        raise Pseudo3DError(f"--address {address}: cannot connect to a Ray cluster there ({exc})") from None
    return True


class _SourceActor:
    """Probe, decode and track (and, unsplit, the rest) one source at a time in an isolated
    process: the local runner's worker, with its watchdog."""

    def __init__(self, config: BuildConfig, log_path: str, whole_chain: bool):
        self.whole_chain = whole_chain
        # One CPU per actor (num_cpus=1), so one thread for the stages' numerical libraries.
        self.pool = local.isolated_pool(1, config, Path(log_path), whole_chain, config.limits.threads_per_worker or 1,
                                        max_ahead=1)

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        source = row["source"]
        (result,) = self.pool.imap([source])
        if isinstance(result, TaskDied):
            died = local.died_outcome(source, result)
            result = died if self.whole_chain else InFlight(died)
        return {"index": row["index"], "result": result}


class _ReconstructActor:
    """Reconstruct a batch of tracked sources (on its GPU when it has one), then smooth,
    measure and encode them."""

    def __init__(self, config: BuildConfig):
        self.pipeline = SourcePipeline(config, track=False)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        items = list(batch["result"])
        self.pipeline.reconstruct(items)
        return {"index": list(batch["index"]), "result": [self.pipeline.finish(item) for item in items]}


def _outcomes(pending: list[Source], config: BuildConfig, log_path: Path, n_cpu_actors: int, split: bool,
              n_gpu_actors: int, have_gpus: bool) -> Iterator[SourceOutcome]:
    import ray.data

    if not pending:
        return
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True
    context.max_errored_blocks = -1  # a block failing every retry becomes failure rows, not an abort
    context.enable_fallback_to_arrow_object_ext_type = True  # sources and outcomes travel as objects
    context.enable_progress_bars = False
    dataset: ray.data.Dataset = ray.data.from_items(
        [{"index": i, "source": source} for i, source in enumerate(pending)], override_num_blocks=len(pending))
    with warnings.catch_warnings():
        # Ray 2.60 deprecates passing actor options as keyword arguments but names no
        # replacement for the retry limits; without them a dying actor is retried forever.
        warnings.filterwarnings("ignore", message=".*ray_remote_args.* is deprecated")
        retries: dict[str, Any] = {"max_restarts": -1, "max_task_retries": TASK_RETRIES}
        # Ray's map runs a callable class in an actor pool, as documented, but annotates a function only
        dataset = dataset.map(_SourceActor,  # type: ignore[arg-type]
                              fn_constructor_args=(config, str(log_path), not split),
                              compute=ray.data.ActorPoolStrategy(size=min(n_cpu_actors, len(pending))),
                              num_cpus=1, **retries)
        if split:
            dataset = dataset.map_batches(_ReconstructActor, fn_constructor_args=(config,),
                                          batch_size=SOURCES_PER_GPU_BATCH, batch_format="numpy",
                                          compute=ray.data.ActorPoolStrategy(size=n_gpu_actors),
                                          num_gpus=1 if have_gpus else 0, num_cpus=1, **retries)
    seen: set[int] = set()
    for row in dataset.iter_rows():
        seen.add(int(row["index"]))
        yield row["result"]
    for index, source in enumerate(pending):
        if index not in seen:  # its block failed on every retry: record it, never drop it
            yield local.died_outcome(source, TaskDied(
                "crashed", f"the Ray worker died on each of {TASK_RETRIES + 1} attempts"))
