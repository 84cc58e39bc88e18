"""DECA's coarse encoder (``E_flame``): a face crop → FLAME shape, expression, pose, camera codes.

Architecture: :class:`~pseudo3d.reconstruction.deca.resnet.ResNet50` features (2048) →
Linear(2048, 1024) → ReLU → Linear(1024, 236), the raw vector cut by
:func:`~pseudo3d.reconstruction.deca.codes.split_codes`. The attribute names ``encoder`` (the
backbone) and ``layers`` (the regressor; its Linear layers are ``layers.0`` and ``layers.2``)
are the key prefixes in the checkpoint, so the official weights load with ``strict=True``.

Input: (B, 3, 224, 224) float RGB in [0, 1], as DECA trains and tests: a square crop around the
face (see :mod:`pseudo3d.pipelines.crops`), divided by 255, no mean/std normalisation.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from pseudo3d.files import file_sha256
from pseudo3d.reconstruction.deca.checkpoint import load_deca_state_dict
from pseudo3d.reconstruction.deca.codes import N_CODES, split_codes
from pseudo3d.reconstruction.deca.resnet import FEATURE_SIZE, ResNet50
from pseudo3d.reconstruction.device import place_module
from pseudo3d.reconstruction.torch_checkpoint import module_with_state

IMAGE_SIZE = 224
"""Side of the square crops DECA's encoder was trained on, pixels."""
HIDDEN_SIZE = 1024
"""Width of the regressor's hidden layer."""


class DecaEncoder(nn.Module):
    """Images (B, 3, 224, 224) RGB in [0, 1] → DECA codes (see :data:`CODE_LAYOUT`).

    Build it with :meth:`from_checkpoint`; the bare constructor gives random weights (used to
    write synthetic checkpoints and to check a checkpoint's key names and shapes).
    """

    def __init__(self) -> None:
        super().__init__()
        self.encoder = ResNet50()
        self.layers = nn.Sequential(
            nn.Linear(FEATURE_SIZE, HIDDEN_SIZE),
            nn.ReLU(),
            nn.Linear(HIDDEN_SIZE, N_CODES),
        )
        self.asset_hashes: dict[str, str] = {}
        """Asset name → SHA-256 of the files the weights came from (empty for random weights)."""

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str | torch.device | None = None) -> "DecaEncoder":
        """The encoder with ``E_flame`` from DECA's ``deca_model.tar`` (or a synthetic one),
        on ``device`` (None: CUDA when available, else CPU), in eval mode, without gradients;
        on CUDA its weights are in channels_last format, the layout cuDNN runs fastest and
        :func:`~pseudo3d.reconstruction.device.uint8_crops_to_device` delivers.

        Raises :class:`~pseudo3d.errors.AssetError` naming the file when it is missing, not a
        torch checkpoint, or its ``E_flame`` does not match this architecture.
        """
        encoder = module_with_state(cls, load_deca_state_dict(path))
        encoder.asset_hashes = {"deca_checkpoint": file_sha256(path)}
        return place_module(encoder, device)

    def raw_codes(self, images: torch.Tensor) -> torch.Tensor:
        """Images (B, 3, 224, 224) in [0, 1] → the raw code vector (B, 236), in the dtype the
        computation ran in (bfloat16 under CUDA autocast)."""
        if images.ndim != 4 or tuple(images.shape[1:]) != (3, IMAGE_SIZE, IMAGE_SIZE):
            raise ValueError(f"DECA encoder images must have shape (B, 3, {IMAGE_SIZE}, {IMAGE_SIZE}), "
                             f"got {tuple(images.shape)}")
        if not images.is_floating_point():
            raise ValueError(f"DECA encoder images must be float RGB in [0, 1], got dtype {images.dtype}")
        return self.layers(self.encoder(images))

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Images (B, 3, 224, 224) in [0, 1] → float32 codes ``shape`` (B, 100), ``tex`` (B, 50),
        ``exp`` (B, 50), ``pose`` (B, 6), ``cam`` (B, 3), ``light`` (B, 9, 3), on the images'
        device."""
        return split_codes(self.raw_codes(images).float())
