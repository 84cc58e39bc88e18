import numpy as np
import pytest

from pseudo3d.geometry.rotations import axis_angle_to_matrix, geodesic_angle
from pseudo3d.smoothing.gaps import interpolate_gaps, interpolate_rotation_gaps


def linear_signal(n_frames):
    t = np.arange(n_frames, dtype=np.float64)
    return np.stack([2.0 + 0.5 * t, -3.0 * t], axis=1)


def test_short_gaps_are_filled_exactly_for_linear_signals_and_long_gaps_split():
    truth = linear_signal(30)
    valid = np.ones(30, dtype=bool)
    valid[0] = False  # leading
    valid[4:6] = False  # gap of 2: filled
    valid[9] = False  # gap of 1: filled
    valid[12:20] = False  # gap of 8: splits
    valid[27:] = False  # trailing
    corrupted = np.where(valid[:, None], truth, np.nan)

    filled, interpolated, segments = interpolate_gaps(corrupted, valid, max_gap=3)

    expected_mask = np.zeros(30, dtype=bool)
    expected_mask[[4, 5, 9]] = True
    np.testing.assert_array_equal(interpolated, expected_mask)
    np.testing.assert_allclose(filled[expected_mask], truth[expected_mask], atol=1e-12)
    np.testing.assert_array_equal(filled[valid], truth[valid])
    assert segments == [(1, 12), (20, 27)]
    # Frames outside every segment are left as they were.
    assert np.all(np.isnan(filled[[0, 12, 19, 27, 29]]))
    assert np.all(np.isnan(corrupted[4]))  # the input is not modified


def test_gap_of_exactly_max_gap_is_filled_and_one_longer_is_not():
    truth = linear_signal(12)
    valid = np.ones(12, dtype=bool)
    valid[2:5] = False  # 3 frames
    filled, interpolated, segments = interpolate_gaps(truth, valid, max_gap=3)
    assert interpolated.sum() == 3 and segments == [(0, 12)]
    filled, interpolated, segments = interpolate_gaps(truth, valid, max_gap=2)
    assert not interpolated.any() and segments == [(0, 2), (5, 12)]


def test_all_valid_all_invalid_and_empty():
    x = np.random.default_rng(0).normal(size=(8, 2, 3))
    filled, interpolated, segments = interpolate_gaps(x, np.ones(8, dtype=bool), max_gap=2)
    np.testing.assert_array_equal(filled, x)
    assert not interpolated.any() and segments == [(0, 8)]
    filled, interpolated, segments = interpolate_gaps(x, np.zeros(8, dtype=bool), max_gap=2)
    assert not interpolated.any() and segments == []
    filled, interpolated, segments = interpolate_gaps(np.zeros((0, 3)), np.zeros(0, dtype=bool), max_gap=2)
    assert filled.shape == (0, 3) and interpolated.shape == (0,) and segments == []


def test_max_gap_zero_only_splits():
    valid = np.array([True, False, True, True, False, True])
    _, interpolated, segments = interpolate_gaps(linear_signal(6), valid, max_gap=0)
    assert not interpolated.any()
    assert segments == [(0, 1), (2, 4), (5, 6)]


def test_multidimensional_frames_are_interpolated():
    t = np.arange(10, dtype=np.float64)
    x = t[:, None, None] * np.arange(6, dtype=np.float64).reshape(1, 2, 3)
    valid = np.ones(10, dtype=bool)
    valid[3:5] = False
    filled, _, _ = interpolate_gaps(np.where(valid[:, None, None], x, 0.0), valid, max_gap=2)
    np.testing.assert_allclose(filled, x, atol=1e-12)


@pytest.mark.parametrize(
    ("valid", "max_gap", "message"),
    [
        (np.ones(5, dtype=bool), -1, "max_gap"),
        (np.ones(5, dtype=bool), 1.5, "max_gap"),
        (np.ones(4, dtype=bool), 1, r"valid must be a boolean array of shape \(5,\)"),
        (np.ones(5, dtype=int), 1, "valid must be a boolean"),
    ],
)
def test_invalid_arguments_raise_value_error_naming_them(valid, max_gap, message):
    with pytest.raises(ValueError, match=message):
        interpolate_gaps(np.zeros((5, 2)), valid, max_gap)


def test_rotation_gaps_follow_the_geodesic_even_across_a_half_turn():
    axis = np.array([0.0, 0.6, 0.8])
    angles = np.linspace(2.8, 3.6, 17)  # passes through pi, so canonical rotvecs flip sign mid-gap
    canonical = np.where(angles[:, None] <= np.pi, angles[:, None] * axis, (angles[:, None] - 2 * np.pi) * axis)
    valid = np.ones(17, dtype=bool)
    valid[5:12] = False
    valid[14:16] = False
    observed = np.where(valid[:, None], canonical, np.nan)
    filled, interpolated, segments = interpolate_rotation_gaps(observed, valid, max_gap=7)
    np.testing.assert_array_equal(interpolated, ~valid)
    assert segments == [(0, 17)]
    truth = axis_angle_to_matrix(angles[:, None] * axis)
    np.testing.assert_allclose(geodesic_angle(axis_angle_to_matrix(filled), truth), 0.0, atol=1e-9)
    np.testing.assert_array_equal(filled[valid], canonical[valid])
    assert np.all(np.linalg.norm(filled[interpolated], axis=1) <= np.pi + 1e-12)


def test_rotation_gaps_split_like_linear_gaps():
    valid = np.array([False, True, True, False, False, False, True, True])
    rotvec = np.random.default_rng(1).normal(scale=0.2, size=(8, 3))
    filled, interpolated, segments = interpolate_rotation_gaps(rotvec, valid, max_gap=2)
    assert not interpolated.any() and segments == [(1, 3), (6, 8)]
    np.testing.assert_array_equal(filled, rotvec)
    with pytest.raises(ValueError, match=r"rotvec must have shape \(T, ..., 3\)"):
        interpolate_rotation_gaps(np.zeros((8, 4)), valid, max_gap=2)
