import pytest

from pseudo3d.errors import ConfigError
from pseudo3d.smoothing.config import SmoothingSpec


def test_defaults():
    spec = SmoothingSpec()
    assert (spec.window_s, spec.polyorder, spec.enabled) == (0.2, 2, True)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"window_s": -1}, "window_s must be > 0 seconds, got -1"),
        ({"window_s": 0.0}, "window_s must be > 0 seconds"),
        ({"window_s": float("inf")}, "window_s"),
        ({"window_s": "0.2"}, "window_s must be a number"),
        ({"polyorder": 6}, r"polyorder must be in \[0, 5\], got 6"),
        ({"polyorder": -1}, "polyorder"),
        ({"polyorder": 2.5}, "polyorder must be an integer"),
        ({"enabled": "yes"}, "enabled"),
    ],
)
def test_bad_fields_raise_value_error_naming_the_field(kwargs, message):
    with pytest.raises(ValueError, match=message) as raised:
        SmoothingSpec(**kwargs)
    assert isinstance(raised.value, ConfigError)


def test_spec_is_frozen():
    spec = SmoothingSpec(window_s=0.3, polyorder=3, enabled=False)
    with pytest.raises(AttributeError):
        spec.window_s = 1.0
