"""Peak memory of a build against the length of its one source, measured in one run.

Builds one video at several lengths (the same talking head looped: ``--minutes 1 5 30`` by
default) with the local runner and one worker, each build in a process of its own, and prints the
largest peak resident set size among its processes (``getrusage``'s ``RUSAGE_CHILDREN`` in a
fresh wrapper process per build), the shard bytes written and the frames per second. Memory that grows with
the video would show as a ratio well above 1 between the longest and the shortest.

``--split`` builds it in the GPU layout instead (run on CPU): Ray's split runner on a private Ray
of two CPUs, one CPU actor (its tracking worker process probes, decodes and tracks) and one
reconstruction actor, with ``shards.write_crops`` so that the tracked frames carry their 224×224
crops (150 kB a frame) to the reconstruction actor, as ``deca``'s do. It builds every length
once per ``--chunk-s`` value (``decode.chunk_s``; 14400, ``limits.max_duration_s``, builds the
video whole) and prints each process's peak RSS (its ``VmHWM``, read every 0.2 s).

The video is made from ``pseudo3d synth``'s first synthetic talking head (a minute of it, then
re-encoded in a loop with PyAV), or from ``--video PATH`` (looped the same way).

    python bench/bench_long_source.py [--minutes 1 5 30] [--video PATH] [--backend mediapipe]
    python bench/bench_long_source.py --split [--minutes 1 4 30] [--chunk-s 60 14400] [--max-whole-minutes 4]
"""

from __future__ import annotations

import argparse
import collections
import fractions
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import av
from bench_split_memory import BUILD as SPLIT_BUILD  # the same Ray build (bench/ is on the path when run)


def looped(video: Path, minutes: float, out: Path) -> Path:
    """``video`` re-encoded end to end until it lasts ``minutes`` (video at 25 fps, H.264; audio
    mono AAC cut to each loop's video length, so the sound does not drift from the picture as the
    loops add up: a decoded AAC stream is longer than its video by the encoder's padding)."""
    import numpy as np

    from pseudo3d.pipelines.audio import load_audio

    with av.open(str(video)) as source:
        duration = float(source.duration or 0) / 1e6
        stream = source.streams.video[0]
        width, height = stream.codec_context.width, stream.codec_context.height
        rate = source.streams.audio[0].codec_context.sample_rate
        images = [frame.reformat(format="yuv420p") for frame in source.decode(video=0)]
    sound = load_audio(video, rate)
    per_loop = round(len(images) / 25 * rate)
    sound = np.pad(sound, (0, max(0, per_loop - sound.size)))[:per_loop]
    loops = max(1, round(minutes * 60 / duration))
    with av.open(str(out), "w") as target:
        video_out = target.add_stream("libx264", rate=25)
        video_out.width, video_out.height, video_out.pix_fmt = width, height, "yuv420p"
        video_out.options = {"preset": "ultrafast", "crf": "23"}
        audio_out = target.add_stream("aac", rate=rate)
        audio_out.layout = "mono"
        frames = samples = 0
        for _ in range(loops):
            for image in images:
                image.pts, image.time_base = frames, fractions.Fraction(1, 25)
                frames += 1
                target.mux(video_out.encode(image))
            for start in range(0, per_loop, 1024):
                frame = av.AudioFrame.from_ndarray(sound[None, start:start + 1024], format="flt", layout="mono")
                frame.sample_rate, frame.pts, frame.time_base = rate, samples, fractions.Fraction(1, rate)
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


ROLES = ("tracking worker", "CPU actor", "reconstruction actor")


def sample_peaks(stop: threading.Event, peaks: dict[str, int]) -> None:
    """Peak resident set size (kB; each process's own high-water mark, ``VmHWM``) of the split
    layout's processes until ``stop`` is set: Ray's actors by their process title, the tracking
    worker as the spawned child of the CPU actor."""
    while not stop.is_set():
        roles: dict[int, str] = {}
        parents: dict[int, int] = {}
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                title = (proc / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
                parents[int(proc.name)] = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
                if title.startswith("ray::"):
                    if "ReconstructActor" in title:
                        roles[int(proc.name)] = "reconstruction actor"
                    elif "UnitActor" in title or "MapWorker" in title:
                        roles[int(proc.name)] = "CPU actor"
                elif "spawn_main" in (proc / "cmdline").read_bytes().decode(errors="replace"):
                    roles[int(proc.name)] = "spawned"
            except (OSError, IndexError, ValueError):
                continue
        for pid, role in roles.items():
            if role == "spawned":
                if roles.get(parents.get(pid, -1)) != "CPU actor":
                    continue
                role = "tracking worker"
            try:
                rss = next(int(line.split()[1]) for line in (Path("/proc") / str(pid) / "status").read_text().splitlines()
                           if line.startswith("VmHWM"))
            except (OSError, StopIteration):
                continue
            peaks[role] = max(peaks[role], rss)
        time.sleep(0.2)


def measure_split(video: Path, out: Path, chunk_s: float) -> dict:
    """Build ``video`` in the split layout with ``decode.chunk_s`` = ``chunk_s``: each process's
    peak RSS (MB), the clips and the seconds."""
    overrides = {"decode": {"chunk_s": chunk_s}, "shards": {"write_crops": True}}
    peaks: dict[str, int] = collections.defaultdict(int)
    stop = threading.Event()
    sampler = threading.Thread(target=sample_peaks, args=(stop, peaks), daemon=True)
    sampler.start()
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", SPLIT_BUILD, str(video), str(out), json.dumps(overrides)],
                          capture_output=True, text=True)
    seconds = time.perf_counter() - start
    stop.set()
    sampler.join()
    if done.returncode:
        raise SystemExit(f"the build failed:\n{done.stderr[-3000:]}")
    counts = json.loads(done.stdout.strip().splitlines()[-1])
    return {**{role: peaks[role] / 1024 for role in ROLES}, "clips": counts["clips"], "seconds": seconds}


def main_split(args: argparse.Namespace, video: Path, root: Path) -> None:
    print("one source, Ray split layout on CPU (1 CPU actor, 1 reconstruction actor), crops carried; peak RSS in MB")
    print(f"{'minutes':>8}{'chunk_s':>9}" + "".join(f"{role:>22}" for role in ROLES) + f"{'clips':>7}{'seconds':>9}")
    for minutes in sorted(args.minutes):
        source = looped(video, minutes, root / f"long-{minutes:g}min.mp4")
        for chunk_s in args.chunk_s:
            if chunk_s * 1.5 > minutes * 60 and minutes > args.max_whole_minutes:
                continue  # built whole: the crops of the whole video would be held at once
            out = root / f"ds-{minutes:g}-{chunk_s:g}"
            row = measure_split(source, out, chunk_s)
            print(f"{minutes:8.1f}{chunk_s:9g}" + "".join(f"{row[role]:22.0f}" for role in ROLES)
                  + f"{row['clips']:7d}{row['seconds']:9.0f}", flush=True)
            shutil.rmtree(out)
        source.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[1, 5, 30])
    parser.add_argument("--video", type=Path, help="the video to loop (default: a synthetic talking head)")
    parser.add_argument("--backend", default="mediapipe")
    parser.add_argument("--split", action="store_true", help="the split (GPU) layout on Ray, crops carried")
    parser.add_argument("--chunk-s", type=float, nargs="+", default=[60.0, 14400.0],
                        help="with --split: decode.chunk_s values (14400 builds the video whole)")
    parser.add_argument("--max-whole-minutes", type=float, default=4.0,
                        help="with --split: longest video built whole (its crops are all held at once)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        video = args.video
        if video is None:
            subprocess.run([sys.executable, "-m", "pseudo3d", "synth", str(root / "synth"), "--videos", "1",
                            "--seconds", "60", "-q"], check=True, stdout=subprocess.DEVNULL)
            video = next((root / "synth").glob("*.mp4"))
        if args.split:
            main_split(args, video, root)
            return
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
