"""Local build throughput, measured in one run on the same files.

Prints frames per second (output-grid frames, 25 fps by default) of:
  * decode alone (probe + PyAV decode onto the output grid, RGB conversion), one process;
  * tracking alone (MediaPipe Face Mesh + detector on pre-decoded frames), one process, with the
    default track.max_faces and with max_faces=1 (the cost of choosing the largest face);
  * the whole local build with 1 worker and with N workers (all cores by default);
and the ratios: build efficiency = build(1 worker) / the serial decode+track rate, and the
speedup of N workers over one. Build times include worker start-up (spawning, model loading).

    python bench/bench_build.py [--videos 6] [--seconds 8] [--workers N] [--corpus DIR]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from pseudo3d.config import BuildConfig
from pseudo3d.logs import native_stderr_silenced
from pseudo3d.pipelines.decode import FrameDecoder
from pseudo3d.pipelines.face_tracker import FaceTracker
from pseudo3d.pipelines.probe import Prober
from pseudo3d.pipelines.runners.local import build_local, default_workers
from pseudo3d.pipelines.sources import resolve_sources
from pseudo3d.schemas.records import Source


def usable_sources(corpus: Path, config: BuildConfig) -> list[tuple[Source, object]]:
    """Sources that probe fine (decode and tracking are measured on real videos only)."""
    prober = Prober(config.decode)
    usable = []
    for source in resolve_sources([str(corpus)]):
        try:
            usable.append((source, prober(source)))
        except Exception:  # noqa: BLE001 - bad inputs are skipped for the per-stage figures
            continue
    return usable


def decode_rate(sources, config: BuildConfig) -> tuple[float, int]:
    start, frames = time.perf_counter(), 0
    for source, probe in sources:
        frames += sum(1 for _ in FrameDecoder(source, probe, config.decode))
    return frames / (time.perf_counter() - start), frames


def tracking_rate(sources, config: BuildConfig) -> tuple[float, int]:
    with native_stderr_silenced():
        tracker = FaceTracker(config.track)
        total_time, frames = 0.0, 0
        for source, probe in sources:
            images = [frame.image for frame in FrameDecoder(source, probe, config.decode)]
            tracker.reset()
            start = time.perf_counter()
            for image in images:
                tracker(image)
            total_time += time.perf_counter() - start
            frames += len(images)
        tracker.close()
    return frames / total_time, frames


def build_rate(corpus: Path, out: Path, config: BuildConfig, workers: int) -> tuple[float, int]:
    report = build_local(resolve_sources([str(corpus)]), out, config, workers=workers, overwrite=True,
                         progress=False)
    return report.frames / report.seconds, report.frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--workers", type=int, default=0, help="workers for the parallel build (default: all cores)")
    parser.add_argument("--corpus", type=Path, help="use this corpus instead of synthesising one")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    config = BuildConfig()
    workers = args.workers or default_workers()
    with tempfile.TemporaryDirectory(prefix="pseudo3d-bench-") as scratch:
        scratch = Path(scratch)
        corpus = args.corpus
        if corpus is None:
            from pseudo3d.synth.corpus import make_corpus

            corpus = scratch / "corpus"
            with native_stderr_silenced():
                make_corpus(corpus, n_videos=args.videos, seconds=args.seconds, seed=0, bad_inputs=True)
        sources = usable_sources(corpus, config)
        decode_fps, decoded = decode_rate(sources, config)
        track_fps, tracked = tracking_rate(sources, config)
        single_fps, _ = tracking_rate(sources, config.with_overrides(track={"max_faces": 1}))
        serial_fps = 1.0 / (1.0 / decode_fps + 1.0 / track_fps)
        one_fps, built = build_rate(corpus, scratch / "one", config, workers=1)
        many_fps, _ = build_rate(corpus, scratch / "many", config, workers=workers)

    figures = {
        "frames": built,
        "decode_fps": decode_fps,
        "track_fps": track_fps,
        "track_fps_max_faces_1": single_fps,
        "serial_decode_plus_track_fps": serial_fps,
        "build_fps_1_worker": one_fps,
        f"build_fps_{workers}_workers": many_fps,
        "build_efficiency_1_worker": one_fps / serial_fps,
        "speedup": many_fps / one_fps,
        "workers": workers,
    }
    print(f"corpus: {corpus} ({len(sources)} decodable videos, {built} output frames at {config.decode.fps:g} fps)")
    print(f"  decode alone                 {decode_fps:8.1f} frames/s  (1 process)")
    print(f"  tracking alone               {track_fps:8.1f} frames/s  (1 process, track.max_faces={config.track.max_faces})")
    print(f"  tracking, one face at a time {single_fps:8.1f} frames/s  (track.max_faces=1: {single_fps / track_fps:.2f}x)")
    print(f"  decode + track, serial bound {serial_fps:8.1f} frames/s")
    print(f"  build, 1 worker              {one_fps:8.1f} frames/s  efficiency {one_fps / serial_fps:.2f} of the bound")
    print(f"  build, {workers} workers            {many_fps:8.1f} frames/s  speedup {many_fps / one_fps:.2f}x over 1 worker")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
