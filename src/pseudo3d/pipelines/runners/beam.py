"""The Beam runner: the same build as a portable Apache Beam pipeline (Direct, Flink, Spark, Dataflow).

    sources ─► Track (ParDo) ─┬─► Reconstruct (RunInference) ─┬─► count ─► WriteShards ─► finalize
                              └─ failed: dead letter ─────────┴─────────────┘   (temporary, then published)

* **Track** probes, decodes and tracks each source in an isolated process (the local runner's
  worker, with its watchdog): a source that fails, or whose worker dies, leaves through the
  ``failed`` dead-letter output as its failure outcome.
* **Reconstruct** is Beam's ``RunInference`` with a ``ModelHandler`` around the reconstruct stage:
  the model loads once per worker process, tracked sources arrive in batches, and each batch is
  reconstructed, then smoothed, measured (QA) and encoded where the model is. A batch whose handler
  raises goes to RunInference's dead-letter output and becomes failure rows.
* **WriteShards** packs the outcomes into shards by the local writer's rule (over sizes only, in
  input order), groups each shard's outcomes, writes its files into a per-attempt staging directory,
  and publishes them in one finalize step once every write has succeeded: Beam's
  temporary-then-finalize protocol. A retried bundle's abandoned files are never published, and
  Beam keeps the output of one attempt per bundle, so retries neither duplicate nor lose clips.

The shards equal the local runner's byte for byte; the driver then writes the dataset-level files
from the committed shards as every runner does. No stage imports apache_beam; only this module does.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import io
import logging
import threading
import time
import uuid
import warnings
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from tqdm import tqdm

from pseudo3d.config import BuildConfig
from pseudo3d.errors import Pseudo3DError
from pseudo3d.pipelines.process import InFlight, SourcePipeline, fail_source
from pseudo3d.pipelines.runners import local
from pseudo3d.pipelines.runners.driver import BuildReport, build_log, finish_build, start_build
from pseudo3d.pipelines.runners.isolation import IsolatedPool, TaskDied
from pseudo3d.pipelines.shard_writer import (ShardBuilder, ShardPacker, committed_shards, outcome_size,
                                             publish_shard)
from pseudo3d.schemas.layout import SHARD_DIR
from pseudo3d.schemas.records import Source, SourceOutcome
from pseudo3d.storage import Storage

_root, _guard = logging.getLogger(), logging.NullHandler()
_root.addHandler(_guard)  # Beam logs through the root logger while importing; never let it configure logging
with warnings.catch_warnings():
    # Importing Beam warns about optional cloud clients it does not find (GCS, BigQuery); they
    # are not used here. Their modules are imported now, quietly, rather than mid-run.
    warnings.filterwarnings("ignore", category=FutureWarning, module="google")
    logging.getLogger("apache_beam.io.filesystems").setLevel(logging.ERROR)
    _level = _root.level
    _root.setLevel(logging.ERROR)
    try:
        import apache_beam as beam
        import apache_beam.io.gcp.internal.clients.bigquery  # noqa: F401
        from apache_beam.metrics.metric import Metrics, MetricsFilter
        from apache_beam.ml.inference.base import KeyedModelHandler, ModelHandler, RunInference
        from apache_beam.options.pipeline_options import PipelineOptions
        from apache_beam.runners.runner import PipelineState
    finally:
        _root.setLevel(_level)
        _root.removeHandler(_guard)


class _InMemoryIsParallel(logging.Filter):
    """The DirectRunner warns that ``in_memory`` with several workers is not parallel; with these
    stages it is (the work runs in each worker's isolated process), as bench/bench_runners.py shows."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("If direct_num_workers is not equal to 1")


logging.getLogger("apache_beam.runners.portability.fn_api_runner.fn_runner").addFilter(_InMemoryIsParallel())

log = logging.getLogger(__name__)

SOURCES_PER_BATCH = 8
"""Most tracked sources per RunInference batch; the backend cuts their frames into
``reconstruct.batch_size`` batches spanning clips and sources."""
METRICS = "pseudo3d"
FAILED = "failed"
POLL_S = 1.0

_in_process_bar: tqdm | None = None
"""The driver's progress bar while a pipeline runs, for steps the runner executes in this process."""


def pipeline_options(pairs: Sequence[str], workers: int = 0) -> PipelineOptions:
    """Beam options from ``--beam-option KEY=VALUE`` (``KEY`` alone for a switch). On the
    DirectRunner, ``workers`` (0: one per core) becomes ``direct_num_workers`` unless the options
    set it. The running mode stays Beam's ``in_memory``: its workers are threads of this process
    that open no network port (``multi_threading`` and ``multi_processing`` serve the Fn API on
    every interface, without authentication; see docs/beam.md)."""
    known = PipelineOptions([]).get_all_options()
    flags, keys = [], set()
    for pair in pairs:
        key, has_value, value = pair.partition("=")
        key = key.strip().lstrip("-")
        if key not in known:
            raise Pseudo3DError(f"--beam-option {pair}: {key!r} is not an Apache Beam pipeline option "
                                "(see the pipeline options of the Beam runner you use)")
        keys.add(key)
        flags.append(f"--{key}={value}" if has_value else f"--{key}")
    options = PipelineOptions(flags)
    said = io.StringIO()
    try:
        with contextlib.redirect_stderr(said):
            values = options.get_all_options()
    except SystemExit:  # Beam's argument parser exits on a value it cannot read
        reason = said.getvalue().strip().splitlines()[-1:] or ["unreadable value"]
        raise Pseudo3DError(f"--beam-option {' '.join(pairs)}: {reason[0].partition('error: ')[2] or reason[0]}") from None
    if (values["runner"] or "DirectRunner") in ("DirectRunner", "direct") and "direct_num_workers" not in keys:
        flags.append(f"--direct_num_workers={workers or local.default_workers()}")
        options = PipelineOptions(flags)
    return options


def build_beam(sources: list[Source], out: str | Path, config: BuildConfig, *, options: Sequence[str] = (),
               workers: int = 0, overwrite: bool = False, retry_failed: str | None = None, progress: bool = True,
               qa_report: bool = True) -> BuildReport:
    """Build (or resume) the dataset at ``out`` (a directory or an fsspec URL) with a Beam
    pipeline; ``options`` are ``KEY=VALUE`` Beam pipeline options (default: the DirectRunner on
    this machine)."""
    beam_options = pipeline_options(options, workers)
    state, pending, report = start_build(sources, out, config, overwrite=overwrite, retry_failed=retry_failed)
    storage = report.storage
    start = time.perf_counter()
    if pending:
        staging = f"{SHARD_DIR}/.beam-{uuid.uuid4().hex}.tmp"
        with build_log(storage) as log_path:
            pipeline = beam.Pipeline(options=beam_options)
            _expand(pipeline, pending, config, storage.url, str(log_path), sorted(state.taken_indices), staging,
                    state.numerics)
            try:
                counters = _run(pipeline, len(pending), progress)
            except Exception as exc:
                storage.delete_tree(staging)
                raise Pseudo3DError(f"the Beam pipeline failed, and nothing from it was published "
                                    f"({type(exc).__name__}: {exc}); run the same command again to retry") from exc
        new = [shard for shard in committed_shards(storage) if shard.index not in state.taken_indices]
        _check_complete(pending, new)
        report.shards_written = [shard.name for shard in new]
        report.processed = sum(len(shard.stats["sources"]) for shard in new)
        report.ok = sum(row["status"] == "ok" for shard in new for row in shard.stats["sources"])
        report.failed = report.processed - report.ok
        report.clips = sum(shard.stats["n_samples"] for shard in new)
        report.frames = counters.get("frames_decoded", 0)
    report.seconds = time.perf_counter() - start
    return finish_build(report, config, qa_report=qa_report)


def _expand(pipeline: beam.Pipeline, pending: list[Source], config: BuildConfig, dataset: str, log_path: str,
            taken: list[int], staging: str, numerics: dict | None) -> None:
    tracked = (pipeline
               | "Sources" >> beam.Create(list(enumerate(pending)))
               | "Track" >> beam.ParDo(_TrackFn(config, log_path)).with_outputs(FAILED, main="tracked"))
    finished, dead = (tracked.tracked
                      | "Reconstruct" >> RunInference(KeyedModelHandler(_ReconstructHandler(config)))
                      .with_exception_handling())
    dead_batches = dead.failed_inferences | "Failed batches" >> beam.FlatMap(_batch_failed)
    # Each branch is counted before the Flatten: the BundleBasedDirectRunner keeps the metrics of
    # only one input of a Flatten's consumer.
    counted = [branch | f"Count {name}" >> beam.ParDo(_CountFn()) for name, branch in
               (("reconstructed", finished), ("failed batches", dead_batches), ("failed", tracked[FAILED]))]
    (counted
     | "Outcomes" >> beam.Flatten()
     | "WriteShards" >> WriteShards(dataset, config, taken, staging, numerics))


def _run(pipeline: beam.Pipeline, total: int, progress: bool) -> dict[str, int]:
    """Run the pipeline to its end; the counters at the end. The progress bar follows the
    ``sources`` counter where the runner reports it while running, and is fed directly by the
    counting step when the runner executes it in this process (the DirectRunner)."""
    global _in_process_bar
    bar = tqdm(total=total, unit="video", desc="build (beam)", disable=not progress, dynamic_ncols=True)
    _in_process_bar = bar
    try:
        result = pipeline.run()
        # Some runners update result.state only inside wait_until_finish: wait in a daemon thread
        # (an interrupt must not wait for it) and poll the counters here.
        waiting: concurrent.futures.Future = concurrent.futures.Future()
        threading.Thread(target=_wait, args=(result, waiting), daemon=True).start()
        while not waiting.done():
            concurrent.futures.wait([waiting], timeout=POLL_S)
            bar.n = max(bar.n, _counters(result).get("sources", 0))
            bar.refresh()
        state = waiting.result()  # re-raises the pipeline's error
        if state != PipelineState.DONE:
            raise RuntimeError(f"the pipeline ended in state {state}")
        counters = _counters(result)
        bar.n = counters.get("sources", bar.n)
        bar.refresh()
    finally:
        _in_process_bar = None
        bar.close()
    return counters


def _wait(result, waiting: concurrent.futures.Future) -> None:
    try:
        waiting.set_result(result.wait_until_finish())
    except BaseException as exc:  # noqa: BLE001 - handed to the driver's thread
        waiting.set_exception(exc)


def _counters(result) -> dict[str, int]:
    try:
        found = result.metrics().query(MetricsFilter().with_namespace(METRICS))["counters"]
    except (NotImplementedError, KeyError):  # a runner that reports no metrics
        return {}
    totals: dict[str, int] = {}
    for counter in found:  # one entry per counting step
        value = counter.committed if counter.committed is not None else counter.attempted
        totals[counter.key.metric.name] = totals.get(counter.key.metric.name, 0) + int(value or 0)
    return totals


def _check_complete(pending: list[Source], shards) -> None:
    """Every pending source once in the new shards: a runner that lost or repeated one is a bug
    to report, never a dataset to publish silently."""
    seen = [row["source_id"] for shard in shards for row in shard.stats["sources"]]
    missing = {source.source_id for source in pending} - set(seen)
    if missing or len(seen) != len(set(seen)):
        raise Pseudo3DError(f"the Beam pipeline published {len(seen)} source rows for {len(pending)} inputs "
                            f"({len(missing)} missing, {len(seen) - len(set(seen))} repeated)")


class _TrackFn(beam.DoFn):
    """Probe, decode and track one source at a time in an isolated worker process."""

    def __init__(self, config: BuildConfig, log_path: str):
        self.config, self.log_path = config, log_path
        self.pool: IsolatedPool | None = None

    def setup(self) -> None:
        self.pool = local.isolated_pool(1, self.config, Path(self.log_path), False,
                                        self.config.limits.threads_per_worker or 1, max_ahead=1)

    def process(self, element: tuple[int, Source]) -> Iterator[Any]:
        index, source = element
        if self.pool is None:  # Beam calls setup first
            raise RuntimeError("_TrackFn.process before setup")
        (result,) = self.pool.imap([source])
        if isinstance(result, TaskDied):
            result = InFlight(local.died_outcome(source, result))
        if result.outcome.reason:  # failed before reconstruction: the dead letter
            yield beam.pvalue.TaggedOutput(FAILED, (index, result.outcome))
        else:
            yield index, result

    def teardown(self) -> None:
        if self.pool is not None:
            self.pool.close()
            self.pool = None


class _ReconstructHandler(ModelHandler):
    """RunInference's view of the reconstruct stage: the model is a reconstruct-side
    :class:`SourcePipeline`; a batch of tracked sources in, their finished outcomes out."""

    def __init__(self, config: BuildConfig):
        super().__init__(min_batch_size=1, max_batch_size=SOURCES_PER_BATCH)
        self.config = config

    def load_model(self) -> SourcePipeline | str:
        try:
            return SourcePipeline(self.config, track=False)
        except Exception as exc:  # noqa: BLE001 - becomes every source's failure row, as in the local runner
            log.exception("the reconstruction model could not be loaded")
            return f"{type(exc).__name__}: {exc}"

    def run_inference(self, batch: Sequence[InFlight], model: SourcePipeline | str,
                      inference_args: dict[str, Any] | None = None) -> list[SourceOutcome]:
        if isinstance(model, str):
            return [local.setup_failure(item.outcome.source, model) for item in batch]
        items = list(batch)
        model.reconstruct(items)
        return [model.finish(item) for item in items]

    def get_num_bytes(self, batch: Sequence[InFlight]) -> int:
        return sum(clip.landmarks.nbytes + (clip.crops.nbytes if clip.crops is not None else 0)
                   for item in batch for clip in item.clips)

    def get_metrics_namespace(self) -> str:
        return "pseudo3d_reconstruct"


def _batch_failed(dead: tuple[Sequence[tuple[int, InFlight]], Exception]) -> Iterator[tuple[int, SourceOutcome]]:
    batch, exc = dead
    for index, item in batch:
        fail_source(item.outcome, "reconstruct", exc)
        yield index, item.outcome


class _CountFn(beam.DoFn):
    """Counters for the progress bar and the build report."""

    def __init__(self):
        self.sources = Metrics.counter(METRICS, "sources")
        self.frames = Metrics.counter(METRICS, "frames_decoded")

    def process(self, element: tuple[int, SourceOutcome]) -> Iterator[tuple[int, SourceOutcome]]:
        self.sources.inc()
        self.frames.inc(element[1].n_frames_decoded)
        if _in_process_bar is not None:
            _in_process_bar.update()
        yield element


class WriteShards(beam.PTransform):
    """``(input index, outcome)`` pairs in, the local writer's shards out, published only when
    every shard has been written (temporary, then finalize)."""

    def __init__(self, dataset: str, config: BuildConfig, taken: Iterable[int], staging: str,
                 numerics: dict | None = None):
        """``dataset``: the dataset's local path or URL; ``staging``: the staging folder, relative to it."""
        super().__init__()
        self.dataset, self.staging = dataset, staging
        self.shards, self.taken = config.shards, list(taken)
        self.fingerprint, self.numerics = config.fingerprint(), numerics

    def expand(self, outcomes):
        plan = (outcomes
                | "Sizes" >> beam.Map(lambda pair: (pair[0], *outcome_size(pair[1])))
                | "All sizes" >> beam.combiners.ToList()
                | "Pack" >> beam.Map(_pack, self.shards, self.taken))
        written = (outcomes
                   | "Assign" >> beam.Map(lambda pair, shard_of: (shard_of[pair[0]], pair), beam.pvalue.AsSingleton(plan))
                   | "Group by shard" >> beam.GroupByKey()
                   | "Write temporary" >> beam.ParDo(_WriteShardFn(self.dataset, self.staging, self.fingerprint,
                                                                 self.numerics)))
        return (outcomes.pipeline
                | "Once" >> beam.Create([None])
                | "Finalize" >> beam.FlatMap(_finalize, self.dataset, self.staging, beam.pvalue.AsList(written)))


def _pack(sizes: list[tuple[int, int, int]], config, taken: list[int]) -> dict[int, int]:
    """Input index → shard index, by the local writer's packing rule over the sizes in input order."""
    packer = ShardPacker(config, taken)
    return {index: packer.place(n_samples, n_bytes)[0] for index, n_samples, n_bytes in sorted(sizes)}


class _WriteShardFn(beam.DoFn):
    """Write one shard, its outcomes in input order, into a fresh staging folder per attempt."""

    def __init__(self, dataset: str, staging: str, fingerprint: str, numerics: dict | None):
        self.dataset, self.staging, self.fingerprint, self.numerics = dataset, staging, fingerprint, numerics

    def process(self, element: tuple[int, Iterable[tuple[int, SourceOutcome]]]) -> Iterator[tuple[int, str]]:
        index, members = element
        members = sorted(members, key=lambda pair: pair[0])
        attempt = f"{self.staging}/{uuid.uuid4().hex}"
        builder = ShardBuilder(Storage(self.dataset), attempt, index, self.fingerprint, self.numerics)
        for _, outcome in members:
            builder.add(outcome)
        builder.finish()
        yield index, attempt


def _finalize(_, dataset: str, staging: str, written: list[tuple[int, str]]) -> Iterator[str]:
    """Publish the staged shards (each shard's commit marker last), then drop the staging area
    with whatever failed attempts left there."""
    indices = [index for index, _ in written]
    if len(indices) != len(set(indices)):
        raise RuntimeError(f"shards written more than once: {sorted(indices)}")
    storage = Storage(dataset)
    for index, attempt in sorted(written):
        publish_shard(storage, attempt, index)
    storage.delete_tree(staging)
    yield from (str(index) for index in sorted(indices))
