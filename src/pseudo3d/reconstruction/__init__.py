"""Reconstruction backends: tracked clips → per-frame face parameters.

Backends are registered here by name with what a runner must know before building one: whether
it consumes face crops (the tracker then keeps them) and whether it can use a GPU (the local
runner then reconstructs in one process, in large batches, instead of in every worker).
Factories import lazily, so a backend's heavy dependencies load only when it is used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from pseudo3d.config import BACKEND_NAMES

if TYPE_CHECKING:
    from pseudo3d.config import BuildConfig
    from pseudo3d.reconstruction.base import Reconstructor


def _no_assets(config: "BuildConfig") -> None:
    return None


@dataclass(frozen=True)
class BackendSpec:
    factory: Callable[["BuildConfig"], "Reconstructor"]
    needs_crops: bool
    gpu_capable: bool
    check_assets: Callable[["BuildConfig"], None] = _no_assets
    """Loads and checks the backend's asset files (raising AssetError), once, before a build."""
    crop: str = "deca"
    """How its encoder was trained to see a face: the crop convention
    (:data:`pseudo3d.pipelines.crops.CROP_CONVENTIONS`) of the crops it reads (and of those
    ``shards.write_crops`` stores)."""


def _mediapipe(config: "BuildConfig") -> "Reconstructor":
    from pseudo3d.reconstruction.mediapipe_head import MediaPipeHead

    return MediaPipeHead()


def _deca(config: "BuildConfig") -> "Reconstructor":
    from pseudo3d.reconstruction.deca_backend import DecaBackend

    return DecaBackend(config)


def _check_deca(config: "BuildConfig") -> None:
    from pseudo3d.reconstruction.asset_checks import check_deca

    check_deca(config)


def _spectre(config: "BuildConfig") -> "Reconstructor":
    from pseudo3d.reconstruction.spectre_backend import SpectreBackend

    return SpectreBackend(config)


def _check_spectre(config: "BuildConfig") -> None:
    from pseudo3d.reconstruction.asset_checks import check_spectre

    check_spectre(config)


def _flame_fit(config: "BuildConfig") -> "Reconstructor":
    from pseudo3d.reconstruction.flame_fit import FlameFitBackend

    return FlameFitBackend(config)


def _check_flame_fit(config: "BuildConfig") -> None:
    from pseudo3d.reconstruction.asset_checks import check_flame_fit

    check_flame_fit(config)


_SPECS = {
    "mediapipe": BackendSpec(_mediapipe, needs_crops=False, gpu_capable=False),
    "deca": BackendSpec(_deca, needs_crops=True, gpu_capable=True, check_assets=_check_deca),
    "spectre": BackendSpec(_spectre, needs_crops=True, gpu_capable=True, check_assets=_check_spectre, crop="spectre"),
    "flame-fit": BackendSpec(_flame_fit, needs_crops=False, gpu_capable=True, check_assets=_check_flame_fit),
}
BACKENDS: dict[str, BackendSpec] = {name: _SPECS[name] for name in BACKEND_NAMES}
"""Backend name → its spec, for every name the configuration accepts (``config.BACKEND_NAMES``)."""


def make_backend(config: "BuildConfig") -> "Reconstructor":
    return BACKENDS[config.backend].factory(config)
