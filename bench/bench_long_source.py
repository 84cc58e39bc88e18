"""Peak memory of a build against the length of its one source, measured in one run.

Builds one video at several lengths (the same talking head looped: ``--minutes 1 5 30`` by
default) with the local runner and one worker, each build in a process of its own, and prints the
largest peak resident set size among its processes (``getrusage``'s ``RUSAGE_CHILDREN`` in a
fresh wrapper process per build), the shard bytes written and the frames per second. Memory that grows with
the video would show as a ratio well above 1 between the longest and the shortest.

The video is made from ``pseudo3d synth``'s first synthetic talking head (a minute of it, then
re-encoded in a loop with PyAV), or from ``--video PATH`` (looped the same way).

    python bench/bench_long_source.py [--minutes 1 5 30] [--video PATH] [--backend mediapipe]
"""

from __future__ import annotations

import argparse
import fractions
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av


def looped(video: Path, minutes: float, out: Path) -> Path:
    """``video`` re-encoded end to end until it lasts ``minutes`` (video at 25 fps, H.264; audio AAC)."""
    with av.open(str(video)) as source:
        duration = float(source.duration or 0) / 1e6
        stream = source.streams.video[0]
        width, height = stream.codec_context.width, stream.codec_context.height
        rate = source.streams.audio[0].codec_context.sample_rate
    loops = max(1, round(minutes * 60 / duration))
    with av.open(str(out), "w") as target:
        video_out = target.add_stream("libx264", rate=25)
        video_out.width, video_out.height, video_out.pix_fmt = width, height, "yuv420p"
        video_out.options = {"preset": "ultrafast", "crf": "23"}
        audio_out = target.add_stream("aac", rate=rate)
        frames = samples = 0
        for _ in range(loops):
            with av.open(str(video)) as source:
                for frame in source.decode(video=0, audio=0):
                    if isinstance(frame, av.VideoFrame):
                        frame = frame.reformat(format="yuv420p")
                        frame.pts, frame.time_base = frames, fractions.Fraction(1, 25)
                        frames += 1
                        target.mux(video_out.encode(frame))
                    else:
                        frame.pts, frame.time_base = samples, fractions.Fraction(1, rate)
                        samples += frame.samples
                        target.mux(audio_out.encode(frame))
        target.mux(video_out.encode())
        target.mux(audio_out.encode())
    return out


PEAK = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
"""Run a command; print the largest peak RSS (KiB) among its processes."""


def measure(video: Path, out: Path, backend: str) -> dict:
    """Build ``video`` into ``out`` under a fresh wrapper process: the build's processes' largest
    peak RSS (MB), the shard bytes and frames/s (the QA report included)."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", PEAK, sys.executable, "-m", "pseudo3d", "build", str(video),
                           "--out", str(out), "-q", "--workers", "1", "--backend", backend],
                          check=True, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    card = json.loads((out / "dataset.json").read_text())
    shard_bytes = sum((out / name).stat().st_size for name in card["files"]["shards"])
    return {"peak_mb": int(done.stdout.split()[-1]) / 1024, "shard_mb": shard_bytes / 1e6,
            "frames_per_s": card["counts"]["frames"] / seconds, "minutes": card["hours"]["input"] * 60}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[1, 5, 30])
    parser.add_argument("--video", type=Path, help="the video to loop (default: a synthetic talking head)")
    parser.add_argument("--backend", default="mediapipe")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        video = args.video
        if video is None:
            subprocess.run([sys.executable, "-m", "pseudo3d", "synth", str(root / "synth"), "--videos", "1",
                            "--seconds", "60", "-q"], check=True, stdout=subprocess.DEVNULL)
            video = next((root / "synth").glob("*.mp4"))
        rows = []
        for minutes in sorted(args.minutes):
            source = looped(video, minutes, root / f"long-{minutes:g}min.mp4")
            rows.append(measure(source, root / f"ds-{minutes:g}", args.backend))
    print(f"one source, local runner, 1 worker, backend {args.backend}")
    print(f"{'minutes':>8}{'peak RSS MB':>13}{'shards MB':>11}{'frames/s':>10}")
    for row in rows:
        print(f"{row['minutes']:8.1f}{row['peak_mb']:13.0f}{row['shard_mb']:11.0f}{row['frames_per_s']:10.0f}")
    print(f"peak RSS, longest / shortest: {rows[-1]['peak_mb'] / rows[0]['peak_mb']:.2f} "
          f"for {rows[-1]['minutes'] / rows[0]['minutes']:.0f}x the length")


if __name__ == "__main__":
    main()
