"""Ray runner against the local runner on the same corpus, measured in one run.

Prints wall times of a local build and of a Ray build (a private single-node Ray on 127.0.0.1,
started and stopped by pseudo3d) with the same number of workers, their ratio, Ray's start-up, and
the per-video overhead of going through Ray Data: (Ray build − local build) / videos, start-up
excluded. On a GPU machine, ``--backend deca`` with ``--flame-model`` and ``--deca-checkpoint``
reports the split pipeline (CPU actors track, GPU actors reconstruct).

    python bench/bench_ray.py [--videos 6] [--seconds 6] [--workers 2] [--corpus DIR]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from pseudo3d.config import BuildConfig
from pseudo3d.logs import native_stderr_silenced
from pseudo3d.pipelines.runners.local import build_local
from pseudo3d.pipelines.runners.ray import build_ray
from pseudo3d.pipelines.sources import resolve_sources


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--corpus", type=Path, help="use this corpus instead of synthesising one")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    import ray

    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        corpus = args.corpus
        if corpus is None:
            from pseudo3d.synth.corpus import make_corpus

            corpus = scratch / "corpus"
            with native_stderr_silenced():
                make_corpus(corpus, n_videos=args.videos, seconds=args.seconds, seed=0)
        sources = resolve_sources([str(corpus)])
        config = BuildConfig()
        start = time.perf_counter()
        local = build_local(sources, scratch / "local", config, workers=args.workers, progress=False, qa_report=False)
        local_s = time.perf_counter() - start
        start = time.perf_counter()
        remote = build_ray(sources, scratch / "ray", config, workers=args.workers, progress=False, qa_report=False)
        ray_total_s = time.perf_counter() - start
        assert not ray.is_initialized()
        startup_s = ray_total_s - remote.seconds - (local_s - local.seconds)
        same = all((scratch / "local" / p.relative_to(scratch / "ray")).read_bytes() == p.read_bytes()
                   for p in sorted((scratch / "ray" / "shards").iterdir()))
    figures = {
        "videos": len(sources), "frames": local.frames, "workers": args.workers,
        "local_s": round(local_s, 2), "ray_s": round(ray_total_s, 2),
        "ray_over_local": round(ray_total_s / local_s, 2),
        "ray_startup_s": round(startup_s, 2),
        "ray_build_over_local_build": round(remote.seconds / local.seconds, 2),
        "per_video_overhead_s": round((remote.seconds - local.seconds) / len(sources), 3),
        "identical_shards": same,
    }
    for name, value in figures.items():
        print(f"{name:28s} {value}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
