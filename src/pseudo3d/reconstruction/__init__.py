"""Reconstruction backends: tracked clips → per-frame face parameters."""

from __future__ import annotations

from typing import Callable

from pseudo3d.reconstruction.base import Reconstructor


def _mediapipe() -> Reconstructor:
    from pseudo3d.reconstruction.mediapipe_head import MediaPipeHead

    return MediaPipeHead()


BACKENDS: dict[str, Callable[[], Reconstructor]] = {"mediapipe": _mediapipe}
"""Backend name → factory. Factories import lazily so a backend's heavy dependencies load only
when it is used."""


def make_backend(name: str) -> Reconstructor:
    try:
        factory = BACKENDS[name]
    except KeyError:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}; got {name!r}") from None
    return factory()
