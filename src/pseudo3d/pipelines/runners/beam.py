"""The Beam runner: the same build as a portable Apache Beam pipeline (Direct, Flink, Spark, Dataflow).

    plan parts ─► sources ─► Track (ParDo) ─┬─► Reconstruct (RunInference) ─┬─► count ─► group by unit ─► write and commit
                                            └─ failed: dead letter ─────────┴─────────────┘

* **Plan**: the driver writes the units' sources into the dataset (``_plan/``,
  :func:`~pseudo3d.pipelines.plan.write_plan`); the pipeline starts from the parts' names and its
  workers read the sources, so the pipeline's graph does not grow with the inputs.
* **Track** probes, decodes and tracks each source in an isolated process (the local runner's
  worker, with its watchdog): a source that fails, or whose worker dies, leaves through the
  ``failed`` dead-letter output as its failure outcome.
* **Reconstruct** is Beam's ``RunInference`` with a ``ModelHandler`` around the reconstruct stage:
  the model loads once per worker process, tracked sources arrive in batches, and each batch is
  reconstructed, then smoothed, measured (QA) and encoded where the model is. A batch whose handler
  raises goes to RunInference's dead-letter output and becomes failure rows.
* **Write and commit**: the outcomes are grouped by their unit (:mod:`pseudo3d.pipelines.plan`), and
  the worker holding a unit writes its shards straight to the dataset (a shared path, or object
  storage such as ``gs://`` on Dataflow) and commits it with its marker
  (:mod:`pseudo3d.pipelines.shard_writer`). There is no barrier: a unit is committed as soon as its
  sources are done, and a pipeline that fails keeps the units it committed. A retried bundle writes
  under a new attempt and commits only where no earlier attempt did, so retries neither duplicate
  nor lose clips.

The shards equal the local runner's byte for byte; the driver then writes the card from the
commits as every runner does. No stage imports apache_beam; only this module does.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import io
import logging
import threading
import time
import warnings
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from tqdm import tqdm

from pseudo3d.config import BuildConfig
from pseudo3d.errors import Pseudo3DError
from pseudo3d.pipelines.process import InFlight, SourcePipeline, fail_source
from pseudo3d.pipelines.runners import local
from pseudo3d.pipelines.output_dir import BuildPlan
from pseudo3d.pipelines.plan import Unit, read_plan_part, remove_plan, unit_digest, write_plan
from pseudo3d.pipelines.runners.driver import BuildReport, UnitDone, build_log, finish_build, open_build
from pseudo3d.pipelines.runners.isolation import IsolatedPool, TaskDied
from pseudo3d.pipelines.shard_writer import new_attempt, write_unit
from pseudo3d.schemas.commits import list_markers, read_commits
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
Position = tuple[int, int, int]
"""Where a source is in the plan: (unit index, position in the unit, chunk: 0 for a source built
whole)."""

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


def build_beam(sources: Sequence[Source], out: str | Path, config: BuildConfig, *, options: Sequence[str] = (),
               workers: int = 0, overwrite: bool = False, retry_failed: str | None = None, progress: bool = True,
               qa_report: bool = True) -> BuildReport:
    """Build (or resume) the dataset at ``out`` (a directory or an fsspec URL) with a Beam
    pipeline; ``options`` are ``KEY=VALUE`` Beam pipeline options (default: the DirectRunner on
    this machine)."""
    beam_options = pipeline_options(options, workers)
    with open_build(sources, out, config, overwrite=overwrite, retry_failed=retry_failed) as (plan, report):
        storage = report.storage
        start = time.perf_counter()
        if plan.units:
            with build_log(storage) as log_path:
                pipeline = beam.Pipeline(options=beam_options)
                _expand(pipeline, plan, write_plan(storage, plan.units, new_attempt()), config, storage.url,
                        str(log_path))
                try:
                    counters = _run(pipeline, plan.n_sources, progress)
                except Exception as exc:
                    raise Pseudo3DError(f"the Beam pipeline failed ({type(exc).__name__}: {exc}); the units it "
                                        "committed stay, and running the same command again builds the rest") from exc
                finally:
                    remove_plan(storage)
            committed = set(list_markers(storage))
            missing = [unit.index for unit in plan.units if unit.marker not in committed]
            if missing:
                raise Pseudo3DError(f"the Beam pipeline ended without committing {len(missing)} of its "
                                    f"{len(plan.units)} units (unit {missing[0]} first); run the same command again")
            for unit, commit in zip(plan.units, read_commits(storage, [unit.marker for unit in plan.units])):
                report.count(UnitDone.of_commit(unit, commit))
            report.frames = counters.get("frames_decoded", 0)
        report.seconds = time.perf_counter() - start
        return finish_build(report, config, qa_report=qa_report)


def _expand(pipeline: beam.Pipeline, plan: BuildPlan, parts: list[str], config: BuildConfig, dataset: str,
            log_path: str) -> None:
    """The pipeline of ``plan``, whose sources its workers read from the plan's ``parts`` (so the
    pipeline's graph holds their names, not the sources), spread over the workers by a reshuffle."""
    tracked = (pipeline
               | "Plan parts" >> beam.Create(parts)
               | "Sources" >> beam.FlatMap(_plan_sources, dataset)
               | "Spread" >> beam.Reshuffle()
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
     | "By unit" >> beam.Map(lambda pair: (pair[0][0], (pair[0][1:], pair[1])))
     | "Group by unit" >> beam.GroupByKey()
     | "Write and commit" >> beam.ParDo(_WriteUnitFn(dataset, config, plan.numerics,
                                                     {unit.index: unit for unit in plan.units if unit.base})))


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


def _plan_sources(part: str, dataset: str) -> Iterator[tuple[Position, Source]]:
    for unit, position, source in read_plan_part(Storage(dataset), part):
        yield (unit, position, 0), source


class _TrackFn(beam.DoFn):
    """Probe, decode and track one source at a time in an isolated worker process (a long source
    chunk by chunk, each chunk an element of its own)."""

    def __init__(self, config: BuildConfig, log_path: str):
        self.config, self.log_path = config, log_path
        self.pool: IsolatedPool | None = None

    def setup(self) -> None:
        self.pool = local.isolated_pool(1, self.config, Path(self.log_path), False,
                                        self.config.limits.threads_per_worker or 1, max_ahead=1)

    def process(self, element: tuple[Position, Source]) -> Iterator[Any]:
        (unit, position, _), source = element
        if self.pool is None:  # Beam calls setup first
            raise RuntimeError("_TrackFn.process before setup")
        for piece, result in self.pool.imap([source]):  # a long source chunk by chunk
            index = (unit, position, 0 if piece.chunk is None else piece.chunk.index)
            if isinstance(result, TaskDied):
                result = InFlight(local.died_outcome(piece, result))
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


def _batch_failed(dead: tuple[Sequence[tuple[Position, InFlight]], Exception]) -> Iterator[tuple[Position, SourceOutcome]]:
    batch, exc = dead
    for index, item in batch:
        fail_source(item.outcome, "reconstruct", exc)
        yield index, item.outcome


class _CountFn(beam.DoFn):
    """Counters for the progress bar and the build report."""

    def __init__(self):
        self.sources = Metrics.counter(METRICS, "sources")
        self.frames = Metrics.counter(METRICS, "frames_decoded")

    def process(self, element: tuple[Position, SourceOutcome]) -> Iterator[tuple[Position, SourceOutcome]]:
        completes = element[1].source.completes  # a long source's last chunk
        self.sources.inc(int(completes))
        self.frames.inc(element[1].n_frames_decoded)
        if _in_process_bar is not None:
            _in_process_bar.update(int(completes))
        yield element


class _WriteUnitFn(beam.DoFn):
    """Write and commit one unit from its outcomes, put back in its source order: the unit is
    known again from its sources (:func:`~pseudo3d.pipelines.plan.unit_digest`), so no plan
    travels with the pipeline but the few units ``--retry-failed`` commits again. A retried bundle writes under a new attempt and commits only if no
    earlier attempt did."""

    def __init__(self, dataset: str, config: BuildConfig, numerics: dict | None, retried: dict[int, Unit]):
        self.dataset, self.config, self.numerics = dataset, config, numerics
        self.retried = retried  # the units --retry-failed commits again, which carry their committed version

    def process(self, element: tuple[int, Iterable[tuple[tuple[int, int], SourceOutcome]]]) -> Iterator[UnitDone]:
        index, members = element
        outcomes = [outcome for _, outcome in sorted(members, key=lambda pair: pair[0])]
        sources = tuple(outcome.source.whole for outcome in outcomes if outcome.source.completes)
        unit = self.retried.get(index) or Unit(index, sources, unit_digest(
            ((source.source_id, source.attempt) for source in sources), self.config.fingerprint()))
        commit = write_unit(Storage(self.dataset), unit, outcomes, self.config.shards, self.config.fingerprint(),
                            self.numerics)
        yield UnitDone.of(unit, outcomes, commit)
