"""Mappings (parsed YAML) → frozen option dataclasses, checked by name.

Unknown keys are refused with the list of known ones, values must have their field's type
(booleans are not numbers, a list becomes a tuple), and a dataclass's own ``ConfigError`` gets the
option's full dotted name, so a typo in a configuration file never falls back to a default.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, Mapping

from pseudo3d.errors import ConfigError


def dataclass_from_mapping(cls: type, data: Mapping[str, Any], prefix: str = ""):
    """Build dataclass ``cls`` (nested dataclasses included) from a mapping such as parsed YAML.

    Raises :class:`~pseudo3d.errors.ConfigError` naming the option (``prefix`` + name, e.g.
    ``limits.max_pixels``) for an unknown key, a value of the wrong type, or one the dataclass's
    own checks refuse.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(
            f"unknown option {prefix}{unknown[0]!s}; the options of "
            f"{prefix.rstrip('.') or 'the build config'} are: {', '.join(sorted(known))}")
    values = {}
    for name, raw in data.items():
        kind = hints[name]
        path = f"{prefix}{name}"
        if isinstance(kind, type) and dataclasses.is_dataclass(kind):  # a hint is a class, never an instance
            values[name] = dataclass_from_mapping(kind, raw, prefix=f"{path}.")
        else:
            values[name] = _coerce(raw, kind, path)
    try:
        return cls(**values)
    except ConfigError as exc:
        raise ConfigError(f"{prefix}{exc}" if prefix else str(exc)) from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: {exc}") from None


def _coerce(value: Any, kind: type, path: str):
    if typing.get_origin(kind) is typing.Union:  # Optional[X]
        if value is None:
            return None
        inner = [arg for arg in typing.get_args(kind) if arg is not type(None)]
        return _coerce(value, inner[0], path)
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{path} must be true or false, got {value!r}")
    if kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{path} must be an integer, got {value!r}")
    if kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{path} must be a number, got {value!r}")
    if kind is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{path} must be a string, got {value!r}")
    if typing.get_origin(kind) is tuple:
        if isinstance(value, (list, tuple)):
            inner = typing.get_args(kind)[0]
            return tuple(_coerce(item, inner, f"{path}[{i}]") for i, item in enumerate(value))
        raise ConfigError(f"{path} must be a list, got {value!r}")
    return value
