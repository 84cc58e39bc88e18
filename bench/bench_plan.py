"""What the driver holds and does around many sources, measured in one run.

Makes ``--sources`` tiny inputs (100,000 by default; no video is read: a trivial stage gives each
source one small sample), cuts them into units of ``--unit-sources``, and commits every unit the
way a worker does (:func:`pseudo3d.pipelines.shard_writer.write_unit`) into a local directory.
Then it measures, in this process as a driver would run them:

* **plan**: cutting the listed inputs into units (:func:`pseudo3d.pipelines.plan.plan_units`);
* **resume**: planning a resume with the same inputs once every unit is committed
  (:func:`pseudo3d.pipelines.output_dir.plan_build`: one listing of ``_commits/``, one marker read);
* **card**: writing ``dataset.json`` from every marker (what every build ends with; the index
  tables are the units' own Parquet parts, written by their workers);
* **compact**: ``pseudo3d compact`` (:func:`pseudo3d.pipelines.compact.compact_dataset`) merging
  every unit's parts, then the card and the resume again on the compacted dataset, and the seconds
  pyarrow takes to read ``manifest/`` whole before and after (``pq.read_table`` of the folder, as a
  user's reader would).

For each: seconds, and the peak of Python's allocations during it (``tracemalloc``), per source.
Arrow's buffers are not counted: the listed inputs themselves (a
:class:`~pseudo3d.pipelines.sources.SourceList`, made before the measurements) are measured with
the process's resident memory by ``bench/bench_inputs.py``.
Workers' bytes never pass through this process: the units are committed by ``write_unit`` here
only to make the dataset.

    python bench/bench_plan.py [--sources 100000] [--unit-sources 100]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Callable

import pyarrow.parquet as pq

from pseudo3d.config import BuildConfig
from pseudo3d.pipelines.compact import compact_dataset
from pseudo3d.pipelines.dataset_files import write_dataset_files
from pseudo3d.pipelines.output_dir import plan_build
from pseudo3d.pipelines.plan import plan_units
from pseudo3d.pipelines.shard_writer import write_unit
from pseudo3d.pipelines.sources import SourceList
from pseudo3d.schemas.records import EncodedSample, Source, SourceOutcome
from pseudo3d.storage import Storage


def sources(n: int) -> SourceList:
    """``n`` sources as a build lists them (a :class:`SourceList`)."""
    return SourceList.of(Source(uri=f"/corpus/speaker{index // 100:05d}/{index:07d}.mp4",
                                identity=f"speaker{index // 100:05d}/{index:07d}.mp4",
                                source_id=f"s{index:07d}-0000000000000000") for index in range(n))


def trivial(source: Source) -> SourceOutcome:
    """The trivial stage: one sample of a few hundred bytes."""
    key = f"{source.source_id}_000"
    sample = EncodedSample(key, {"meta.json": b'{"fps": 25.0}', "x.npy": bytes(256)},
                           {"key": key, "source_id": source.source_id, "source": source.reference, "n_frames": 25,
                            "duration_s": 1.0, "fps": 25.0, "clip_index": 0})
    return SourceOutcome(source, "ok", samples=[sample])


def measured(call: Callable[[], object]) -> tuple[object, float, float]:
    """(result, seconds, peak MB of Python allocations during the call)."""
    tracemalloc.start()
    start = time.perf_counter()
    result = call()
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1] / 1e6
    tracemalloc.stop()
    return result, seconds, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, default=100_000)
    parser.add_argument("--unit-sources", type=int, default=100)
    args = parser.parse_args()
    config = BuildConfig().with_overrides(shards={"max_sources": args.unit_sources})
    inputs = sources(args.sources)
    units, plan_s, plan_mb = measured(lambda: plan_units(inputs, args.unit_sources, config.fingerprint()))
    with tempfile.TemporaryDirectory() as folder:
        storage = Storage(Path(folder) / "ds")
        start = time.perf_counter()
        for unit in units:  # type: ignore[attr-defined]
            write_unit(storage, unit, [trivial(source) for source in unit.sources], config.shards,
                       config.fingerprint())
        commit_s = time.perf_counter() - start
        plan, resume_s, resume_mb = measured(lambda: plan_build(storage, inputs, config))
        assert not plan.units  # type: ignore[attr-defined]
        card, files_s, files_mb = measured(lambda: write_dataset_files(storage, config))
        manifest = Path(folder) / "ds" / "manifest"
        _, read_before_s, _ = measured(lambda: pq.read_table(manifest))
        report, compact_s, compact_mb = measured(lambda: compact_dataset(storage))
        _, read_after_s, _ = measured(lambda: pq.read_table(manifest))
        _, card_after_s, card_after_mb = measured(lambda: write_dataset_files(storage, config))
        _, resume_after_s, resume_after_mb = measured(lambda: plan_build(storage, inputs, config))
    n_units = len(units)  # type: ignore[arg-type]
    print(f"{args.sources} sources in {n_units} units of {args.unit_sources}; committing them took {commit_s:.1f} s")
    print(f"{'':18}{'seconds':>9}{'peak MB':>9}{'kB/source':>11}{'ms/1000 units':>15}")
    for name, seconds, peak in (("plan", plan_s, plan_mb), ("resume", resume_s, resume_mb),
                                ("card", files_s, files_mb), ("compact", compact_s, compact_mb),
                                ("card, compacted", card_after_s, card_after_mb),
                                ("resume, compacted", resume_after_s, resume_after_mb)):
        print(f"{name:18}{seconds:9.2f}{peak:9.1f}{peak * 1e3 / args.sources:11.2f}"
              f"{seconds * 1e3 * 1000 / n_units:15.0f}")
    parts = ", ".join(f"{table} {report.parts_before[table]} -> {report.parts_after[table]}"  # type: ignore[attr-defined]
                      for table in report.parts_before)  # type: ignore[attr-defined]
    print(f"compact: parts {parts}; pq.read_table of manifest/ {read_before_s:.2f} s before, {read_after_s:.2f} s "
          f"after ({read_before_s / read_after_s:.0f}x)")
    print(f"the card counts {card['counts']['inputs']} inputs and {card['counts']['clips']} clips")  # type: ignore[index]


if __name__ == "__main__":
    main()
