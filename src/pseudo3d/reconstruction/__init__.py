"""Reconstruction backends: tracked clips → per-frame face parameters.

Backends are registered here by name with what a runner must know before building one: whether
it consumes face crops (the tracker then keeps them) and whether it can use a GPU (the local
runner then reconstructs in one process, in large batches, instead of in every worker).
Factories import lazily, so a backend's heavy dependencies load only when it is used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from pseudo3d.config import BuildConfig
    from pseudo3d.reconstruction.base import Reconstructor


@dataclass(frozen=True)
class BackendSpec:
    factory: Callable[["BuildConfig"], "Reconstructor"]
    needs_crops: bool
    gpu_capable: bool


def _mediapipe(config: "BuildConfig") -> "Reconstructor":
    from pseudo3d.reconstruction.mediapipe_head import MediaPipeHead

    return MediaPipeHead()


def _deca(config: "BuildConfig") -> "Reconstructor":
    from pseudo3d.reconstruction.deca_backend import DecaBackend

    return DecaBackend(config)


BACKENDS: dict[str, BackendSpec] = {
    "mediapipe": BackendSpec(_mediapipe, needs_crops=False, gpu_capable=False),
    "deca": BackendSpec(_deca, needs_crops=True, gpu_capable=True),
}


def make_backend(config: "BuildConfig") -> "Reconstructor":
    return BACKENDS[config.backend].factory(config)
