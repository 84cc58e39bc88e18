"""Checking a backend's assets once, in the process that starts a build, before any worker loads
them: a missing or wrong file then stops the command with a message naming it, instead of
failing every source in every worker."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pseudo3d.errors import AssetError
from pseudo3d.reconstruction.asset_files import asset_option

if TYPE_CHECKING:
    from pseudo3d.config import BuildConfig


def check_flame_assets(config: "BuildConfig", n_shape: int, n_expression: int, *, need_mediapipe: bool) -> None:
    from pseudo3d.reconstruction.assets import (MediaPipeEmbedding, check_embedding_fits, load_flame_model,
                                                load_landmark_embedding)

    options = config.reconstruct
    assets = load_flame_model(asset_option(options.flame_model, "flame_model"))
    if assets.n_shape_available < n_shape or assets.n_expression_available < n_expression:
        raise AssetError(f"FLAME model {options.flame_model} holds {assets.n_shape_available} shape and "
                         f"{assets.n_expression_available} expression components; the build asks for "
                         f"{n_shape} and {n_expression}")
    if options.landmark_embedding is None:
        return
    embedding = load_landmark_embedding(options.landmark_embedding)
    check_embedding_fits(embedding, assets)
    if need_mediapipe and not isinstance(embedding, MediaPipeEmbedding):
        raise AssetError(f"landmark embedding {options.landmark_embedding}: backend {config.backend} fits the "
                         "tracked MediaPipe landmarks and needs the MediaPipe layout "
                         "(mediapipe_landmark_embedding.npz: lmk_face_idx, lmk_b_coords, landmark_indices)")


def check_deca(config: "BuildConfig") -> None:
    from pseudo3d.reconstruction.deca import load_deca_state_dict

    check_flame_assets(config, 100, 50, need_mediapipe=False)
    load_deca_state_dict(asset_option(config.reconstruct.deca_checkpoint, "deca_checkpoint"))


def check_spectre(config: "BuildConfig") -> None:
    from pseudo3d.reconstruction.spectre import load_spectre_state_dicts

    check_flame_assets(config, 100, 50, need_mediapipe=False)
    load_spectre_state_dicts(asset_option(config.reconstruct.spectre_checkpoint, "spectre_checkpoint"))


def check_flame_fit(config: "BuildConfig") -> None:
    check_flame_assets(config, config.reconstruct.n_shape, config.reconstruct.n_expression, need_mediapipe=True)
