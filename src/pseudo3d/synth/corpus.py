"""A synthetic talking-head corpus with per-frame ground truth, for demos and tests.

:func:`make_corpus` writes ``n_videos`` H.264 MP4 videos. Each animates scikit-image's
public-domain astronaut portrait: a mouth driven by synthetic speech, blinks, and a smoothly
turning, drifting head over a studio-like backdrop. Video ``i`` is ``{i:02d}_{scenario}.mp4``,
the scenarios cycling through :data:`SCENARIOS`:

====================== ============ ========= ==================================================
scenario               fps          size      what it tests
====================== ============ ========= ==================================================
talk_25fps             25           640x480   the plain case
talk_30fps_portrait    30           480x640   portrait aspect ratio
talk_2997fps_offset    30000/1001   854x480   NTSC rate; audio lags the mouth by 5 frames
talk_face_leaves       25           720x720   the face leaves the frame for ~1.5 s mid-video
talk_noaudio           30           640x360   no audio stream at all
talk_cut               30000/1001   960x540   a hard shot cut: new backdrop, framing and zoom
====================== ============ ========= ==================================================

From the second cycle on (``i >= 6``) the frame size is drawn from the seed (keeping the
orientation), and so is the frame rate of the scenarios whose name does not state one. Lengths
are ``seconds`` times a factor in [0.8, 1.25] drawn from the seed, at least 3 s;
``talk_face_leaves`` runs ``max(1.5 * seconds * factor, 8)`` s with the factor in [1, 1.25].

Audio is speech-like (see :mod:`pseudo3d.synth.speech`), 48 kHz AAC stereo with slightly
different channel gains. The mouth articulates it the way people do (``natural`` articulation):
the lips start moving 50-250 ms before the sound (most at utterance onsets), stay shut through
voiced *m* and *b*, and open by varying amounts at equal loudness. ``VideoSpec`` also offers
``articulation="lockstep"`` (mouth and loudness in lockstep, as before) and ``dubbed=True`` (the
sound of another, unrelated speech plan); no scenario uses them.

With ``framings=True`` the corpus also holds one video of each of :data:`FRAMING_SCENARIOS`,
``framing_{scenario}.mp4``, framed the ways real footage is and the plain scenarios are not:

====================== ========== =======================================================
scenario               size       framing
====================== ========== =======================================================
tight_224              224x224    face filling the frame (forehead to chin 66-74 % of it),
                                  hair and ears cut off: VoxCeleb2/LRS3-style face crops
medium_1920x1080       1920x1080  a small face, 64-110 px forehead to chin (43-73 px once
                                  decoded at 1280 px for tracking), anywhere across the upper
                                  part of a full-HD frame
medium_720x1080        720x1080   the same face sizes in a portrait frame
roll_90                640x480    the head turned 90 degrees clockwise (as in a phone video
                                  whose rotation tag was lost); ``roll_rad`` includes it
roll_180               640x480    the head upside down
====================== ========== =======================================================

They run at 25 fps with audio, ``seconds`` times a factor in [0.8, 1.25] long (at least 3 s).

Truth sidecar ``NAME.truth.json``
---------------------------------
One JSON object; per-frame lists have one entry per frame of the video at its own frame rate,
entry ``i`` describing the frame shown at ``i / fps`` seconds after the first frame.

``schema``
    ``"pseudo3d.synth.truth/1"``.
``name``, ``scenario``, ``seed``
    File stem, scenario name, and the corpus seed.
``fps``, ``fps_fraction``
    Frame rate as a float and exactly, as ``"num/den"`` (``"30000/1001"``).
``width``, ``height``, ``n_frames``, ``duration_s``
    Frame size in pixels, frame count, and ``n_frames / fps`` in seconds.
``has_audio``, ``audio_sample_rate``
    Whether the file has an audio stream, and its rate in Hz (``null`` without audio).
``audio_offset_s``
    How much later the sound plays than the mouth moves, in seconds; positive = audio lags: the
    injected shift, on top of the lips' natural lead (``syllables``). ``0.0`` except in
    ``talk_2997fps_offset`` (5 frames: 8008 / 48000 s, 4.17 frames at 25 fps).
``articulation``, ``dubbed``
    ``"natural"`` or ``"lockstep"`` (see :mod:`pseudo3d.synth.speech`; ``null`` without a speaking
    face), and whether the sound is another speech plan's than the one the mouth articulates.
``syllables``
    The plan the mouth articulates, one object per syllable, times in seconds on the mouth's
    clock (the sound of a syllable plays ``audio_offset_s`` later): ``start_s`` (consonant onset),
    ``nucleus_start_s`` (vowel onset), ``end_s``, ``vowel``, ``consonant`` (``null``, a voiceless
    ``s sh f t k`` or a voiced bilabial ``m b``), ``lip_lead_s`` (how long before the vowel sounds
    the lips start to open; at a bilabial's release they open with it) and ``opening_scale``
    (how far they open relative to the vowel's norm). ``lip_lead_s`` is 0 and ``opening_scale``
    1 in lockstep articulation.
``mouth_open``
    Mouth opening in [0, 1]: 0 = lips together, 1 = the widest opening (a lip gap of half the
    upper-lip-to-chin height). The inner-lip gap in the image grows in proportion.
``head_pose``
    The head layer's pose, per frame, also while the face is out of frame:

    * ``yaw_rad``, ``pitch_rad``, ``roll_rad``: radians, ``R = R_y(yaw) R_x(pitch) R_z(roll)``
      in camera axes (x right, y down, z away from the camera), as in
      :func:`pseudo3d.geometry.euler_yxz_to_matrix`. yaw > 0: the nose turns towards image
      left (the subject's own right); pitch > 0: the head tips down; roll > 0: the head turns
      clockwise as seen in the image. Zero is the portrait with its eye line levelled; the
      head turn of the ``roll_90`` and ``roll_180`` framings (π/2, π) is included.
    * ``tx_px``, ``ty_px``: where the face centre (midway between the midpoint of the outer eye
      corners and the mouth centre, the point the head turns about) appears, in pixels from the
      frame's top-left corner, x right, y down.
    * ``scale``: frame pixels per pixel of the 512 x 512 source portrait at the face centre
      (the inter-ocular distance is about 61 portrait pixels).
``face_visible``
    Booleans: every Face Mesh face-oval landmark of the face lies inside the frame.
``cuts``
    Frame indices where a new shot starts (frame 0 is not listed); ``[]`` without cuts.
``speech_envelope_fps``
    RMS of the audio as stored in the file (after the offset; mean of the two channels, full
    scale = 1), in windows of ``1 / fps`` centred on each frame time. Zeros without audio.
``eye_closure``
    Eyelid closure in [0, 1]; 1 = upper lid on the lower lid (blinks).
``camera_focal_px``
    Focal length of the pinhole camera that projects the turned head, in pixels.
``sensor_noise_sigma``
    Standard deviation of the Gaussian sensor noise added to every frame, in 8-bit levels.

Alongside, ``bad_inputs=True`` writes broken and face-less inputs (see
:mod:`pseudo3d.synth.bad`).
"""

from __future__ import annotations

import concurrent.futures
import math
import multiprocessing
import numbers
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from pseudo3d.synth.bad import BAD_INPUT_COUNT, write_bad_inputs
from pseudo3d.synth.talking import VideoSpec, random_streams, render_talking_video

ProgressCallback = Callable[[int, int, str], None]

MIN_DURATION_S = 3.0
MAX_SECONDS = 3600.0
# Shortest length of the face-leaves video, so both sides of the gap are well over 2.5 s.
MIN_FACE_LEAVES_S = 8.0


@dataclass(frozen=True)
class Scenario:
    """What one slot of the corpus cycle looks like."""

    name: str
    fps: Fraction
    width: int
    height: int
    fps_in_name: bool               # later cycles keep the frame rate the name promises
    has_audio: bool = True
    audio_delay_frames: int = 0
    face_leaves: bool = False
    shot_cut: bool = False
    framing: str = "standard"
    head_turn_deg: int = 0


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("talk_25fps", Fraction(25), 640, 480, fps_in_name=True),
    Scenario("talk_30fps_portrait", Fraction(30), 480, 640, fps_in_name=True),
    Scenario("talk_2997fps_offset", Fraction(30000, 1001), 854, 480, fps_in_name=True, audio_delay_frames=5),
    Scenario("talk_face_leaves", Fraction(25), 720, 720, fps_in_name=False, face_leaves=True),
    Scenario("talk_noaudio", Fraction(30), 640, 360, fps_in_name=False, has_audio=False),
    Scenario("talk_cut", Fraction(30000, 1001), 960, 540, fps_in_name=False, shot_cut=True),
)

FRAMING_SCENARIOS: tuple[Scenario, ...] = (
    Scenario("tight_224", Fraction(25), 224, 224, fps_in_name=False, framing="tight"),
    Scenario("medium_1920x1080", Fraction(25), 1920, 1080, fps_in_name=False, framing="medium"),
    Scenario("medium_720x1080", Fraction(25), 720, 1080, fps_in_name=False, framing="medium"),
    Scenario("roll_90", Fraction(25), 640, 480, fps_in_name=False, head_turn_deg=90),
    Scenario("roll_180", Fraction(25), 640, 480, fps_in_name=False, head_turn_deg=180),
)
_FRAMING_FAMILY = 3     # random-stream family of the framing videos (see VideoSpec.family)

_LATER_FPS = (Fraction(24), Fraction(25), Fraction(30), Fraction(30000, 1001))
_LATER_SIZES = {
    "landscape": ((640, 360), (640, 480), (768, 432), (854, 480), (960, 540)),
    "portrait": ((360, 640), (480, 640), (432, 768), (480, 854)),
    "square": ((540, 540), (640, 640), (720, 720)),
}


def _orientation(width: int, height: int) -> str:
    if width == height:
        return "square"
    return "landscape" if width > height else "portrait"


def plan_video(index: int, seconds: float, seed: int) -> VideoSpec:
    """The spec of video ``index`` of the corpus for ``seed``; independent of the corpus size."""
    scenario = SCENARIOS[index % len(SCENARIOS)]
    rng = random_streams(seed, index)["layout"]
    fps, width, height = scenario.fps, scenario.width, scenario.height
    if index >= len(SCENARIOS):
        sizes = _LATER_SIZES[_orientation(width, height)]
        width, height = sizes[rng.integers(len(sizes))]
        if not scenario.fps_in_name:
            fps = _LATER_FPS[rng.integers(len(_LATER_FPS))]
    if scenario.face_leaves:
        duration_s = max(1.5 * seconds * rng.uniform(1.0, 1.25), MIN_FACE_LEAVES_S)
    else:
        duration_s = max(seconds * rng.uniform(0.8, 1.25), MIN_DURATION_S)
    return VideoSpec(
        name=f"{index:02d}_{scenario.name}", scenario=scenario.name, seed=seed, index=index,
        fps=fps, width=width, height=height, duration_s=duration_s,
        has_audio=scenario.has_audio, audio_delay_frames=scenario.audio_delay_frames,
        face_leaves=scenario.face_leaves, shot_cut=scenario.shot_cut,
    )


def plan_framing_video(index: int, seconds: float, seed: int) -> VideoSpec:
    """The spec of ``FRAMING_SCENARIOS[index]`` for corpus ``seed``."""
    scenario = FRAMING_SCENARIOS[index]
    rng = random_streams(seed, index, _FRAMING_FAMILY)["layout"]
    return VideoSpec(
        name=f"framing_{scenario.name}", scenario=scenario.name, seed=seed, index=index, fps=scenario.fps,
        width=scenario.width, height=scenario.height, duration_s=max(seconds * rng.uniform(0.8, 1.25), MIN_DURATION_S),
        family=_FRAMING_FAMILY, framing=scenario.framing, head_turn_deg=scenario.head_turn_deg,
    )


def check_out_dir(out_dir) -> Path:
    """``out_dir`` as a Path, if it names a directory or nothing yet; ValueError otherwise."""
    if not isinstance(out_dir, (str, os.PathLike)):
        raise ValueError(f"out_dir must be a path, got {out_dir!r}")
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"out_dir must be a directory, got the file {out_dir}")
    return out_dir


def _check_arguments(out_dir, n_videos, seconds, seed, bad_inputs, progress, framings=False, workers=1) -> Path:
    out_dir = check_out_dir(out_dir)
    if isinstance(n_videos, bool) or not isinstance(n_videos, numbers.Integral) or n_videos < 1:
        raise ValueError(f"n_videos must be an integer >= 1, got {n_videos!r}")
    if isinstance(seconds, bool) or not isinstance(seconds, numbers.Real) or not math.isfinite(seconds) \
            or not 0 < float(seconds) <= MAX_SECONDS:
        raise ValueError(f"seconds must be a number in (0, {MAX_SECONDS:g}], got {seconds!r}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    if not isinstance(bad_inputs, bool):
        raise ValueError(f"bad_inputs must be True or False, got {bad_inputs!r}")
    if not isinstance(framings, bool):
        raise ValueError(f"framings must be True or False, got {framings!r}")
    if isinstance(workers, bool) or not isinstance(workers, numbers.Integral) or workers < 0:
        raise ValueError(f"workers must be an integer >= 0, got {workers!r}")
    if progress is not None and not callable(progress):
        raise ValueError(f"progress must be a callable (done, total, name) or None, got {progress!r}")
    return out_dir


def render_videos(specs: list[VideoSpec], out_dir: Path, workers: int = 1) -> Iterator[Path]:
    """Render ``specs`` into ``out_dir`` (:func:`render_talking_video`), yielding each mp4 as it is
    written: in ``workers`` spawned processes side by side (0: one per core), or in this process
    when that is one. Each video is rendered whole by one process, so the files are the same
    whatever the count."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    processes = min(len(specs), workers or cores)
    if processes <= 1:
        for spec in specs:
            yield render_talking_video(spec, out_dir)
        return
    context = multiprocessing.get_context("spawn")  # never fork a process that may hold threads
    with concurrent.futures.ProcessPoolExecutor(processes, mp_context=context) as pool:
        pending = [pool.submit(render_talking_video, spec, out_dir) for spec in specs]
        try:
            for future in concurrent.futures.as_completed(pending):
                yield future.result()
        except BaseException:  # a render failed, or the caller stopped: the queued renders never start
            pool.shutdown(wait=True, cancel_futures=True)
            raise


def make_corpus(out_dir: str | os.PathLike, n_videos: int = 6, seconds: float = 8.0, seed: int = 0,
                bad_inputs: bool = False, progress: ProgressCallback | None = None,
                framings: bool = False, workers: int = 1) -> list[Path]:
    """Write a synthetic corpus into ``out_dir`` (created if missing).

    Args:
        out_dir: output directory.
        n_videos: number of talking-head videos, >= 1; scenarios cycle every 6.
        seconds: nominal video length in seconds; each video is 0.8-1.25x this, at least 3 s.
        seed: corpus seed, >= 0; the same arguments give the same truth, frames and audio.
        bad_inputs: also write ``bad_not_a_video.mp4``, ``bad_truncated.mp4`` and
            ``bad_no_face.mp4``.
        progress: called as ``progress(done, total, name)`` after each file is written.
        framings: also write one video of each of :data:`FRAMING_SCENARIOS`.
        workers: processes rendering videos side by side (:func:`render_videos`); 0: one per
            core. More than one spawns processes, so a script calling this needs an
            ``if __name__ == "__main__":`` guard.

    Returns:
        The media files written (videos and, if requested, bad inputs; not the truth
        sidecars), sorted by name.
    """
    out_dir = _check_arguments(out_dir, n_videos, seconds, seed, bad_inputs, progress, framings, workers)
    out_dir.mkdir(parents=True, exist_ok=True)
    total = int(n_videos) + (BAD_INPUT_COUNT if bad_inputs else 0) + (len(FRAMING_SCENARIOS) if framings else 0)
    written: list[Path] = []

    def report(path: Path) -> None:
        written.append(path)
        if progress is not None:
            progress(len(written), total, path.name)

    specs = [plan_video(index, float(seconds), int(seed)) for index in range(int(n_videos))]
    if framings:
        specs += [plan_framing_video(index, float(seconds), int(seed)) for index in range(len(FRAMING_SCENARIOS))]
    for path in render_videos(specs, out_dir, workers):
        report(path)
    if bad_inputs:
        write_bad_inputs(out_dir, int(seed), on_written=report)
    return sorted(written, key=lambda path: path.name)
