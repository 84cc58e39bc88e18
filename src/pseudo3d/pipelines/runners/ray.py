"""The Ray runner: the same build on a Ray cluster, streamed through Ray Data.

    units ──► CPU actors: probe, decode, track, write and commit the unit ──► driver: counts, then
              (unsplit: also reconstruct, smooth, QA, encode)                    the dataset files
                    │ ▲  split: a batch of tracked sources at a time
                    ▼ │
              GPU actors: reconstruct, smooth, QA, encode

A unit (:mod:`pseudo3d.pipelines.plan`) is one row. The stages are the local runner's: each CPU
actor serves the unit's sources one at a time through an
:class:`~pseudo3d.pipelines.runners.isolation.IsolatedPool` of one process, so the watchdog, the
``worker/crashed`` and ``worker/timeout`` rows and model loading once per worker work exactly as on
one machine. Ray adds the cluster: actors on every node, restarts of killed actors with their task
retried (``max_task_retries``), streaming with backpressure, and GPU actors holding the model once.

Split (a GPU backend on GPUs), a CPU actor sends its unit's tracked sources to a GPU actor in
groups of at least ``reconstruct.batch_size`` frames (a source is never cut), one group at a time
while it tracks the next, and writes each group's encoded samples as they come back: crops (about
150 kB a frame) are held for one group, not for a unit, on both sides and in the object store.

The actor that finishes a unit writes its shards straight to the dataset (a path every node
sees, or object storage) and commits it with its marker (:mod:`pseudo3d.pipelines.shard_writer`):
no sample passes through the driver, and units finish in any order (no ``preserve_order``), so
a long unit holds up nobody. A retried task writes under a new attempt; its marker is created
only if no earlier attempt committed, so a unit is never doubled. The shards equal the local
runner's byte for byte. A block that still fails after its retries is not allowed to abort the
job (``max_errored_blocks``): the driver notices the units that never came back and commits their
sources as ``worker/crashed`` failure rows, so nothing is silently dropped.

No stage imports ray; only this module does.
"""

from __future__ import annotations

import logging
import os
import secrets
import warnings
from pathlib import Path
from typing import Any, Iterator, Sequence

from pseudo3d.config import BuildConfig
from pseudo3d.errors import Pseudo3DError
from pseudo3d.pipelines.media import limit_threads
from pseudo3d.pipelines.process import InFlight, SourcePipeline, uses_torch
from pseudo3d.pipelines.runners import local
from pseudo3d.pipelines.output_dir import BuildPlan, scratch_dir
from pseudo3d.pipelines.plan import Unit
from pseudo3d.pipelines.runners.driver import BuildReport, UnitDone, run_build
from pseudo3d.pipelines.runners.isolation import TaskDied
from pseudo3d.pipelines.shard_writer import UnitWriter, write_unit
from pseudo3d.pipelines.spool import actor_spool
from pseudo3d.pipelines.spool import release as release_spool
from pseudo3d.schemas.records import Source, SourceOutcome
from pseudo3d.storage import Storage

log = logging.getLogger(__name__)

TASK_RETRIES = 3
"""Times a task is retried on a restarted actor after its actor died (node loss, a kill)."""
LOOPBACK = "127.0.0.1"


def build_ray(sources: Sequence[Source], out: str | Path, config: BuildConfig, *, address: str | None = None,
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

        storage = Storage(out)

        def produce(plan: BuildPlan, log_path: Path) -> Iterator[UnitDone]:
            return _outcomes(plan.units, config, storage.url, log_path, n_cpu_actors, split, n_gpu_actors,
                             n_gpus > 0, plan.numerics)

        return run_build(sources, storage, config, produce, overwrite=overwrite, retry_failed=retry_failed,
                         progress=progress, qa_report=qa_report)
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


class _UnitActor:
    """Build a unit in an isolated process, one source at a time (the local runner's worker, with
    its watchdog), and write and commit it. Unsplit, the process runs every stage; split
    (``gpu`` given), it probes and tracks, and the GPU actors do the rest a group at a time."""

    def __init__(self, config: BuildConfig, log_path: str, dataset: str, numerics: dict | None,
                 gpu: list | None = None):
        self.config, self.dataset, self.numerics, self.gpu = config, dataset, numerics, gpu or []
        whole_chain = not self.gpu
        # The actor writes the unit on this node, so its worker spools samples to this node's disk
        # (the dataset's scratch folder there) and only their places travel.
        spool = actor_spool(scratch_dir(Storage(dataset))) if whole_chain else None
        # One CPU per actor (num_cpus=1), so one thread for the stages' numerical libraries.
        self.pool = local.isolated_pool(1, config, Path(log_path), whole_chain, config.limits.threads_per_worker or 1,
                                        max_ahead=1, spool_dir=spool)
        self._turn = secrets.randbelow(len(self.gpu)) if self.gpu else 0

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        unit: Unit = row["unit"]
        results = self.pool.imap(list(unit.sources))  # a long source chunk by chunk
        if self.gpu:
            return {"unit": unit, "done": self._split(unit, results)}
        outcomes = [local.died_outcome(source, result) if isinstance(result, TaskDied) else result
                    for source, result in results]
        return {"unit": unit, "done": _commit(self.dataset, unit, outcomes, self.config, self.numerics)}

    def _split(self, unit: Unit, results: Iterator[tuple[Source, Any]]) -> UnitDone:
        """Track the unit's sources here, reconstruct and encode them on the GPU actors a group at a
        time (the next group is tracked while the last one is on a GPU), write each group's outcomes
        as they return, then commit."""
        import ray

        writer = UnitWriter(Storage(self.dataset), unit, self.config.shards, self.config.fingerprint(), self.numerics)
        done = UnitDone(unit=unit.index, committed=False, sources=0, ok=0, clips=0, frames_decoded=0, shards=())

        def write(pending: Any) -> None:
            for outcome in ray.get(pending):
                writer.add(outcome)
                done.add(outcome)

        try:
            pending = None
            for group in self._groups(results):
                if pending is not None:
                    write(pending)
                pending = self._send(group)
            if pending is not None:
                write(pending)
            return done.committed_as(writer.commit())
        except BaseException:
            writer.abort()
            raise

    def _groups(self, results: Iterator[tuple[Source, Any]]) -> Iterator[list[InFlight]]:
        """Tracked sources (a long one chunk by chunk) in groups of at least
        ``reconstruct.batch_size`` frames (the last may have fewer); a source or chunk is never cut."""
        group: list[InFlight] = []
        for source, result in results:
            group.append(InFlight(local.died_outcome(source, result)) if isinstance(result, TaskDied) else result)
            if sum(item.n_clip_frames for item in group) >= self.config.reconstruct.batch_size:
                yield group
                group = []
        if group:
            yield group

    def _send(self, group: list[InFlight]) -> Any:
        """The group on the next GPU actor (round robin): an object ref of its outcomes."""
        self._turn = (self._turn + 1) % len(self.gpu)
        return self.gpu[self._turn].finish.remote(group)


class _ReconstructActor:
    """Reconstruct groups of tracked sources (on its GPU when it has one), smooth, measure and
    encode them; a CPU actor writes what comes back."""

    def __init__(self, config: BuildConfig):
        if uses_torch(config):
            import torch  # noqa: F401 - loaded first, so limit_threads caps it too
        # One CPU per actor, as the local runner's workers get their share: the same thread count
        # gives the same last bits of the CPU's numerics (docs/data-contract.md, Determinism).
        limit_threads(config.limits.threads_per_worker or 1)
        self.pipeline = SourcePipeline(config, track=False)

    def finish(self, items: list[InFlight]) -> list[SourceOutcome]:
        self.pipeline.reconstruct(items)
        return [self.pipeline.finish(item) for item in items]


def _commit(dataset: str, unit: Unit, outcomes: list[SourceOutcome], config: BuildConfig,
            numerics: dict | None) -> UnitDone:
    try:
        return UnitDone.of(unit, outcomes, write_unit(Storage(dataset), unit, outcomes, config.shards,
                                                      config.fingerprint(), numerics))
    finally:
        for outcome in outcomes:
            release_spool(outcome)


def _outcomes(units: list[Unit], config: BuildConfig, out: str, log_path: Path, n_cpu_actors: int,
              split: bool, n_gpu_actors: int, have_gpus: bool, numerics: dict | None) -> Iterator[UnitDone]:
    """Each unit written and committed by the actor that finishes it; only counts come back."""
    import ray
    import ray.data

    if not units:
        return
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = False  # units commit themselves: any order will do
    context.max_errored_blocks = -1  # a block failing every retry is recorded below, not an abort
    context.enable_fallback_to_arrow_object_ext_type = True  # units and outcomes travel as objects
    context.enable_progress_bars = False
    dataset: ray.data.Dataset = ray.data.from_items([{"unit": unit} for unit in units],
                                                    override_num_blocks=len(units))
    with warnings.catch_warnings():
        # Ray 2.60 deprecates passing actor options as keyword arguments but names no
        # replacement for the retry limits; without them a dying actor is retried forever.
        warnings.filterwarnings("ignore", message=".*ray_remote_args.* is deprecated")
        retries: dict[str, Any] = {"max_restarts": -1, "max_task_retries": TASK_RETRIES}
        # The actors write the dataset: they get the --storage-option values the driver was given
        # (fsspec's FSSPEC_<PROTOCOL> variables; docs/storage.md), and nothing else of its environment.
        options = {key: value for key, value in os.environ.items() if key.startswith("FSSPEC_")}
        if options:
            retries["runtime_env"] = {"env_vars": options}
        # Split, the reconstruction actors are plain actors that the CPU actors call a group at a time.
        gpu: list[Any] | None = None
        if split:
            reconstructor = ray.remote(num_gpus=1 if have_gpus else 0, num_cpus=1, **retries)(_ReconstructActor)
            gpu = [reconstructor.remote(config) for _ in range(n_gpu_actors)]
        # Ray's map runs a callable class in an actor pool, as documented, but annotates a function only
        dataset = dataset.map(_UnitActor,  # type: ignore[arg-type]
                              fn_constructor_args=(config, str(log_path), out, numerics, gpu),
                              compute=ray.data.ActorPoolStrategy(size=min(n_cpu_actors, len(units))),
                              num_cpus=1, **retries)
    seen: set[int] = set()
    try:
        for row in dataset.iter_rows():
            seen.add(row["unit"].index)
            yield row["done"]
    finally:
        for actor in gpu or []:
            ray.kill(actor)
    storage = Storage(out)
    for unit in units:
        if unit.index not in seen:  # its block failed on every retry: record its sources, never drop them
            died = TaskDied("crashed", f"the Ray worker died on each of {TASK_RETRIES + 1} attempts")
            outcomes = [local.died_outcome(source, died) for source in unit.sources]
            yield UnitDone.of(unit, outcomes, write_unit(storage, unit, outcomes, config.shards,
                                                         config.fingerprint(), numerics))
