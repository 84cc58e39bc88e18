"""The Ray and Beam runners against the local runner on the same corpus, measured in one run.

For each runner asked for, prints the wall time of its build beside a local build with the same
number of workers, their ratio, and the per-video overhead: (runner build − local build) / videos,
where a build's time runs from opening the dataset to its last shard. For Ray that excludes its
start-up (starting the private cluster), printed apart; Beam's time covers its whole run. Ray is a private single-node Ray on 127.0.0.1; Beam is the
DirectRunner (``--beam-option KEY=VALUE`` picks another). On a GPU machine, ``--backend deca`` with
``--flame-model`` and ``--deca-checkpoint`` reports the split pipelines.

    python bench/bench_runners.py [--runner ray beam] [--videos 6] [--seconds 6] [--workers 2] [--corpus DIR]
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
from pseudo3d.pipelines.sources import resolve_sources


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runner", nargs="+", choices=["ray", "beam"], default=["ray", "beam"])
    parser.add_argument("--beam-option", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--videos", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--corpus", type=Path, help="use this corpus instead of synthesising one")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    figures: dict[str, object] = {}
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
        figures.update(videos=len(sources), frames=local.frames, workers=args.workers, local_s=round(local_s, 2))
        for runner in args.runner:
            build = _runner(runner, args.beam_option)
            start = time.perf_counter()
            remote = build(sources, scratch / runner, config, workers=args.workers, progress=False, qa_report=False)
            total_s = time.perf_counter() - start
            same = all((scratch / "local" / p.relative_to(scratch / runner)).read_bytes() == p.read_bytes()
                       for p in sorted((scratch / runner / "shards").iterdir()))
            figures.update({f"{runner}_s": round(total_s, 2), f"{runner}_over_local": round(total_s / local_s, 2)})
            if runner == "ray":  # Beam's build time already covers its whole run
                figures.update({
                    "ray_startup_s": round(total_s - remote.seconds - (local_s - local.seconds), 2),
                    "ray_build_over_local_build": round(remote.seconds / local.seconds, 2),
                })
            figures.update({
                f"{runner}_per_video_overhead_s": round((remote.seconds - local.seconds) / len(sources), 3),
                f"{runner}_identical_shards": same,
            })
    for name, value in figures.items():
        print(f"{name:32s} {value}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


def _runner(name: str, beam_options: list[str]):
    if name == "ray":
        import ray

        from pseudo3d.pipelines.runners.ray import build_ray

        def build(*args, **kwargs):
            report = build_ray(*args, **kwargs)
            assert not ray.is_initialized()
            return report

        return build
    from pseudo3d.pipelines.runners.beam import build_beam

    return lambda *args, **kwargs: build_beam(*args, options=beam_options, **kwargs)


if __name__ == "__main__":
    main()
