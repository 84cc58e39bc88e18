"""What listing and planning many inputs cost the driver, measured in one run.

Writes a list file of ``--sources`` rows (``path,speaker,lang``; ``s3://`` URLs by default, as a
VoxCeleb2-sized corpus on object storage would be listed, or local paths with ``--local``), then,
in a fresh Python process each (so one step's memory does not hide another's):

* **list**: :func:`pseudo3d.pipelines.sources.resolve_sources` of the list file;
* **plan**: the same, then the units of a first build into an empty dataset
  (:func:`pseudo3d.pipelines.output_dir.plan_build`), then every planned source made once, as
  the local runner hands them to its workers.

For each: seconds, the peak resident memory of the process above what it held after its imports
(``ru_maxrss``), and what it still holds once the step is done (resident memory after a garbage
collection and Arrow's release of unused memory: what a driver keeps for the rest of a build), in
MB and bytes per source.

    python bench/bench_inputs.py [--sources 1000000] [--unit-sources 100] [--local]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

STEP = r"""
import gc, json, resource, sys, time
import pyarrow as pa
from pseudo3d.config import BuildConfig
from pseudo3d.pipelines.output_dir import plan_build
from pseudo3d.pipelines.sources import resolve_sources
from pseudo3d.storage import Storage

def resident():
    with open("/proc/self/status") as status:
        return int(status.read().split("VmRSS:")[1].split()[0])

listing, dataset, step, unit_sources = sys.argv[1:5]
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
base = resident()
start = time.perf_counter()
sources = resolve_sources([listing])
if step == "plan":
    config = BuildConfig().with_overrides(shards={"max_sources": int(unit_sources)})
    plan = plan_build(Storage(dataset), sources, config)
    made = sum(1 for unit in plan.units for source in unit.sources)
    assert made == len(sources), (made, len(sources))
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
gc.collect()
pa.default_memory_pool().release_unused()
print(json.dumps({"sources": len(sources), "seconds": seconds, "mb": (peak - before) / 1024,
                  "held": (resident() - base) / 1024}))
"""


def write_list(path: Path, n: int, local: bool) -> None:
    with path.open("w") as handle:
        handle.write("path,speaker,lang\n")
        for index in range(n):
            speaker, clip = divmod(index, 100)
            where = f"/corpus/dev/mp4/id{speaker:05d}" if local else f"s3://vox/dev/mp4/id{speaker:05d}"
            handle.write(f"{where}/clip{clip:03d}/00001.mp4,id{speaker:05d},en\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, default=1_000_000)
    parser.add_argument("--unit-sources", type=int, default=100)
    parser.add_argument("--local", action="store_true", help="local paths (each one stat'ed) instead of s3:// URLs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        listing = Path(folder) / "list.csv"
        write_list(listing, args.sources, args.local)
        print(f"{args.sources:,} inputs in one list file ({listing.stat().st_size / 1e6:.0f} MB), "
              f"units of {args.unit_sources}")
        for step in ("list", "plan"):
            out = subprocess.run([sys.executable, "-c", STEP, str(listing), str(Path(folder) / "ds"), step,
                                  str(args.unit_sources)], check=True, capture_output=True, text=True).stdout
            result = json.loads(out.strip().splitlines()[-1])
            print(f"{step:5s} {result['seconds']:7.2f} s   peak +{result['mb']:5.0f} MB "
                  f"({result['mb'] * 1e6 / result['sources']:.0f} bytes a source), held after it +{result['held']:5.0f} MB "
                  f"({result['held'] * 1e6 / result['sources']:.0f} bytes a source)")


if __name__ == "__main__":
    main()
