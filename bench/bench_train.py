"""Pretraining throughput: training windows per second for a few hundred steps, on the device at hand.

Builds (or takes) a synthetic pseudo3d dataset, then times ``pseudo3d.training.runs.pretrain``
steps after a warm-up, from the run's own metrics (``seconds`` per logged step). On CUDA the loop
runs bf16 autocast; on CPU float32.

    python bench/bench_train.py [--dataset DIR] [--steps 200] [--batch-size 16] [--device auto]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from pseudo3d.config import BuildConfig
from pseudo3d.logs import native_stderr_silenced
from pseudo3d.pipelines.runners.local import build_local
from pseudo3d.pipelines.sources import resolve_sources
from pseudo3d.synth.corpus import make_corpus
from pseudo3d.training.config import TrainConfig
from pseudo3d.training.loop import resolve_device
from pseudo3d.training.runs import pretrain


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, help="a pseudo3d dataset (default: build a synthetic one)")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20, help="steps left out of the timing")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--num-workers", type=int, default=2)
    parser.add_argument("--model", default="hierarchical", choices=["hierarchical", "convrnn"])
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="pseudo3d-bench-") as scratch:
        scratch = Path(scratch)
        dataset = args.dataset
        if dataset is None:
            with native_stderr_silenced():
                make_corpus(scratch / "corpus", n_videos=4, seconds=8.0, seed=0)
            dataset = scratch / "dataset"
            build_local(resolve_sources([str(scratch / "corpus")]), dataset, BuildConfig(), progress=False,
                        qa_report=False)
        config = TrainConfig(steps=args.steps, batch_size=args.batch_size, num_workers=args.num_workers,
                             log_every=args.warmup, device=args.device, checkpoint_every=args.steps)
        job = pretrain([str(dataset)], scratch / "run", config, model_kind=args.model, progress=False)
    marks = [(entry["step"], entry["seconds"]) for entry in job.history if "seconds" in entry]
    (first_step, first_time), (last_step, last_time) = marks[0], marks[-1]
    rate = (last_step - first_step) * args.batch_size / (last_time - first_time)
    print(json.dumps({"device": str(resolve_device(args.device)), "model": args.model, "batch_size": args.batch_size,
                      "timed_steps": last_step - first_step, "windows_per_second": round(rate, 1),
                      "window_s": config.window_s}, indent=2))


if __name__ == "__main__":
    main()
