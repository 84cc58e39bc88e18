"""Training-loader throughput against a plain tar read of the same shards, in one run.

Prints windows per second of:
  * ``ShardWindows`` through a ``torch.utils.data.DataLoader`` with N workers (2 by default):
    decoding FLAC and the target arrays, cutting windows, shuffling, collating batches;
  * a plain read of every member's bytes with ``tarfile`` in N processes (shards split between
    them), counted as the same number of windows;
and the ratio loader / tar read. Both are measured on warm files (a first pass fills the page
cache) over several passes; the loader keeps its workers between passes
(``persistent_workers``), and its first pass (worker start-up) is reported apart. A small
dataset is listed ``--repeat`` times as sources (and read as many times by the tar pass), so an
epoch is long enough that per-epoch set-up does not dominate.

    python bench/bench_loader.py [DATASET] [--workers 2] [--window-s 2.0] [--batch-size 16]
                                 [--passes 3] [--repeat 10]

Without DATASET a synthetic corpus is generated and built (4 videos × 6 s, one clip per shard).
"""

from __future__ import annotations

import argparse
import multiprocessing
import tarfile
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from pseudo3d.training.data import (ShardWindows, TargetSpec, collate_windows, first_sample, resolve_shards,
                                    worker_init_fn)


def build_dataset(folder: Path, videos: int, seconds: float) -> Path:
    from pseudo3d.config import BuildConfig
    from pseudo3d.logs import native_stderr_silenced
    from pseudo3d.pipelines.runners.local import build_local
    from pseudo3d.pipelines.sources import resolve_sources
    from pseudo3d.synth.corpus import make_corpus

    with native_stderr_silenced():
        make_corpus(folder / "corpus", n_videos=videos, seconds=seconds, seed=0)
    config = BuildConfig().with_overrides(shards={"max_samples": 1})
    build_local(resolve_sources([str(folder / "corpus")]), folder / "dataset", config, workers=2, progress=False)
    return folder / "dataset"


def _read_all_bytes(shards: list[str]) -> int:
    total = 0
    for shard in shards:
        with tarfile.open(shard, "r:") as tar:
            for info in tar:
                handle = tar.extractfile(info)
                if handle is not None:
                    total += len(handle.read())
    return total


def tar_read_seconds(shards: tuple[str, ...], processes: int, passes: int) -> tuple[float, int]:
    parts = [list(shards[i::processes]) for i in range(processes)]
    with multiprocessing.get_context("fork").Pool(processes) as pool:
        n_bytes = sum(pool.map(_read_all_bytes, parts))  # warm-up: page cache, pool start
        start = time.perf_counter()
        for _ in range(passes):
            pool.map(_read_all_bytes, parts)
        return (time.perf_counter() - start) / passes, n_bytes


def loader_seconds(dataset: ShardWindows, workers: int, batch_size: int, passes: int) -> tuple[float, float, int]:
    """(seconds of the first pass, mean seconds of the next ``passes``, windows per pass)."""
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=collate_windows, num_workers=workers,
                        worker_init_fn=worker_init_fn, persistent_workers=workers > 0)
    start = time.perf_counter()
    windows = sum(batch["audio"].shape[0] for batch in loader)
    first = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(passes):
        for _batch in loader:
            pass
    return first, (time.perf_counter() - start) / passes, windows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", nargs="?", help="a pseudo3d dataset directory (built when omitted)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--window-s", type=float, default=2.0)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=10, help="list the dataset this many times as sources")
    parser.add_argument("--videos", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=6.0)
    args = parser.parse_args()
    torch.set_num_threads(1)

    with tempfile.TemporaryDirectory() as folder:
        root = Path(args.dataset) if args.dataset else build_dataset(Path(folder), args.videos, args.seconds)
        shards = resolve_shards(str(root)) * args.repeat
        sample = first_sample(str(root))
        target = TargetSpec.for_shards(sample)
        fps = float(sample["meta.json"]["fps"])
        window_frames = max(2, round(args.window_s * fps))
        dataset = ShardWindows([(str(root), 1.0)] * args.repeat, target, window_frames, fps=fps, shuffle_buffer=64)
        counts = dataset.count()
        first, loader_s, windows = loader_seconds(dataset, args.workers, args.batch_size, args.passes)
        tar_s, n_bytes = tar_read_seconds(shards, args.workers, args.passes)

    loader_rate, tar_rate = windows / loader_s, counts.windows / tar_s
    print(f"data ({args.repeat}x {root if args.dataset else 'a fresh synthetic build'}): "
          f"{len(shards)} shards, {counts.clips} clips ({counts.short_clips} shorter than a window), "
          f"{n_bytes / 1e6:.1f} MB; {counts.windows} windows of {window_frames} frames at {fps:g} fps "
          f"(stride {dataset.stride_frames}), target {target.kind} D={target.dim}")
    print(f"ShardWindows + DataLoader, {args.workers} workers: {loader_rate:8.1f} windows/s "
          f"(first pass incl. worker start-up: {windows / first:.1f} windows/s)")
    print(f"plain tar read, {args.workers} processes:        {tar_rate:8.1f} windows/s "
          f"({n_bytes / 1e6 / tar_s:.0f} MB/s)")
    print(f"ratio loader / tar read: {loader_rate / tar_rate:.2f}")


if __name__ == "__main__":
    main()
