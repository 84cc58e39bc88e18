"""FLAME's forward model as pure tensor functions: blend shapes, joint regression, pose
correctives, the kinematic chain and linear blend skinning.

Shapes use B = batch, V = vertices, J = joints, K = blend-shape components, P = pose features
(9 · (J − 1)). Rotations are axis-angle vectors in radians or 3 × 3 matrices; lengths are in the
model's units (metres for FLAME). Nothing here holds state; :mod:`.model` owns the buffers.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

_SMALL_ANGLE_SQ = 1e-10
"""Below this squared angle (radians²) the Rodrigues coefficients use their Taylor series."""


def axis_angle_to_matrix(rotvec: Tensor) -> Tensor:
    """Rodrigues' formula, ``... x 3`` axis-angle (radians) → ``... x 3 x 3`` rotation matrices.

    Written as R = I + a·[r]× + b·[r]×² with a = sin θ / θ and b = (1 − cos θ) / θ², with Taylor
    series near θ = 0, so it is exact to rounding there and its gradient at zero is finite (a fit
    starting from the neutral pose needs that).
    """
    angle_sq = (rotvec * rotvec).sum(-1, keepdim=True)
    small = angle_sq < _SMALL_ANGLE_SQ
    safe_sq = torch.where(small, torch.ones_like(angle_sq), angle_sq)
    angle = safe_sq.sqrt()
    a = torch.where(small, 1.0 - angle_sq / 6.0, torch.sin(angle) / angle)
    b = torch.where(small, 0.5 - angle_sq / 24.0, 2.0 * torch.sin(0.5 * angle) ** 2 / safe_sq)
    x, y, z = rotvec.unbind(-1)
    zero = torch.zeros_like(x)
    cross = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).unflatten(-1, (3, 3))
    eye = torch.eye(3, dtype=rotvec.dtype, device=rotvec.device)
    return eye + a[..., None] * cross + b[..., None] * (cross @ cross)


def blend_shapes(coefficients: Tensor, directions: Tensor) -> Tensor:
    """Vertex offsets ``B x V x 3`` = Σ_k coefficients[b, k] · directions[v, :, k].

    coefficients: ``B x K``; directions: ``V x 3 x K``.
    """
    return torch.einsum("bk,vck->bvc", coefficients, directions)


def regress_joints(regressor: Tensor, vertices: Tensor) -> Tensor:
    """Joint locations ``B x J x 3`` from vertices ``B x V x 3`` with a ``J x V`` regressor."""
    return torch.einsum("jv,bvc->bjc", regressor, vertices)


def pose_features(rotations: Tensor) -> Tensor:
    """Pose-corrective features ``B x 9(J − 1)``: the entries of (R_j − I), row-major, for every
    joint but the root. rotations: ``B x J x 3 x 3``."""
    eye = torch.eye(3, dtype=rotations.dtype, device=rotations.device)
    return (rotations[:, 1:] - eye).flatten(1)


def pose_correctives(features: Tensor, posedirs: Tensor) -> Tensor:
    """Vertex offsets ``B x V x 3`` from features ``B x P`` and FLAME's ``V x 3 x P`` posedirs."""
    return torch.einsum("bp,vcp->bvc", features, posedirs)


def rigid_transforms(rotations: Tensor, joints: Tensor, parents: Sequence[int]) -> tuple[Tensor, Tensor]:
    """Walk the kinematic tree.

    rotations: ``B x J x 3 x 3``, each joint's rotation relative to its parent;
    joints: ``B x J x 3`` rest-pose joint locations; parents: J entries, −1 for the root, every
    other parent earlier in the list.

    Returns (posed joints ``B x J x 3``, skinning transforms ``B x J x 4 x 4``): transform j maps
    a rest-pose point rigidly attached to joint j to its posed location.
    """
    world_rotations: list[Tensor] = []
    world_joints: list[Tensor] = []
    for j, parent in enumerate(parents):
        if parent < 0:
            world_rotations.append(rotations[:, j])
            world_joints.append(joints[:, j])
        else:
            offset = (joints[:, j] - joints[:, parent]).unsqueeze(-1)
            world_rotations.append(world_rotations[parent] @ rotations[:, j])
            world_joints.append(world_joints[parent] + (world_rotations[parent] @ offset).squeeze(-1))
    rotation = torch.stack(world_rotations, dim=1)
    posed_joints = torch.stack(world_joints, dim=1)
    translation = posed_joints - (rotation @ joints.unsqueeze(-1)).squeeze(-1)
    top = torch.cat([rotation, translation.unsqueeze(-1)], dim=-1)
    bottom = torch.zeros_like(top[..., :1, :])
    bottom[..., 0, 3] = 1.0
    return posed_joints, torch.cat([top, bottom], dim=-2)


def skin_vertices(vertices: Tensor, weights: Tensor, transforms: Tensor) -> Tensor:
    """Linear blend skinning: each vertex ``B x V x 3`` moved by its weighted (``V x J``) blend
    of the joints' ``B x J x 4 x 4`` transforms."""
    blended = torch.einsum("vj,bjrc->bvrc", weights, transforms[:, :, :3, :])
    return (blended[..., :3] @ vertices.unsqueeze(-1)).squeeze(-1) + blended[..., 3]


def linear_blend_skinning(coefficients: Tensor, pose: Tensor, v_template: Tensor, shapedirs: Tensor,
                          posedirs: Tensor, regressor: Tensor, parents: Sequence[int],
                          weights: Tensor) -> tuple[Tensor, Tensor]:
    """The whole FLAME/SMPL forward pass.

    coefficients: ``B x K`` (shape then expression); pose: ``B x J x 3`` axis-angle, radians;
    v_template: ``V x 3``; shapedirs: ``V x 3 x K``; posedirs: ``V x 3 x P``; regressor:
    ``J x V``; weights: ``V x J``.

    Returns (vertices ``B x V x 3``, posed joints ``B x J x 3``).
    """
    shaped = v_template + blend_shapes(coefficients, shapedirs)
    joints = regress_joints(regressor, shaped)
    rotations = axis_angle_to_matrix(pose)
    posed = shaped + pose_correctives(pose_features(rotations), posedirs)
    posed_joints, transforms = rigid_transforms(rotations, joints, parents)
    return skin_vertices(posed, weights, transforms), posed_joints
