"""Inputs a corpus build must survive: files that are not videos, and a video without a face.

* ``bad_not_a_video.mp4``: a text file with a video's name.
* ``bad_truncated.mp4``: the first 40 % of a real synthetic talking-head MP4. The MP4 muxer
  writes the index (``moov``) at the end, so the cut file has none and cannot be opened.
* ``bad_no_face.mp4``: a valid 4 s H.264 + AAC video of a moving backdrop and speech with no
  one in view, with a truth sidecar (``mouth_open`` zeros, ``face_visible`` all false, head pose
  zeros with ``scale`` 0).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from pseudo3d.synth import speech
from pseudo3d.synth.mp4 import write_mp4
from pseudo3d.synth.scene import HeadMotion, make_backdrop
from pseudo3d.synth.talking import (
    TRUTH_SUFFIX, VideoSpec, build_truth, random_streams, render_talking_video, to_stereo, write_truth,
)

BAD_INPUT_COUNT = 3
TRUNCATE_FRACTION = 0.4
_BAD_FAMILY = 1                   # random-stream family of the bad inputs (corpus videos use 0)


def write_not_a_video(out_dir: Path) -> Path:
    path = out_dir / "bad_not_a_video.mp4"
    path.write_text("This is a text file named like a video. A corpus build must record it as a\n"
                    "failed source and carry on.\n", encoding="utf-8")
    return path


def write_truncated(out_dir: Path, seed: int) -> Path:
    """A 3 s synthetic talking-head MP4 cut to :data:`TRUNCATE_FRACTION` of its bytes."""
    spec = VideoSpec(name="bad_truncated", scenario="talk_25fps", seed=seed, index=0, fps=Fraction(25),
                     width=640, height=360, duration_s=3.0, family=_BAD_FAMILY)
    with tempfile.TemporaryDirectory(prefix="pseudo3d-synth-") as scratch:
        whole = render_talking_video(spec, Path(scratch)).read_bytes()
    path = out_dir / "bad_truncated.mp4"
    path.write_bytes(whole[:int(len(whole) * TRUNCATE_FRACTION)])
    return path


def _moving_backdrop(rng: np.random.Generator, width: int, height: int,
                     n_frames: int) -> Iterator[NDArray[np.uint8]]:
    """A backdrop panning slowly, with two soft coloured shapes drifting across it."""
    wide = make_backdrop(rng, int(width * 1.3), int(height * 1.3))
    pan = rng.uniform(0.0, 1.0, size=2), rng.uniform(0.0, 1.0, size=2)
    shapes = [(rng.uniform(0.1, 0.9, size=2), rng.uniform(-0.15, 0.15, size=2),
               rng.uniform(0.08, 0.15) * height, rng.integers(40, 230, size=3)) for _ in range(2)]
    spare_x, spare_y = wide.shape[1] - width, wide.shape[0] - height
    for i in range(n_frames):
        progress = i / max(n_frames - 1, 1)
        x, y = (1.0 - progress) * pan[0] + progress * pan[1]
        left, top = int(round(x * spare_x)), int(round(y * spare_y))
        frame = wide[top:top + height, left:left + width].copy()
        layer = np.zeros((height, width), np.float32)
        colours = np.zeros((height, width, 3), np.float32)
        for start, velocity, radius, colour in shapes:
            cx, cy = (start + velocity * progress) * [width, height]
            disc = np.zeros((height, width), np.float32)
            cv2.circle(disc, (int(cx), int(cy)), int(radius), 1.0, thickness=-1, lineType=cv2.LINE_AA)
            disc = cv2.GaussianBlur(disc, (0, 0), 0.25 * radius)
            colours += disc[..., None] * colour.astype(np.float32)
            layer += disc
        alpha = np.clip(layer, 0.0, 1.0)[..., None]
        tint = colours / np.maximum(layer, 1e-6)[..., None]
        yield np.clip(frame + (tint - frame) * 0.6 * alpha, 0, 255).astype(np.uint8)


def write_no_face(out_dir: Path, seed: int) -> Path:
    """A 4 s, 25 fps, 640x360 video with speech and a moving backdrop but no face."""
    spec = VideoSpec(name="bad_no_face", scenario="no_face", seed=seed, index=1, fps=Fraction(25),
                     width=640, height=360, duration_s=4.0, family=_BAD_FAMILY)
    streams = random_streams(spec.seed, spec.index, spec.family)
    n_frames = int(round(spec.duration_s * spec.fps))
    times = np.arange(n_frames) / float(spec.fps)
    plan = speech.plan_speech(streams["speech"], n_frames / float(spec.fps))
    audio = to_stereo(speech.synthesize_speech(plan, streams["speech"]), streams["speech"], 0)
    envelope = speech.rms_envelope(audio.mean(axis=0), speech.SAMPLE_RATE, times, 1.0 / float(spec.fps))
    path = out_dir / f"{spec.name}.mp4"
    frames = _moving_backdrop(streams["scene"], spec.width, spec.height, n_frames)
    write_mp4(path, frames, spec.fps, spec.width, spec.height, audio, speech.SAMPLE_RATE)
    zeros = np.zeros(n_frames)
    nobody = HeadMotion(zeros, zeros, zeros, zeros, zeros, zeros)
    truth = build_truth(spec, zeros, nobody, [False] * n_frames, [], envelope, zeros, 0, 0.0, 0.0)
    write_truth(out_dir / f"{spec.name}{TRUTH_SUFFIX}", truth)
    return path


def write_bad_inputs(out_dir: Path, seed: int, on_written: Callable[[Path], None] | None = None) -> list[Path]:
    """Write the three bad inputs into ``out_dir``; ``on_written(path)`` after each."""
    written = []
    for path in _bad_inputs(out_dir, seed):
        written.append(path)
        if on_written is not None:
            on_written(path)
    return written


def _bad_inputs(out_dir: Path, seed: int) -> Iterator[Path]:
    yield write_not_a_video(out_dir)
    yield write_truncated(out_dir, seed)
    yield write_no_face(out_dir, seed)
