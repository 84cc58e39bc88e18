import numpy as np
import pytest

from pseudo3d.smoothing import SmoothingSpec, savgol_smooth, smooth_group, smooth_rotations


def test_linear_and_rotation_kinds_use_their_smoothers():
    rng = np.random.default_rng(0)
    spec = SmoothingSpec(window_s=0.3, polyorder=3)
    expression = rng.normal(size=(50, 10))
    pose = rng.normal(scale=0.1, size=(50, 3))
    np.testing.assert_array_equal(smooth_group(expression, spec, 25.0), savgol_smooth(expression, 0.3, 25.0, 3))
    np.testing.assert_array_equal(smooth_group(pose, spec, 25.0, kind="rotation"), smooth_rotations(pose, 0.3, 25.0, 3))
    assert not np.allclose(smooth_group(expression, spec, 25.0), expression)


def test_disabled_spec_returns_an_unchanged_copy():
    x = np.random.default_rng(1).normal(size=(20, 3))
    out = smooth_group(x, SmoothingSpec(enabled=False), 25.0, kind="rotation")
    np.testing.assert_array_equal(out, x)
    assert not np.shares_memory(out, x)


def test_unknown_kind_is_rejected_by_name():
    with pytest.raises(ValueError, match="kind must be one of"):
        smooth_group(np.zeros((10, 3)), SmoothingSpec(), 25.0, kind="quaternion")
