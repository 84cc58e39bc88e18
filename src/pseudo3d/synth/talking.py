"""One synthetic talking-head video and its ground truth, from a :class:`VideoSpec`.

The truth sidecar's fields are documented in :mod:`pseudo3d.synth.corpus`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from pseudo3d.storage import write_bytes
from pseudo3d.synth import speech
from pseudo3d.synth.face import UPSAMPLE, Portrait, animate_face, load_portrait
from pseudo3d.synth.mp4 import write_mp4
from pseudo3d.synth.scene import HeadLayer, HeadMotion, head_homography, make_backdrop, project, random_head_motion

TRUTH_SCHEMA = "pseudo3d.synth.truth/1"
TRUTH_SUFFIX = ".truth.json"
# Random streams of one video, one per concern, so that changing one never shifts another.
STREAMS = ("layout", "speech", "motion", "scene", "blinks", "camera")
# Camera sensor noise: standard deviation in 8-bit levels, drawn per video. Ordinary webcam and
# phone footage is never noise-free, and the noise is what makes trackers jitter.
_SENSOR_NOISE_LEVELS = (2.0, 4.0)
# Time for the face to slide out of (or back into) the frame in the face-leaves scenario, and
# how long it stays away.
_EXIT_S = 0.35
_AWAY_S = 1.5
# Framings other than "standard": a tight crop's face height (forehead to chin) as a fraction of
# the frame (VoxCeleb2/LRS3-style 224 x 224 face crops), and a medium shot's face height in pixels.
FRAMINGS = ("standard", "tight", "medium")
_TIGHT_FACE_FRACTION = (0.66, 0.74)
_MEDIUM_FACE_PX = (64.0, 110.0)
# Frames over this many pixels take their sensor noise from smaller fields (rows, columns) tiled
# over the frame: a bank of full-HD fields would take 400 MB.
_NOISE_FIELD_MAX_PIXELS = 960 * 720
_NOISE_TILE = (540, 960)
# A blink: the lids close in 80 ms and open again in 150 ms.
_BLINK_CLOSING_S = 0.08
_BLINK_OPENING_S = 0.15


@dataclass(frozen=True)
class VideoSpec:
    """Everything that decides one video; rendering it twice gives identical files."""

    name: str                   # file stem, e.g. "00_talk_25fps"
    scenario: str
    seed: int
    index: int                  # position in the corpus; with ``seed`` it keys the random streams
    fps: Fraction
    width: int
    height: int
    duration_s: float           # wanted length; the video has round(duration_s * fps) frames
    has_audio: bool = True
    audio_delay_frames: int = 0
    face_leaves: bool = False
    shot_cut: bool = False
    family: int = 0             # 0: corpus videos, 1: bad inputs, 2: bad corpus, 3: framings; keeps random streams apart
    framing: str = "standard"   # "standard", "tight" (the face fills the frame) or "medium" (a small face); see FRAMINGS
    head_turn_deg: int = 0      # the head turned clockwise on screen by 0, 90, 180 or 270 degrees (no rotation tag)
    articulation: str = "natural"   # how the mouth follows the speech: speech.ARTICULATIONS
    dubbed: bool = False        # the audio speaks another, unrelated plan than the mouth articulates


def random_streams(seed: int, index: int, family: int = 0) -> dict[str, np.random.Generator]:
    """Independent generators, named by :data:`STREAMS`, for video ``index`` of corpus ``seed``."""
    children = np.random.SeedSequence(entropy=seed, spawn_key=(family, index)).spawn(len(STREAMS))
    return {name: np.random.default_rng(child) for name, child in zip(STREAMS, children)}


def face_visible(portrait: Portrait, homography: NDArray[np.float64], width: int, height: int) -> bool:
    """True when every face-oval landmark lands inside the frame."""
    oval = project(homography, portrait.face_oval)
    return bool(np.all((oval >= 0.0) & (oval <= [width - 1.0, height - 1.0])))


def blink_curve(rng: np.random.Generator, times_s: NDArray[np.float64]) -> NDArray[np.float64]:
    """Eyelid closure in [0, 1] at ``times_s`` (seconds): a blink every 2-5 s."""
    closure = np.zeros_like(times_s)
    end = float(times_s[-1]) if len(times_s) else 0.0
    start = rng.uniform(0.5, 2.5)
    while start < end:
        closing = np.clip((times_s - start) / _BLINK_CLOSING_S, 0.0, 1.0)
        opening = np.clip((start + _BLINK_CLOSING_S + _BLINK_OPENING_S - times_s) / _BLINK_OPENING_S, 0.0, 1.0)
        closure = np.maximum(closure, np.minimum(closing, opening) * (times_s >= start))
        start += rng.uniform(2.0, 5.0)
    return closure


def _smoothstep(values: NDArray[np.float64]) -> NDArray[np.float64]:
    t = np.clip(values, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _leave_and_return(motion: HeadMotion, rng: np.random.Generator, times_s: NDArray[np.float64],
                      width: int, reach_px: float) -> HeadMotion:
    """Slide the head sideways out of the frame for :data:`_AWAY_S` seconds in the middle."""
    middle = 0.5 * float(times_s[-1])
    gone, back = middle - 0.5 * _AWAY_S, middle + 0.5 * _AWAY_S
    away = _smoothstep((times_s - (gone - _EXIT_S)) / _EXIT_S) * (1.0 - _smoothstep((times_s - back) / _EXIT_S))
    side = 1.0 if rng.random() < 0.5 else -1.0
    # From anywhere the head wanders, reach_px past the frame edge is out of sight.
    distance = 0.5 * width + 0.05 * width + reach_px
    return replace(motion, tx_px=motion.tx_px + side * distance * away)


def _reframe_after_cut(motion: HeadMotion, rng: np.random.Generator, cut: int, width: int,
                       height: int) -> HeadMotion:
    """A second camera from the cut on: another zoom and another place for the face."""
    zoom = rng.uniform(1.2, 1.3) if rng.random() < 0.5 else rng.uniform(0.72, 0.82)
    shift_x = (1.0 if rng.random() < 0.5 else -1.0) * rng.uniform(0.06, 0.1) * width
    shift_y = rng.uniform(-0.03, 0.03) * height
    after = np.arange(len(motion)) >= cut
    return replace(
        motion,
        tx_px=np.where(after, motion.tx_px + shift_x, motion.tx_px),
        ty_px=np.where(after, motion.ty_px + shift_y, motion.ty_px),
        scale=np.where(after, motion.scale * zoom, motion.scale),
    )


class SensorNoise:
    """Camera sensor noise: Gaussian, ``sigma`` levels per pixel and channel, new every frame.

    Drawing full-frame Gaussian noise for every frame dominates rendering time, so each frame
    takes one of a small bank of noise fields at a random circular offset and sign instead; the
    tracker sees uncorrelated noise from frame to frame either way.
    """

    BANK = 4

    def __init__(self, rng: np.random.Generator, height: int, width: int):
        self.rng = rng
        self.sigma = float(rng.uniform(*_SENSOR_NOISE_LEVELS))
        self.field_size = (height, width)
        if height * width > _NOISE_FIELD_MAX_PIXELS:
            self.field_size = (min(height, _NOISE_TILE[0]), min(width, _NOISE_TILE[1]))
        self.bank = (rng.standard_normal((self.BANK, 2 * self.field_size[0], 2 * self.field_size[1], 3),
                                         dtype=np.float32) * np.float32(self.sigma))

    def apply(self, image: NDArray[np.uint8]) -> NDArray[np.uint8]:
        height, width = image.shape[:2]
        field_height, field_width = self.field_size
        field = self.bank[self.rng.integers(self.BANK)]
        dy, dx = self.rng.integers(field_height), self.rng.integers(field_width)
        noise = field[dy:dy + field_height, dx:dx + field_width]
        if (field_height, field_width) != (height, width):
            reps = (-(-height // field_height), -(-width // field_width), 1)
            noise = np.tile(noise, reps)[:height, :width]
        if self.rng.random() < 0.5:
            noise = -noise
        return np.clip(image + noise, 0.0, 255.0).astype(np.uint8)


def to_stereo(mono: NDArray[np.float32], rng: np.random.Generator, delay_samples: int) -> NDArray[np.float32]:
    """``(2, samples)``: ``mono`` delayed by ``delay_samples`` (negative: advanced, the end padded
    with silence), with slightly unequal channel gains."""
    delay_samples = int(np.clip(delay_samples, -len(mono), len(mono)))
    if delay_samples >= 0:
        delayed = np.concatenate([np.zeros(delay_samples, np.float32), mono[:len(mono) - delay_samples]])
    else:
        delayed = np.concatenate([mono[-delay_samples:], np.zeros(-delay_samples, np.float32)])
    gains = np.array([1.0, rng.uniform(0.8, 0.9)], np.float32)
    if rng.random() < 0.5:
        gains = gains[::-1]
    return (gains[:, None] * delayed[None, :]).astype(np.float32)


def _round_list(values: NDArray) -> list[float]:
    return [round(float(v), 6) for v in values]


def write_truth(path: Path, truth: dict) -> None:
    """Write a truth sidecar; it appears under ``path`` only once complete."""
    write_bytes(path, (json.dumps(truth) + "\n").encode("utf-8"))


def build_truth(spec: VideoSpec, mouth_open: NDArray, motion: HeadMotion, visible: list[bool],
                cuts: list[int], envelope: NDArray, eye_closure: NDArray, delay_samples: int,
                focal_px: float, noise_sigma: float, plan: speech.SpeechPlan | None = None) -> dict:
    """The truth sidecar's JSON object (fields documented in :mod:`pseudo3d.synth.corpus`);
    ``plan`` is the speech plan the mouth articulates (None: no speaking face)."""
    n_frames = len(mouth_open)
    fps = float(spec.fps)
    return {
        "schema": TRUTH_SCHEMA,
        "name": spec.name,
        "scenario": spec.scenario,
        "seed": spec.seed,
        "fps": fps,
        "fps_fraction": f"{spec.fps.numerator}/{spec.fps.denominator}",
        "width": spec.width,
        "height": spec.height,
        "n_frames": n_frames,
        "duration_s": round(n_frames / fps, 9),
        "has_audio": spec.has_audio,
        "audio_sample_rate": speech.SAMPLE_RATE if spec.has_audio else None,
        "audio_offset_s": round(delay_samples / speech.SAMPLE_RATE, 9),
        "articulation": None if plan is None else plan.articulation,
        "dubbed": bool(spec.dubbed),
        "syllables": [] if plan is None else [
            {"start_s": round(s.start_s, 6), "nucleus_start_s": round(s.nucleus_start_s, 6), "end_s": round(s.end_s, 6),
             "vowel": s.vowel, "consonant": s.consonant, "lip_lead_s": round(s.lip_lead_s, 6),
             "opening_scale": round(s.opening_scale, 6)} for s in plan.syllables],
        "mouth_open": _round_list(mouth_open),
        "head_pose": {
            "yaw_rad": _round_list(motion.yaw_rad),
            "pitch_rad": _round_list(motion.pitch_rad),
            "roll_rad": _round_list(motion.roll_rad),
            "tx_px": _round_list(motion.tx_px),
            "ty_px": _round_list(motion.ty_px),
            "scale": _round_list(motion.scale),
        },
        "face_visible": [bool(v) for v in visible],
        "cuts": [int(c) for c in cuts],
        "speech_envelope_fps": _round_list(envelope),
        "eye_closure": _round_list(eye_closure),
        "camera_focal_px": float(focal_px),
        "sensor_noise_sigma": round(float(noise_sigma), 6),
    }


@dataclass(frozen=True)
class _Staging:
    """Where the head is in every frame, and what is behind it."""

    motion: HeadMotion
    backdrops: tuple[NDArray[np.uint8], ...]    # one per shot
    cuts: tuple[int, ...]                        # first frame of every shot after the first
    focal_px: float

    def backdrop(self, frame: int) -> NDArray[np.uint8]:
        return self.backdrops[sum(frame >= cut for cut in self.cuts)]


def _stage(spec: VideoSpec, streams: dict[str, np.random.Generator], portrait: Portrait, layer: HeadLayer,
           times_s: NDArray[np.float64]) -> _Staging:
    """Framing, head motion, shots and backdrops of ``spec``."""
    rng = streams["scene"]
    n_frames, fps = len(times_s), float(spec.fps)
    # Face height (forehead to chin) as a fraction of the frame height; the cut's zoom-in
    # starts from a smaller face so that the close-up still fits. A head turned sideways has its
    # height along the frame's width.
    if spec.framing not in FRAMINGS or spec.head_turn_deg not in (0, 90, 180, 270):
        raise ValueError(f"framing must be one of {FRAMINGS} and head_turn_deg one of 0, 90, 180, 270; got "
                         f"{spec.framing!r}, {spec.head_turn_deg!r}")
    along, across = (spec.width, spec.height) if spec.head_turn_deg % 180 else (spec.height, spec.width)
    if spec.framing == "tight":
        face_fraction = rng.uniform(*_TIGHT_FACE_FRACTION)
    elif spec.framing == "medium":
        face_fraction = rng.uniform(*_MEDIUM_FACE_PX) / along
    else:
        face_fraction = rng.uniform(0.34, 0.38) if spec.shot_cut else rng.uniform(0.36, 0.42)
    layer_width = (layer.x1 - layer.x0) / UPSAMPLE             # source-portrait pixels
    scale = face_fraction * along * UPSAMPLE / portrait.face_height
    if spec.framing != "tight":                                # a tight crop cuts the hair and ears off
        scale = min(scale, 0.85 * across / layer_width)
    if spec.framing == "medium":                               # anywhere across, head in the upper part
        centre = (spec.width * rng.uniform(0.3, 0.7), spec.height * rng.uniform(0.3, 0.45))
    else:
        centre = (spec.width * rng.uniform(0.47, 0.53), spec.height * rng.uniform(0.48, 0.52))
    motion = random_head_motion(streams["motion"], n_frames, fps, spec.width, spec.height, centre, scale)
    if spec.head_turn_deg:
        motion = replace(motion, roll_rad=motion.roll_rad + np.radians(spec.head_turn_deg))
    backdrops = [make_backdrop(rng, spec.width, spec.height)]
    cuts: list[int] = []
    if spec.shot_cut:
        cuts.append(int(round(n_frames * rng.uniform(0.4, 0.6))))
        motion = _reframe_after_cut(motion, rng, cuts[0], spec.width, spec.height)
        backdrops.append(make_backdrop(rng, spec.width, spec.height))
    if spec.face_leaves:
        layer_reach = float(np.max(np.abs(layer.corners() - portrait.face_centre)))     # base pixels
        motion = _leave_and_return(motion, rng, times_s, spec.width, 1.3 * layer_reach * scale / UPSAMPLE)
    return _Staging(motion, tuple(backdrops), tuple(cuts), focal_px=2.0 * max(spec.width, spec.height))


def render_talking_video(spec: VideoSpec, out_dir: Path) -> Path:
    """Render ``spec`` to ``out_dir/NAME.mp4`` plus ``NAME.truth.json``; returns the mp4 path."""
    streams = random_streams(spec.seed, spec.index, spec.family)
    portrait = load_portrait()
    layer = HeadLayer(portrait)
    fps = float(spec.fps)
    n_frames = max(int(round(spec.duration_s * fps)), 1)
    times = np.arange(n_frames) / fps

    plan = speech.plan_speech(streams["speech"], n_frames / fps, spec.articulation)
    mouth_open = speech.mouth_open_curve(plan, times)
    eye_closure = blink_curve(streams["blinks"], times)
    staging = _stage(spec, streams, portrait, layer, times)
    homographies = [head_homography(portrait, staging.motion, i, staging.focal_px) for i in range(n_frames)]
    visible = [face_visible(portrait, h, spec.width, spec.height) for h in homographies]

    sensor = SensorNoise(streams["camera"], spec.height, spec.width)

    def frames() -> Iterator[NDArray[np.uint8]]:
        face_image = portrait.image.copy()
        for i in range(n_frames):
            animate_face(portrait, mouth_open[i], eye_closure[i], out=face_image)
            image = layer.composite(face_image, homographies[i], staging.backdrop(i))
            yield sensor.apply(image)

    audio = None
    delay_samples = 0
    envelope = np.zeros(n_frames)
    if spec.has_audio:
        # Dubbed: the sound of another plan, drawn after the mouth's from the same stream.
        sound_plan = speech.plan_speech(streams["speech"], n_frames / fps, spec.articulation) if spec.dubbed else plan
        mono = speech.synthesize_speech(sound_plan, streams["speech"])
        delay_samples = int(round(spec.audio_delay_frames / fps * speech.SAMPLE_RATE))
        audio = to_stereo(mono, streams["speech"], delay_samples)
        envelope = speech.rms_envelope(audio.mean(axis=0), speech.SAMPLE_RATE, times, 1.0 / fps)

    out_dir = Path(out_dir)
    video_path = out_dir / f"{spec.name}.mp4"
    write_mp4(video_path, frames(), spec.fps, spec.width, spec.height, audio, speech.SAMPLE_RATE)
    truth = build_truth(spec, mouth_open, staging.motion, visible, list(staging.cuts), envelope, eye_closure,
                        delay_samples, staging.focal_px, sensor.sigma, plan)
    write_truth(out_dir / f"{spec.name}{TRUTH_SUFFIX}", truth)
    return video_path
