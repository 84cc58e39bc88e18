"""DECA's weak-perspective camera and the crop ↔ image mappings (pure tensor math).

A FLAME point ``X`` (metres; x to the subject's left, y up, z to the viewer) lands in the
``S × S`` face crop at ``ndc = s · (X_xy + [tx, ty])`` with y flipped, then
``pixel = ndc · S/2 + S/2`` — DECA's convention, with ``camera = (s, tx, ty)``. The crop itself
came from the image by the frame's ``crop_transform`` (2×3, image pixels → crop pixels), so
inverting that transform puts projected landmarks back into image pixels.
"""

from __future__ import annotations

import torch
from torch import Tensor


def project_to_crop(points: Tensor, camera: Tensor, crop_size: int = 224) -> Tensor:
    """(B, L, 3) FLAME points and (B, 3) cameras → (B, L, 2) crop pixels."""
    scale, shift = camera[:, None, :1], camera[:, None, 1:]
    ndc = scale * (points[..., :2] + shift)
    half = crop_size / 2.0
    return torch.stack([ndc[..., 0] * half + half, -ndc[..., 1] * half + half], dim=-1)


def crop_to_image(points: Tensor, transforms: Tensor) -> Tensor:
    """(B, L, 2) crop pixels → (B, L, 2) image pixels, undoing (B, 2, 3) crop transforms."""
    linear, offset = transforms[:, :, :2], transforms[:, :, 2]
    return torch.linalg.solve(linear[:, None], (points - offset[:, None, :])[..., None])[..., 0]


def image_to_crop(points: Tensor, transforms: Tensor) -> Tensor:
    """(B, L, 2) image pixels → (B, L, 2) crop pixels by (B, 2, 3) crop transforms."""
    return torch.einsum("bij,blj->bli", transforms[:, :, :2], points) + transforms[:, None, :, 2]


def reprojection_error(projected: Tensor, tracked: Tensor) -> Tensor:
    """Mean Euclidean distance per frame between (B, L, 2) point sets, in their pixel units → (B,)."""
    return torch.linalg.norm(projected - tracked, dim=-1).mean(dim=-1)
