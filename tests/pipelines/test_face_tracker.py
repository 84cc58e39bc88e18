"""The face tracker on frames drawn in memory, where every landmark's true place is known.

The synthetic head (pseudo3d.synth) is the astronaut portrait, whose Face Mesh landmarks were
measured once; a frame is that portrait warped by a known homography, so the true frame position
of any landmark is the homography applied to it. The real MediaPipe models run."""

import math

import numpy as np
import pytest

from pseudo3d.config import QAConfig, TrackConfig
from pseudo3d.logs import native_stderr_silenced
from pseudo3d.pipelines.face_tracker import FaceTracker, orientation_agrees
from pseudo3d.pipelines.face_window import angle_between, landmark_angle
from pseudo3d.synth.face import UPSAMPLE, animate_face, load_portrait
from pseudo3d.synth.scene import HeadLayer, HeadMotion, head_homography, make_backdrop, project

# Outer eye corners, nose tip, inner lips: points that do not move with the (animated) mouth much.
RIGID = [33, 263, 1, 133, 362]
MIN_CONFIDENCE = QAConfig().min_confidence_mean


@pytest.fixture(scope="module")
def portrait():
    with native_stderr_silenced():
        return load_portrait()


@pytest.fixture(scope="module")
def tracker():
    with native_stderr_silenced():
        tracker = FaceTracker(TrackConfig())
    yield tracker
    tracker.close()


def _render(portrait, width, height, face_px, centre, roll_deg, n_frames=6, seed=0):
    """``n_frames`` RGB frames of the head talking, its face ``face_px`` tall (forehead to chin),
    drifting slowly; and per frame the true frame positions of the 478 portrait landmarks."""
    rng = np.random.default_rng(seed)
    layer = HeadLayer(portrait)
    backdrop = make_backdrop(rng, width, height)
    scale = face_px * UPSAMPLE / portrait.face_height
    face = portrait.image.copy()
    frames, truth = [], []
    for i in range(n_frames):
        motion = HeadMotion(*(np.array([v]) for v in (
            0.0, 0.0, math.radians(roll_deg + 2.0 * math.sin(i / 3.0)),
            centre[0] + 0.01 * face_px * i, centre[1] - 0.01 * face_px * i, scale)))
        homography = head_homography(portrait, motion, 0, focal_px=2.0 * max(width, height))
        animate_face(portrait, 0.5 + 0.4 * math.sin(i), 0.0, out=face)
        noise = rng.normal(0.0, 2.0, (height, width, 3))
        frames.append(np.clip(layer.composite(face, homography, backdrop) + noise, 0, 255).astype(np.uint8))
        truth.append(project(homography, portrait.landmarks))
    return frames, truth


FRAMINGS = {
    # name: (width, height, face height px, face centre as a fraction of the frame, roll degrees)
    "tight_224": (224, 224, 160, (0.5, 0.52), 0),
    "medium_1280x720": (1280, 720, 60, (0.35, 0.35), 0),        # a 1920x1080 shot as tracked (max_side 1280)
    "medium_720x1080": (720, 1080, 90, (0.6, 0.3), 0),
    "rolled_90": (640, 480, 200, (0.5, 0.5), 90),
    "upside_down": (640, 480, 200, (0.5, 0.5), 180),
    "rolled_270": (480, 640, 200, (0.5, 0.5), 270),
    "tilted_35": (640, 480, 200, (0.5, 0.5), 35),
}


@pytest.mark.parametrize("name", list(FRAMINGS))
def test_every_framing_is_tracked_in_frame_coordinates(portrait, tracker, name):
    width, height, face_px, (fx, fy), roll = FRAMINGS[name]
    frames, truth = _render(portrait, width, height, face_px, (fx * width, fy * height), roll)
    tracker.reset()
    with native_stderr_silenced():
        observations = [tracker(frame) for frame in frames]
    assert all(o.landmarks is not None for o in observations), [o.rejected for o in observations]
    for observation, true in zip(observations, truth):
        landmarks = observation.landmarks
        assert landmarks.shape == (478, 3) and landmarks.dtype == np.float32
        error = np.linalg.norm(landmarks[RIGID, :2] - true[RIGID], axis=1)
        assert error.max() < 0.06 * face_px, f"{name}: rigid landmarks {error.round(1)} px from the truth"
        # Right way up: the eyes -> mouth direction is the head's roll.
        assert math.degrees(angle_between(landmark_angle(landmarks), math.radians(roll))) < 12.0
    confidence = np.mean([o.confidence for o in observations])
    assert confidence > MIN_CONFIDENCE, f"{name}: confidence {confidence:.2f}"


def test_a_tight_crop_scores_like_a_wide_shot(portrait, tracker):
    scores = {}
    for name in ("tight_224", "rolled_90"):
        width, height, face_px, (fx, fy), roll = FRAMINGS[name]
        frames, _ = _render(portrait, width, height, face_px, (fx * width, fy * height), 0, n_frames=4)
        tracker.reset()
        with native_stderr_silenced():
            scores[name] = np.mean([tracker(frame).confidence for frame in frames])
    assert scores["tight_224"] > 0.8 and abs(scores["tight_224"] - scores["rolled_90"]) < 0.1


def test_a_frame_without_a_face_scores_low(tracker):
    tracker.reset()
    backdrop = make_backdrop(np.random.default_rng(3), 640, 480)
    rng = np.random.default_rng(4)
    with native_stderr_silenced():
        observations = [tracker(np.clip(backdrop + rng.normal(0, 3, backdrop.shape), 0, 255).astype(np.uint8))
                        for _ in range(6)]
    assert all(o.landmarks is None for o in observations)
    assert max(o.confidence for o in observations) < MIN_CONFIDENCE


def test_the_track_follows_a_face_that_moves_across_the_frame(portrait, tracker):
    # 40 px per frame, a fifth of the face: the window has to move several times.
    layer = HeadLayer(portrait)
    backdrop = make_backdrop(np.random.default_rng(5), 960, 540)
    scale = 200 * UPSAMPLE / portrait.face_height
    tracker.reset()
    errors = []
    for i in range(12):
        motion = HeadMotion(*(np.array([v]) for v in (0.0, 0.0, 0.0, 250.0 + 40.0 * i, 270.0, scale)))
        homography = head_homography(portrait, motion, 0, focal_px=1920.0)
        with native_stderr_silenced():
            observation = tracker(layer.composite(portrait.image, homography, backdrop))
        assert observation.landmarks is not None
        true = project(homography, portrait.landmarks)
        errors.append(np.linalg.norm(observation.landmarks[RIGID, :2] - true[RIGID], axis=1).max())
    assert max(errors) < 0.06 * 200


def test_landmarks_that_disagree_with_the_keypoints_are_refused():
    upright, upside_down, sideways = 0.0, math.pi, math.pi / 2
    assert orientation_agrees(upright, 0, upright)
    assert orientation_agrees(math.radians(20), 0, None)              # no detection: the window decides
    assert not orientation_agrees(upright, 2, None)                  # an upright fit in an upside-down window
    assert not orientation_agrees(upright, 0, upside_down)           # the detector saw it the other way up
    assert not orientation_agrees(upright, 0, sideways)
    assert orientation_agrees(sideways, 1, math.radians(80))
