import numpy as np
import pytest
from scipy.signal import savgol_filter

from pseudo3d.smoothing.savgol import savgol_smooth, window_frames


@pytest.mark.parametrize(
    ("window_s", "fps", "polyorder", "frames"),
    [
        (0.2, 25, 2, 5),  # 5.0 frames, already odd
        (0.2, 30, 2, 7),  # 6.0: a tie between 5 and 7 rounds up
        (0.2, 50, 2, 11),  # 10.0 -> 11 (tie up)
        (0.2, 60, 2, 13),  # 12.0 -> 13 (tie up)
        (0.18, 25, 2, 5),  # 4.5 -> 5 (nearest odd)
        (0.23, 25, 2, 5),  # 5.75 -> 5 (nearest odd)
        (0.25, 25, 2, 7),  # 6.25 -> 7 (nearest odd)
        (0.5, 25, 3, 13),  # 12.5 -> 13
        (0.1, 25, 2, 5),  # 2.5 -> 3, raised to the smallest window that smooths (>= polyorder + 2)
        (0.04, 25, 0, 3),  # 1 frame, raised to 3 for polyorder 0
        (0.2, 25, 4, 7),  # 5, raised to 7 for polyorder 4
        (0.2, 25, 5, 7),  # 5, raised to 7 for polyorder 5
    ],
)
def test_window_conversion_table(window_s, fps, polyorder, frames):
    assert window_frames(window_s, fps, polyorder) == frames


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"window_s": -1.0}, "window_s must be > 0 seconds, got -1"),
        ({"window_s": 0.0}, "window_s"),
        ({"window_s": float("nan")}, "window_s"),
        ({"fps": 0.0}, "fps must be > 0"),
        ({"fps": float("inf")}, "fps"),
        ({"polyorder": -1}, "polyorder"),
        ({"polyorder": 2.0}, "polyorder"),
    ],
)
def test_invalid_settings_raise_value_error_naming_the_option(kwargs, name):
    settings = {"window_s": 0.2, "fps": 25.0, "polyorder": 2} | kwargs
    with pytest.raises(ValueError, match=name):
        window_frames(**settings)
    with pytest.raises(ValueError, match=name):
        savgol_smooth(np.zeros((50, 2)), **settings)


def test_polynomials_up_to_polyorder_pass_unchanged():
    t = np.linspace(-1.0, 2.0, 40)
    x = np.stack([3.0 + 0.5 * t - 2.0 * t**2, -t], axis=1)
    np.testing.assert_allclose(savgol_smooth(x, 0.3, 25, 2), x, atol=1e-12)


def test_matches_scipy_with_the_converted_window_on_any_trailing_shape():
    x = np.random.default_rng(0).normal(size=(60, 4, 3))
    smoothed = savgol_smooth(x, 0.2, 30, 2)
    assert smoothed.shape == x.shape and smoothed.dtype == np.float64
    np.testing.assert_allclose(smoothed, savgol_filter(x, 7, 2, axis=0, mode="interp"))


def test_jitter_is_reduced_while_the_signal_is_kept():
    fps = 25.0
    t = np.arange(250) / fps
    clean = np.sin(2 * np.pi * 0.5 * t)
    raw = clean + np.random.default_rng(1).normal(scale=0.3, size=t.shape)
    smoothed = savgol_smooth(raw, 0.2, fps, 2)

    def second_difference_rms(signal):
        return np.sqrt(np.mean(np.diff(signal, n=2) ** 2))

    assert second_difference_rms(smoothed) < 0.5 * second_difference_rms(raw)
    assert np.corrcoef(raw, clean)[0, 1] < 0.95
    assert np.corrcoef(smoothed, clean)[0, 1] > 0.95


def test_short_clip_shrinks_the_window():
    x = np.random.default_rng(2).normal(size=(6, 2))
    # 0.2 s at 30 fps is 7 frames; 6 frames shrink it to 5.
    np.testing.assert_allclose(savgol_smooth(x, 0.2, 30, 2), savgol_filter(x, 5, 2, axis=0, mode="interp"))


@pytest.mark.parametrize("n_frames", [0, 1, 2, 3, 4])
def test_clip_too_short_to_smooth_is_returned_as_a_copy(n_frames):
    x = np.random.default_rng(3).normal(size=(n_frames, 3))
    smoothed = savgol_smooth(x, 0.2, 25, 2)
    np.testing.assert_array_equal(smoothed, x)
    assert not np.shares_memory(smoothed, x)


def test_scalar_input_has_no_time_axis():
    with pytest.raises(ValueError, match="x must have a time axis"):
        savgol_smooth(1.0, 0.2, 25, 2)
