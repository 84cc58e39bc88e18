import math

import cv2
import numpy as np
import pytest

from pseudo3d.pipelines.face_detector import Detection, overlap, search_windows, suppress
from pseudo3d.pipelines.face_window import Window, _to_pixel_centres, angle_between, face_angle, quarter_turns


def _marked_frame(height=90, width=120, at=(37, 21)):
    """A black frame with one white pixel at (x, y) = ``at``."""
    frame = np.zeros((height, width, 3), np.uint8)
    frame[at[1], at[0]] = 255
    return frame


@pytest.mark.parametrize("turns", [0, 1, 2, 3])
def test_a_plain_window_is_the_frame_turned_like_rot90(turns):
    frame = _marked_frame()
    window = Window(60.0, 45.0, 120.0, 120, turns)          # the frame, padded to a square, scale 1
    image = window.image(frame)
    padded = np.zeros((120, 120, 3), np.uint8)
    padded[15:105] = frame
    assert np.array_equal(image, np.rot90(padded, turns))
    # The white pixel's centre maps to where it is in the window image.
    (u, v), = window.to_window([[37.5, 21.5]])
    assert image[int(v), int(u)].tolist() == [255, 255, 255]
    np.testing.assert_allclose(window.to_frame(window.to_window([[37.5, 21.5], [3.0, 80.25]])),
                               [[37.5, 21.5], [3.0, 80.25]], atol=1e-9)


@pytest.mark.parametrize("turns", [0, 1, 2, 3])
def test_a_scaled_window_maps_points_both_ways(turns):
    window = Window(50.3, 40.7, 33.0, 256, turns)
    points = np.array([[40.0, 30.0], [60.5, 51.25], [50.3, 40.7]])
    inside = window.to_window(points)
    np.testing.assert_allclose(window.to_frame(inside), points, atol=1e-9)
    np.testing.assert_allclose(inside[2], [128.0, 128.0], atol=1e-9)     # the centre goes to the centre
    assert window.scale == pytest.approx(256 / 33.0)


@pytest.mark.parametrize("turns", [0, 1, 2, 3])
@pytest.mark.parametrize("corner", [(10, 20), (-30, 40), (70, -25)])
def test_a_plain_crop_is_the_warp_it_stands_for(turns, corner):
    # Whole-pixel windows at the frame's scale are cut out rather than warped: the same pixels.
    frame = np.random.default_rng(0).integers(0, 256, (90, 120, 3), dtype=np.uint8)
    window = Window(corner[0] + 50.0, corner[1] + 50.0, 100.0, 100, turns)
    expected = cv2.warpAffine(frame, _to_pixel_centres(window.matrix), (100, 100), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)
    assert np.array_equal(window.image(frame), expected)


def test_a_reduced_window_averages_rather_than_aliases():
    # A fine checkerboard reduced 8 times: area averaging gives flat grey, point sampling would not.
    frame = np.zeros((1024, 1024, 3), np.uint8)
    frame[::2, ::2] = 255
    frame[1::2, 1::2] = 255
    image = Window(512.0, 512.0, 1024.0, 128).image(frame)
    assert image[8:-8, 8:-8].std() < 8
    assert abs(float(image[8:-8, 8:-8].mean()) - 127.5) < 4


def test_outside_the_frame_the_edge_is_repeated():
    frame = np.full((40, 40, 3), 200, np.uint8)
    image = Window(20.0, 20.0, 80.0, 80).image(frame)
    assert np.all(image == 200)


def test_face_angle_follows_the_synthetic_roll_convention():
    # An upright face: right eye image-left, left eye image-right, mouth below.
    right_eye, left_eye, mouth = np.array([-1.0, 0.0]), np.array([1.0, 0.0]), np.array([0.0, 1.2])
    assert face_angle(right_eye, left_eye, mouth) == pytest.approx(0.0)
    for degrees in (10, 90, 180, -90, 135):
        roll = math.radians(degrees)
        turn = np.array([[math.cos(roll), -math.sin(roll)], [math.sin(roll), math.cos(roll)]])   # clockwise on screen
        angle = face_angle(turn @ right_eye, turn @ left_eye, turn @ mouth)
        assert angle_between(angle, roll) < 1e-9
    assert quarter_turns(math.radians(80)) == 1
    assert quarter_turns(math.radians(-100)) == 3
    assert quarter_turns(math.radians(179)) == 2
    assert quarter_turns(math.radians(30)) == 0


def test_search_windows_cover_tight_crops_and_small_faces():
    # A 224 crop: one window, the frame with a border as wide as itself.
    (only,) = search_windows(224, 224, min_face_px=40)
    assert only.side == 448 and only.size == 192
    # A 1280x720 frame: the bordered frame, the frame, and tiles in which a 40 px face is 6 %.
    windows = search_windows(1280, 720, min_face_px=40)
    assert [w.side for w in windows[:2]] == [2560, 1280]
    tiles = windows[2:]
    assert tiles and all(w.side == pytest.approx(40 / 0.06) for w in tiles)
    lows = np.array([[w.centre_x - w.side / 2, w.centre_y - w.side / 2] for w in tiles])
    highs = lows + tiles[0].side
    assert lows.min(axis=0).tolist() == pytest.approx([0, 0]) and highs.max(axis=0).tolist() == pytest.approx([1280, 720])
    # Every 40 px face lies wholly inside at least one tile.
    for x in range(0, 1280 - 40, 20):
        for y in range(0, 720 - 40, 20):
            assert any(np.all(lows[i] <= [x, y]) and np.all(highs[i] >= [x + 40, y + 40]) for i in range(len(tiles)))


def test_suppress_keeps_the_best_detection_of_each_face():
    keypoints = np.zeros((6, 2))
    a = Detection((100, 100, 160, 160), keypoints, 0.9)
    a_seen_wrongly = Detection((80, 80, 190, 190), keypoints, 0.6)      # the same face, a larger box
    b = Detection((300, 100, 340, 140), keypoints, 0.7)
    assert overlap(a.box, a_seen_wrongly.box) == 1.0
    assert suppress([a_seen_wrongly, b, a]) == [a, b]
