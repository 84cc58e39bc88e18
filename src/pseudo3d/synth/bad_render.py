"""Frames and sound for the bad corpus, built from the synthetic talking-face pieces.

:func:`pseudo3d.synth.talking.render_talking_video` encodes straight to an H.264 MP4; the bad
corpus needs the raw frames (to rotate, rescale, time irregularly or encode in other formats), so
this module composes the same pieces (:func:`~pseudo3d.synth.face.animate_face`,
:class:`~pseudo3d.synth.scene.HeadLayer`, :func:`~pseudo3d.synth.speech.synthesize_speech`) into
:class:`TalkingClip` records held in memory. Clips are short and small, so that is cheap.

Frames are RGB uint8 ``(height, width, 3)``, pixel ``x`` right and ``y`` down; times are seconds
from the first frame; audio is ``(channels, samples)`` float32 at :data:`speech.SAMPLE_RATE`.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from pseudo3d.synth import speech
from pseudo3d.synth.face import UPSAMPLE, Portrait, animate_face, load_portrait
from pseudo3d.synth.scene import HeadLayer, head_homography, make_backdrop, random_head_motion
from pseudo3d.synth.talking import SensorNoise, blink_curve, random_streams, to_stereo

# Random-stream family of the bad corpus (0: corpus videos, 1: pseudo3d.synth.bad).
BAD_CORPUS_FAMILY = 2
# Face height (forehead to chin) as a fraction of the frame height in a plain talking clip: the
# range the main corpus uses, so the pipeline finds the face as readily as there.
_FACE_FRACTION = (0.36, 0.42)


@dataclass(frozen=True)
class TalkingClip:
    """Rendered frames, their times, and the speech that drives the (main) mouth."""

    frames: NDArray[np.uint8]           # (T, H, W, 3) RGB
    times_s: NDArray[np.float64]        # (T,) presentation time of each frame, seconds
    audio: NDArray[np.float32]          # (2, N) stereo speech, N = round(duration_s * SAMPLE_RATE)
    mouth_open: NDArray[np.float64]     # (T,) opening of the speaking mouth in [0, 1]

    @property
    def width(self) -> int:
        return int(self.frames.shape[2])

    @property
    def height(self) -> int:
        return int(self.frames.shape[1])


def uniform_times(fps: float, duration_s: float) -> NDArray[np.float64]:
    """Frame times ``(round(duration_s * fps),)`` in seconds, at least one frame."""
    return np.arange(max(int(round(duration_s * fps)), 1)) / fps


def streams_for(seed: int, key: int) -> dict[str, np.random.Generator]:
    """The named random streams (see :data:`pseudo3d.synth.talking.STREAMS`) of one bad file."""
    return random_streams(seed, key, BAD_CORPUS_FAMILY)


def _speech_track(streams: dict[str, np.random.Generator], duration_s: float,
                  times_s: NDArray[np.float64]) -> tuple[NDArray[np.float32], NDArray[np.float64]]:
    """Stereo speech ``(2, N)`` lasting ``duration_s`` and the mouth opening at ``times_s``."""
    plan = speech.plan_speech(streams["speech"], duration_s)
    mouth_open = speech.mouth_open_curve(plan, times_s)
    audio = to_stereo(speech.synthesize_speech(plan, streams["speech"]), streams["speech"], 0)
    return audio, mouth_open


def render_speech(seed: int, key: int, duration_s: float) -> NDArray[np.float32]:
    """Stereo speech ``(2, round(duration_s * SAMPLE_RATE))`` with no video."""
    audio, _ = _speech_track(streams_for(seed, key), duration_s, np.zeros(1))
    return audio


def _nominal_fps(times_s: NDArray[np.float64]) -> float:
    """Average frame rate of ``times_s`` (head motion is drawn per frame at this rate)."""
    if len(times_s) < 2:
        return 25.0
    return (len(times_s) - 1) / float(times_s[-1] - times_s[0])


@dataclass(frozen=True)
class _Head:
    """One animated head: where it is in every frame and what its mouth and eyes do."""

    homographies: list[NDArray[np.float64]]
    mouth_open: NDArray[np.float64]
    eye_closure: NDArray[np.float64]


def _head(portrait: Portrait, streams: dict[str, np.random.Generator], times_s: NDArray[np.float64],
          mouth_open: NDArray[np.float64], size: tuple[int, int], centre_xy: tuple[float, float],
          face_height_px: float) -> _Head:
    """A head whose face is ``face_height_px`` tall around ``centre_xy`` in a ``size`` frame."""
    width, height = size
    scale = face_height_px * UPSAMPLE / portrait.face_height
    motion = random_head_motion(streams["motion"], len(times_s), _nominal_fps(times_s), width, height,
                                centre_xy, scale)
    focal_px = 2.0 * max(width, height)
    homographies = [head_homography(portrait, motion, i, focal_px) for i in range(len(times_s))]
    return _Head(homographies, mouth_open, blink_curve(streams["blinks"], times_s))


def _composite(portrait: Portrait, layer: HeadLayer, heads: list[_Head], backdrop: NDArray[np.uint8],
               sensor: SensorNoise) -> NDArray[np.uint8]:
    """All frames: every head over ``backdrop`` in list order (later heads in front), plus noise."""
    n_frames = len(heads[0].homographies)
    frames = np.empty((n_frames, *backdrop.shape), np.uint8)
    faces = [portrait.image.copy() for _ in heads]
    for i in range(n_frames):
        image = backdrop
        for head, face in zip(heads, faces):
            animate_face(portrait, head.mouth_open[i], head.eye_closure[i], out=face)
            image = layer.composite(face, head.homographies[i], image)
        frames[i] = sensor.apply(image)
    return frames


def render_talking_clip(seed: int, key: int, width: int, height: int, times_s: NDArray[np.float64],
                        audio_s: float | None = None) -> TalkingClip:
    """One talking face near the middle of a ``width`` x ``height`` frame at ``times_s``.

    ``audio_s``: length of the speech in seconds; by default the video's length (last frame time
    plus the mean frame interval). Shorter speech leaves the mouth still after it ends.
    """
    times_s = np.asarray(times_s, np.float64)
    streams = streams_for(seed, key)
    video_s = float(times_s[-1]) + 1.0 / _nominal_fps(times_s)
    audio, mouth_open = _speech_track(streams, video_s if audio_s is None else audio_s, times_s)
    portrait = load_portrait()
    rng = streams["scene"]
    face_px = rng.uniform(*_FACE_FRACTION) * height
    centre = (width * rng.uniform(0.47, 0.53), height * rng.uniform(0.48, 0.52))
    head = _head(portrait, streams, times_s, mouth_open, (width, height), centre, face_px)
    backdrop = make_backdrop(rng, width, height)
    frames = _composite(portrait, HeadLayer(portrait), [head], backdrop, SensorNoise(streams["camera"], height, width))
    return TalkingClip(frames, times_s, audio, mouth_open)


def render_two_faces(seed: int, key: int, width: int, height: int, times_s: NDArray[np.float64]) -> TalkingClip:
    """Two talking faces side by side; the left one's face is twice as tall as the right one's.

    The larger face speaks the clip's audio; the smaller one mouths a speech plan of its own
    that is not in the audio. :attr:`TalkingClip.mouth_open` is the larger face's.
    """
    times_s = np.asarray(times_s, np.float64)
    streams = streams_for(seed, key)
    other = streams_for(seed, key + 1)
    video_s = float(times_s[-1]) + 1.0 / _nominal_fps(times_s)
    audio, mouth_open = _speech_track(streams, video_s, times_s)
    _, other_mouth = _speech_track(other, video_s, times_s)
    portrait = load_portrait()
    large = _head(portrait, streams, times_s, mouth_open, (width, height),
                  (0.3 * width, 0.5 * height), 0.44 * height)
    small = _head(portrait, other, times_s, other_mouth, (width, height),
                  (0.75 * width, 0.55 * height), 0.22 * height)
    backdrop = make_backdrop(streams["scene"], width, height)
    frames = _composite(portrait, HeadLayer(portrait), [small, large], backdrop,
                        SensorNoise(streams["camera"], height, width))
    return TalkingClip(frames, times_s, audio, mouth_open)


def render_distant_portrait(seed: int, key: int, width: int, height: int, times_s: NDArray[np.float64],
                            face_height_px: float) -> TalkingClip:
    """The whole astronaut portrait (head, suit and flag), scaled down so that its face is
    ``face_height_px`` tall, drifting slowly in a large ``width`` x ``height`` scene."""
    times_s = np.asarray(times_s, np.float64)
    streams = streams_for(seed, key)
    video_s = float(times_s[-1]) + 1.0 / _nominal_fps(times_s)
    audio, mouth_open = _speech_track(streams, video_s, times_s)
    eye_closure = blink_curve(streams["blinks"], times_s)
    portrait = load_portrait()
    side = max(int(round(portrait.image.shape[0] * face_height_px / portrait.face_height)), 1)
    rng = streams["scene"]
    backdrop = make_backdrop(rng, width, height)
    start = np.array([rng.uniform(0.2, 0.6) * (width - side), rng.uniform(0.3, 0.6) * (height - side)])
    drift = rng.uniform(-0.08, 0.08, size=2) * [width, height]
    progress = (times_s - times_s[0]) / max(float(times_s[-1] - times_s[0]), 1e-9)
    sensor = SensorNoise(streams["camera"], height, width)
    frames = np.empty((len(times_s), height, width, 3), np.uint8)
    face = portrait.image.copy()
    for i in range(len(times_s)):
        animate_face(portrait, mouth_open[i], eye_closure[i], out=face)
        small = cv2.resize(face, (side, side), interpolation=cv2.INTER_AREA)
        left, top = np.clip(np.round(start + progress[i] * drift), 0, [width - side, height - side]).astype(int)
        image = backdrop.copy()
        image[top:top + side, left:left + side] = small
        frames[i] = sensor.apply(image)
    return TalkingClip(frames, times_s, audio, mouth_open)


def quiet_music(rng: np.random.Generator, duration_s: float) -> NDArray[np.float32]:
    """Stereo ``(2, N)`` soft music: half-second sine chords on random roots, peak about 0.2."""
    note_s = 0.5
    n_samples = int(round(duration_s * speech.SAMPLE_RATE))
    times = np.arange(n_samples) / speech.SAMPLE_RATE
    roots = 220.0 * 2.0 ** (rng.integers(0, 12, size=int(np.ceil(duration_s / note_s)) + 1) / 12.0)
    root = roots[(times / note_s).astype(int)]
    chord = sum(np.sin(2.0 * np.pi * root * ratio * times) for ratio in (1.0, 1.26, 1.5))
    # Each note swells and fades to silence, so the jumps in pitch do not click.
    swell = 0.5 * (1.0 - np.cos(2.0 * np.pi * (times % note_s) / note_s))
    mono = (0.07 * chord * swell).astype(np.float32)
    return np.stack([mono, mono])
