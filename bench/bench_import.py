"""Import time of what every process pays before it works, measured in fresh interpreters.

Prints the median wall time (seconds) over ``--runs`` fresh ``python -c`` processes of:

  * ``python``: an interpreter that imports nothing (the floor);
  * ``config``: ``import pseudo3d.config`` (the CLI, every runner's driver, every worker);
  * ``worker stages``: ``import pseudo3d.pipelines.runners.local`` plus the stage chain's
    modules (what a spawned build worker imports before it loads its models);

and each above the floor. Compare two checkouts by running it with each on ``PYTHONPATH``.

    python bench/bench_import.py [--runs 7]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

STATEMENTS = {
    "python": "pass",
    "config": "import pseudo3d.config",
    "worker stages": "import pseudo3d.pipelines.runners.local, pseudo3d.pipelines.process",
}


def wall_time(statement: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", statement], check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    wall_time(STATEMENTS["worker stages"])  # warm the file cache
    medians = {name: statistics.median(wall_time(statement) for _ in range(args.runs))
               for name, statement in STATEMENTS.items()}
    floor = medians["python"]
    for name, seconds in medians.items():
        print(f"{name:14s} " + json.dumps({"median_s": round(seconds, 3), "above_python_s": round(seconds - floor, 3)}))


if __name__ == "__main__":
    main()
