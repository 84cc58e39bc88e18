"""Peak memory of a build worker on one long video, measured in one run.

Renders (once, then reuses) a synthetic talking-head video of ``--seconds`` (30 minutes by
default, 320×240 at 25 fps: the cost under test is per output frame, not per pixel) and prints
the peak resident set size (``ru_maxrss``) of:

  * ``worker``: the worker process of a one-worker local build with the default config (probe,
    decode+track, reconstruct with the MediaPipe backend, smooth, QA, encode);
  * ``track+crops``: a process that runs only the decode+track stage with 224×224 face crops
    cut (what the DECA backend and ``shards.write_crops`` ask for) and drops each clip as it
    gets it;
  * ``idle``: the same process importing the stages and loading the tracker, decoding nothing
    (the floor under both figures).

and, for each, the peak per minute of video above the floor. Each figure comes from a fresh
process spawned by this small one, so the peaks do not mix.

    python bench/bench_memory.py [--seconds 1800] [--video-dir DIR] [--only worker,track+crops,idle]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import queue as queues
import resource
import tempfile
import time
from fractions import Fraction
from pathlib import Path

from pseudo3d.config import BuildConfig
from pseudo3d.logs import native_stderr_silenced


def render(seconds: float, out_dir: Path) -> Path:
    """The bench video, rendered once per length into ``out_dir``."""
    from pseudo3d.synth.talking import VideoSpec, render_talking_video

    path = out_dir / f"long_{round(seconds)}s.mp4"
    if not path.exists():
        spec = VideoSpec(name=path.stem, scenario="talk", seed=0, index=0, fps=Fraction(25), width=320, height=240,
                         duration_s=seconds)
        render_talking_video(spec, out_dir)
    return path


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _children_peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def _worker(video: str, queue) -> None:
    """A one-worker local build; reports the peak of its worker process (a child of this one)."""
    from pseudo3d.pipelines.runners.local import build_local
    from pseudo3d.pipelines.sources import resolve_sources

    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        report = build_local(resolve_sources([video]), Path(out) / "ds", BuildConfig(), workers=1, progress=False,
                             qa_report=False)
        queue.put({"peak_mib": _children_peak_mib(), "parent_peak_mib": _peak_mib(),
                   "seconds": time.perf_counter() - start, "clips": report.clips, "frames": report.frames})


def _track(video: str, decode_frames: bool, queue) -> None:
    """Only decode+track with crops (or, with ``decode_frames=False``, only the set-up)."""
    from pseudo3d.pipelines.probe import Prober
    from pseudo3d.pipelines.track import DecodeTrack

    from pseudo3d.pipelines.sources import resolve_sources

    config = BuildConfig()
    source = resolve_sources([video])[0]
    with native_stderr_silenced():
        stage = DecodeTrack(config.decode, config.track, want_crops=True)
        stage.tracker  # noqa: B018 - loads the models
        clips = frames = 0
        start = time.perf_counter()
        if decode_frames:
            tracked = stage(source, Prober(config.decode, config.limits)(source))
            for clip in tracked:
                clips += 1
                frames += clip.n_frames
    queue.put({"peak_mib": _peak_mib(), "seconds": time.perf_counter() - start, "clips": clips, "frames": frames})


def measure(name: str, video: Path) -> dict:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    target, args = {"worker": (_worker, (str(video),)), "track+crops": (_track, (str(video), True)),
                    "idle": (_track, (str(video), False))}[name]
    process = context.Process(target=target, args=(*args, queue))
    process.start()
    while True:
        try:
            result = queue.get(timeout=5)
            break
        except queues.Empty:
            if not process.is_alive():
                raise SystemExit(f"the {name} measurement's process died (exit code {process.exitcode})") from None
    process.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=1800.0, help="video length (default 30 minutes)")
    parser.add_argument("--video-dir", type=Path, default=Path(tempfile.gettempdir()) / "pseudo3d-bench-memory",
                        help="where the rendered video is kept between runs")
    parser.add_argument("--only", default="idle,worker,track+crops", help="comma-separated measurements")
    args = parser.parse_args()
    args.video_dir.mkdir(parents=True, exist_ok=True)
    # Rendered in a process of its own: Linux carries a process's peak RSS across exec, so a
    # measuring process forked from a large parent would start from the parent's peak.
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        video = pool.apply(render, (args.seconds, args.video_dir))
    results = {name: measure(name, video) for name in args.only.split(",")}
    floor = results.get("idle", {}).get("peak_mib")
    for name, result in results.items():
        if floor is not None and name != "idle":
            result["mib_per_video_minute_above_idle"] = (result["peak_mib"] - floor) / (args.seconds / 60)
        print(f"{name:12s} " + json.dumps({key: round(value, 2) if isinstance(value, float) else value
                                           for key, value in result.items()}))


if __name__ == "__main__":
    main()
