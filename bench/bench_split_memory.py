"""Peak memory of the Ray runner's split layout against the size of its units, measured in one run.

In the split layout (a GPU backend on GPUs) CPU actors track and send their tracked sources,
crops included, to the reconstruction actors a group of at least ``reconstruct.batch_size`` frames
at a time. This builds the same synthetic corpus (``--videos`` talking heads of ``--seconds``) with
``--backend deca`` (synthetic weights; on a GPU when there is one), on a private Ray of two CPUs
with one CPU actor and one reconstruction actor, once per ``--unit-sources`` value (units of that
many sources), each build in a process of its own. A thread samples the resident set size of every
Ray process every 0.2 s; the script prints each actor's peak per build. Peaks that stay flat as
units grow mean that memory follows the group, not the unit. QA's reprojection limit is lifted
(random weights project far off), so every clip is encoded and written.

    python bench/bench_split_memory.py [--unit-sources 1 8] [--videos 8] [--seconds 8] [--batch-size 32] [--fps 25]
"""

from __future__ import annotations

import argparse
import collections
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

BUILD = """
import json, sys
import ray
from pseudo3d.config import BuildConfig
from pseudo3d.pipelines.runners.ray import build_ray
from pseudo3d.pipelines.sources import resolve_sources

corpus, out, overrides = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
report = build_ray(resolve_sources([corpus]), out, BuildConfig().with_overrides(**overrides), address="auto",
                   workers=1, gpu_actors=1, split=True, progress=False, qa_report=False)
print(json.dumps({"clips": report.clips, "frames": report.frames}))
"""


def ray_rss_peaks(stop: threading.Event, peaks: dict[str, int]) -> None:
    """Peak VmRSS (kB) per Ray process title (``ray::...``) until ``stop`` is set."""
    while not stop.is_set():
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                title = (proc / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
                if title.startswith("ray::") and ("UnitActor" in title or "ReconstructActor" in title):
                    rss = next(int(line.split()[1]) for line in (proc / "status").read_text().splitlines()
                               if line.startswith("VmRSS"))
                    name = "reconstruction actor" if "ReconstructActor" in title else "CPU actor"
                    peaks[name] = max(peaks[name], rss)
            except (OSError, StopIteration, ValueError):
                continue
        time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--unit-sources", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--videos", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--batch-size", type=int, default=32, help="reconstruct.batch_size: the group's least frames")
    parser.add_argument("--fps", type=float, default=25.0, help="decode.fps (fewer frames: a shorter run)")
    args = parser.parse_args()

    from pseudo3d.logs import native_stderr_silenced
    from pseudo3d.synth.corpus import make_corpus
    from pseudo3d.testing.deca_assets import write_synthetic_deca_checkpoint
    from pseudo3d.testing.flame_assets import write_synthetic_flame_model, write_synthetic_mediapipe_embedding

    with tempfile.TemporaryDirectory(prefix="pseudo3d-bench-") as scratch:
        scratch = Path(scratch)
        with native_stderr_silenced():
            make_corpus(scratch / "corpus", n_videos=args.videos, seconds=args.seconds, seed=0)
        reconstruct = {
            "flame_model": str(write_synthetic_flame_model(scratch / "generic_model.pkl")),
            "landmark_embedding": str(write_synthetic_mediapipe_embedding(scratch / "mediapipe_landmark_embedding.npz")),
            "deca_checkpoint": str(write_synthetic_deca_checkpoint(scratch / "deca_model.tar")),
            "batch_size": args.batch_size,
        }
        print(f"{args.videos} videos of {args.seconds:g} s at {args.fps:g} fps, deca, reconstruct.batch_size "
              f"{args.batch_size}; peak RSS in MB")
        print(f"{'unit sources':>12} {'CPU actor':>10} {'reconstruction actor':>21} {'clips':>6} {'frames':>7} {'seconds':>8}")
        for unit_sources in args.unit_sources:
            overrides = {"backend": "deca", "reconstruct": reconstruct, "decode": {"fps": args.fps},
                         "shards": {"max_sources": unit_sources}, "qa": {"max_reprojection_error_px": 1e9}}
            peaks: dict[str, int] = collections.defaultdict(int)
            stop = threading.Event()
            sampler = threading.Thread(target=ray_rss_peaks, args=(stop, peaks), daemon=True)
            sampler.start()
            start = time.perf_counter()
            result = subprocess.run([sys.executable, "-c", BUILD, str(scratch / "corpus"),
                                     str(scratch / f"units-of-{unit_sources}"), json.dumps(overrides)],
                                    capture_output=True, text=True, check=True)
            seconds = time.perf_counter() - start
            stop.set()
            sampler.join()
            counts = json.loads(result.stdout.strip().splitlines()[-1])
            print(f"{unit_sources:>12} {peaks['CPU actor'] / 1024:>10.0f} {peaks['reconstruction actor'] / 1024:>21.0f} "
                  f"{counts['clips']:>6} {counts['frames']:>7} {seconds:>8.1f}", flush=True)


if __name__ == "__main__":
    main()
