"""The QA report and summary of a large dataset: seconds and peak memory of ``pseudo3d qa``.

Builds a small synthetic dataset (or takes ``--dataset``), then copies it with its index
tables tiled ``--copies`` times: every manifest, source and failure row repeated with the copy's
number appended to its key and source id, written as parts of about ``--unit-sources`` sources'
rows each as a build's units write them, so the report sees ``copies`` times the clips, sources
and failure rows in as many parts as a real dataset of that size (the gallery's few clips are not
found in the shards, which the report says per clip). Then it runs ``pseudo3d qa`` on the copy in a child process
and reports its wall time and peak RSS.

    python bench/bench_qa.py [--copies 10000] [--unit-sources 100] [--dataset DIR]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pseudo3d.config import BuildConfig
from pseudo3d.logs import native_stderr_silenced
from pseudo3d.pipelines.runners.local import build_local
from pseudo3d.pipelines.sources import resolve_sources
from pseudo3d.schemas.index import read_table
from pseudo3d.storage import Storage
from pseudo3d.synth.corpus import make_corpus

TILED = {"manifest": ("key", "source_id"), "sources": ("source_id",), "failures": ("source_id",)}
"""Index table → the columns that get the copy's number, so ids stay distinct."""


def tile(dataset: Path, out: Path, copies: int, unit_sources: int) -> dict[str, int]:
    """Copy ``dataset`` to ``out`` with its index tables tiled ``copies`` times, in parts of the
    copies of about ``unit_sources`` sources each; rows per table."""
    shutil.copytree(dataset, out, ignore=shutil.ignore_patterns(*TILED))
    card = json.loads((dataset / "dataset.json").read_text())
    tables = {name: read_table(Storage(dataset), card, name) for name in TILED}
    per_part = max(1, unit_sources // max(1, tables["sources"].num_rows))
    rows = {}
    for name, renamed in TILED.items():
        table = tables[name]
        (out / name).mkdir()
        card["files"][name] = []
        for first in range(0, copies, per_part):
            part = f"{name}/part-{first // per_part:06d}-00000000.parquet"
            pq.write_table(pa.concat_tables(
                pa.table([pc.binary_join_element_wise(table[column], pa.scalar(f"-{copy:07d}"), "")
                          if column in renamed else table[column] for column in table.column_names], schema=table.schema)
                for copy in range(first, min(first + per_part, copies))), out / part)
            card["files"][name].append(part)
        rows[name] = table.num_rows * copies
    (out / "dataset.json").write_text(json.dumps(card))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--copies", type=int, default=10000)
    parser.add_argument("--unit-sources", type=int, default=100, help="sources per part (a build's shards.max_sources)")
    parser.add_argument("--dataset", type=Path, help="a pseudo3d dataset (default: build a synthetic one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_qa_") as scratch:
        root = Path(scratch)
        dataset = args.dataset
        if dataset is None:
            with native_stderr_silenced():
                make_corpus(root / "corpus", n_videos=4, seconds=4.0, seed=5, bad_inputs=True, workers=0)
            dataset = root / "ds"
            build_local(resolve_sources([str(root / "corpus")]), dataset, BuildConfig(), progress=False,
                        qa_report=False)
        rows = tile(dataset, root / "tiled", args.copies, args.unit_sources)
        start = time.perf_counter()
        result = subprocess.run([sys.executable, "-m", "pseudo3d", "qa", str(root / "tiled")],
                                capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if result.returncode != 0:
            sys.exit(f"pseudo3d qa failed:\n{result.stderr[-3000:]}")
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # the largest child: pseudo3d qa
        parts = len(list((root / "tiled" / "sources").iterdir()))
        print(f"rows: {rows['manifest']:,} clips, {rows['sources']:,} sources, {rows['failures']:,} failure rows, "
              f"{parts:,} parts of each table")
        print(f"pseudo3d qa: {seconds:.1f} s, peak RSS {peak_mb:,.0f} MB")


if __name__ == "__main__":
    main()
