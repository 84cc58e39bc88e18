"""Landmarks on a mesh from barycentric embeddings, and DECA's yaw-dependent jaw contour.

Pure tensor functions; B = batch, V = vertices, F = faces, L = landmarks.

The contour rule (DECA's): the head's yaw is the y-angle of R_global · R_neck, read as in a
z-y-x Euler decomposition, yaw = atan2(−R[2, 0], √(R[0, 0]² + R[1, 0]²)), in whole degrees
(rounded). Yaw 0..+39° selects rows 0..39 of the contour table, −1..−39° rows 40..78, and
anything beyond either end the last row of that side. Positive yaw turns the face towards +x
(the subject's left).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

MAX_CONTOUR_YAW_DEGREES = 39


def barycentric_points(vertices: Tensor, faces: Tensor, face_index: Tensor, bary: Tensor) -> Tensor:
    """Points ``B x L x 3`` inside mesh faces.

    vertices: ``B x V x 3``; faces: ``F x 3`` (int64); face_index: ``L`` or ``B x L`` (int64);
    bary: ``L x 3`` or ``B x L x 3`` barycentric coordinates.
    """
    batch = vertices.shape[0]
    if face_index.dim() == 1:
        face_index = face_index.expand(batch, -1)
    if bary.dim() == 2:
        bary = bary.expand(batch, -1, -1)
    corner_ids = faces[face_index]  # B x L x 3
    batch_ids = torch.arange(batch, device=vertices.device).view(batch, 1, 1)
    corners = vertices[batch_ids, corner_ids]  # B x L x 3 corners x 3 coords
    return torch.einsum("blkc,blk->blc", corners, bary.to(vertices.dtype))


def yaw_degrees(rotation: Tensor) -> Tensor:
    """Yaw ``B`` in degrees of ``B x 3 x 3`` head rotations (see the module docstring)."""
    cos_pitch = torch.sqrt(rotation[:, 0, 0] ** 2 + rotation[:, 1, 0] ** 2)
    return torch.atan2(-rotation[:, 2, 0], cos_pitch) * (180.0 / math.pi)


def contour_bins(rotation: Tensor) -> Tensor:
    """Row ``B`` (int64, 0..78) of DECA's contour table for ``B x 3 x 3`` head rotations."""
    yaw = torch.round(torch.clamp(yaw_degrees(rotation), max=MAX_CONTOUR_YAW_DEGREES)).long()
    negative_row = MAX_CONTOUR_YAW_DEGREES - torch.clamp(yaw, min=-MAX_CONTOUR_YAW_DEGREES)
    return torch.where(yaw < 0, negative_row, yaw)
