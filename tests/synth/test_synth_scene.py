import numpy as np
import pytest

from pseudo3d.synth.face import UPSAMPLE, load_portrait
from pseudo3d.synth.scene import (
    MAX_PITCH, MAX_ROLL, MAX_YAW, HeadLayer, HeadMotion, head_homography, make_backdrop, project,
    random_head_motion, smooth_noise,
)


@pytest.fixture(scope="module")
def portrait():
    return load_portrait()


def _still(yaw=0.0, pitch=0.0, roll=0.0, tx=320.0, ty=240.0, scale=1.8) -> HeadMotion:
    def one(value):
        return np.array([value], dtype=np.float64)

    return HeadMotion(one(yaw), one(pitch), one(roll), one(tx), one(ty), one(scale))


def _offsets(portrait, motion: HeadMotion, base_offsets) -> np.ndarray:
    """Frame positions of points given as offsets from the face centre in base pixels."""
    points = np.asarray(portrait.face_centre) + np.asarray(base_offsets, dtype=float)
    return project(head_homography(portrait, motion, 0, focal_px=1280.0), points)


def test_unturned_head_is_a_scaled_copy_placed_at_tx_ty(portrait):
    motion = _still(tx=300.0, ty=200.0, scale=1.8)
    centre, right, below = _offsets(portrait, motion, [[0, 0], [10, 0], [0, 10]])
    assert centre == pytest.approx([300.0, 200.0])
    assert right - centre == pytest.approx([10 * 1.8 / UPSAMPLE, 0.0])
    assert below - centre == pytest.approx([0.0, 10 * 1.8 / UPSAMPLE])


def test_roll_turns_the_eye_line_clockwise_on_screen(portrait):
    roll = np.radians(8.0)
    left_eye, right_eye = _offsets(portrait, _still(roll=roll), [[-60, 0], [60, 0]])
    dx, dy = right_eye - left_eye
    assert np.arctan2(dy, dx) == pytest.approx(roll, abs=1e-9)


def test_yaw_and_pitch_tilt_the_face_plane_as_documented(portrait):
    # yaw > 0 turns the nose to image left, so the image-right half of the face comes nearer
    # and looks bigger; pitch > 0 tips the nose down, so the lower half goes away and shrinks.
    centre, right, left = _offsets(portrait, _still(yaw=np.radians(12)), [[0, 0], [60, 0], [-60, 0]])
    assert np.linalg.norm(right - centre) > np.linalg.norm(left - centre)
    centre, up, down = _offsets(portrait, _still(pitch=np.radians(12)), [[0, 0], [0, -60], [0, 60]])
    assert np.linalg.norm(up - centre) > np.linalg.norm(down - centre)


def test_smooth_noise_is_centred_smooth_and_peaks_at_one():
    curve = smooth_noise(np.random.default_rng(0), 250, 25.0, timescale_s=0.7)
    assert np.max(np.abs(curve)) == pytest.approx(1.0)
    assert abs(curve.mean()) < 1e-9
    assert np.max(np.abs(np.diff(curve))) < 0.2


def test_head_motion_stays_within_its_limits():
    motion = random_head_motion(np.random.default_rng(1), 300, 30.0, 640, 480, (320.0, 240.0), 1.8)
    assert len(motion) == 300
    assert np.max(np.abs(motion.yaw_rad)) <= MAX_YAW + 1e-12
    assert np.max(np.abs(motion.pitch_rad)) <= MAX_PITCH + 1e-12
    assert np.max(np.abs(motion.roll_rad)) <= MAX_ROLL + 1e-12
    assert np.max(np.abs(motion.roll_rad)) >= 0.7 * MAX_ROLL
    assert np.max(np.abs(motion.tx_px - 320.0)) <= 0.04 * 640 + 1e-9
    assert np.max(np.abs(motion.scale / 1.8 - 1.0)) <= 0.05 + 1e-12


def test_backdrop_is_seeded():
    first = make_backdrop(np.random.default_rng(2), 320, 180)
    assert first.shape == (180, 320, 3) and first.dtype == np.uint8
    assert np.array_equal(first, make_backdrop(np.random.default_rng(2), 320, 180))
    assert not np.array_equal(first, make_backdrop(np.random.default_rng(3), 320, 180))


def test_layer_is_drawn_only_where_it_lands(portrait):
    layer = HeadLayer(portrait)
    backdrop = make_backdrop(np.random.default_rng(4), 640, 480)
    focal = 1280.0
    centred = layer.composite(portrait.image, head_homography(portrait, _still(), 0, focal), backdrop)
    assert not np.array_equal(centred[240, 320], backdrop[240, 320])
    assert np.array_equal(centred[:20, :20], backdrop[:20, :20])
    assert np.array_equal(centred[-5:], backdrop[-5:])
    gone = layer.composite(portrait.image, head_homography(portrait, _still(tx=5000.0), 0, focal), backdrop)
    assert np.array_equal(gone, backdrop)
