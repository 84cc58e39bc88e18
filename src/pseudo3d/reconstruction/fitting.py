"""Fitting FLAME to a clip's tracked landmarks: the pieces of the ``flame-fit`` backend.

* :class:`LandmarkFlame`: FLAME restricted to the vertices the MediaPipe landmark embedding
  touches, plus one virtual vertex per joint whose template position and shape directions are the
  regressed joint's. Joints, and so every landmark, come out exactly as from the full model at a
  fraction of the cost (a few hundred vertices instead of FLAME's 5023).
* :func:`fit_sequence`: batched optimisation over all frames of a clip at once: one identity
  shape for the clip; per frame expression, jaw, global rotation and a weak-perspective camera;
  Gaussian priors on the coefficients and a second-difference temporal term that ties frames.

Units: the targets and predictions are in DECA's normalised crop coordinates (``ndc``: the
224-pixel crop spans [−1, 1], y up), so the loss weights do not depend on the video's resolution.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from pseudo3d.config import FitConfig
from pseudo3d.reconstruction.assets import N_JOINTS
from pseudo3d.reconstruction.flame import FlameModel
from pseudo3d.reconstruction.flame.landmarks import barycentric_points
from pseudo3d.reconstruction.flame.lbs import linear_blend_skinning



class LandmarkFlame(nn.Module):
    """The landmark-producing part of a ``FlameModel`` with a MediaPipe embedding.

    ``forward(coefficients B x K, pose B x 5 x 3) -> landmarks B x L x 3`` (metres), where
    coefficients are shape then expression, as in the full model.
    """

    # Buffers (registered in __init__), declared for the type checker: nn.Module's __getattr__ is untyped.
    v_template: Tensor
    shapedirs: Tensor
    posedirs: Tensor
    lbs_weights: Tensor
    J_regressor: Tensor
    faces: Tensor
    bary: Tensor

    def __init__(self, model: FlameModel):
        super().__init__()
        if model.landmark_kind != "mediapipe":
            raise ValueError(f"fitting needs a MediaPipe landmark embedding; the model has {model.landmark_kind!r}")
        corners = model.faces[model.landmark_faces]  # L x 3 vertex ids
        used, local = torch.unique(corners, return_inverse=True)
        n_used = used.numel()
        joint_template = model.J_regressor @ model.v_template  # 5 x 3
        joint_dirs = torch.einsum("jv,vck->jck", model.J_regressor, model.shapedirs)  # 5 x 3 x K
        posedirs = model.posedirs[used]
        weights = model.lbs_weights[used]
        regressor = torch.zeros(N_JOINTS, n_used + N_JOINTS, dtype=model.v_template.dtype)
        regressor[:, n_used:] = torch.eye(N_JOINTS, dtype=model.v_template.dtype)
        self.register_buffer("v_template", torch.cat([model.v_template[used], joint_template]))
        self.register_buffer("shapedirs", torch.cat([model.shapedirs[used], joint_dirs]))
        self.register_buffer("posedirs", torch.cat([posedirs, posedirs.new_zeros(N_JOINTS, *posedirs.shape[1:])]))
        self.register_buffer("lbs_weights", torch.cat([weights, weights.new_zeros(N_JOINTS, weights.shape[1])]))
        self.register_buffer("J_regressor", regressor)
        self.register_buffer("faces", local.reshape(corners.shape))
        self.register_buffer("bary", model.landmark_bary.clone())
        self.parents = model.parents
        self.n_shape, self.n_expression = model.n_shape, model.n_expression

    def forward(self, coefficients: Tensor, pose: Tensor) -> Tensor:
        vertices, _ = linear_blend_skinning(coefficients, pose, self.v_template, self.shapedirs, self.posedirs,
                                            self.J_regressor, self.parents, self.lbs_weights)
        face_index = torch.arange(self.faces.shape[0], device=vertices.device)
        return barycentric_points(vertices, self.faces, face_index, self.bary)


@dataclass
class FitResult:
    shape: Tensor
    """(n_shape,) identity coefficients shared by the clip."""
    expression: Tensor
    """(T, n_expression)."""
    jaw_pose: Tensor
    """(T, 3) axis-angle, radians."""
    global_pose: Tensor
    """(T, 3) axis-angle, radians (FLAME's frame: x left, y up, z to the viewer)."""
    camera: Tensor
    """(T, 3) DECA's weak-perspective (s, tx, ty): ndc = s · (X_xy + [tx, ty])."""
    landmarks_ndc: Tensor
    """(T, L, 2) fitted landmarks in ndc."""


def _second_difference(values: Tensor) -> Tensor:
    if values.shape[0] < 3:
        return values.new_zeros(())
    return (values[2:] - 2 * values[1:-1] + values[:-2]).pow(2).sum(-1).mean()


def fit_sequence(model: LandmarkFlame, target_xy: Tensor, target_depth: Tensor, init_global_pose: Tensor,
                 init_scale: Tensor, settings: FitConfig) -> FitResult:
    """Fit one clip with ``settings`` (``reconstruct.fit``: steps, step size and loss weights;
    targets in ndc units, coefficients in FLAME's unit-variance units; the temporal weight is the
    second-difference penalty on expression, jaw, global rotation and camera, per frame²).

    target_xy: ``T x L x 2`` landmark positions, ndc (y up); target_depth: ``T x L`` depth towards
    the viewer, ndc, any per-frame offset (it is centred); init_global_pose: ``T x 3``;
    init_scale: ``T`` camera scale (ndc per metre). First ``settings.rigid_iterations`` steps move
    only the global rotation and camera, then everything moves for ``settings.iterations`` steps (Adam).
    """
    frames, device, dtype = target_xy.shape[0], target_xy.device, target_xy.dtype
    shape = torch.zeros(model.n_shape, device=device, dtype=dtype, requires_grad=True)
    expression = torch.zeros(frames, model.n_expression, device=device, dtype=dtype, requires_grad=True)
    jaw = torch.zeros(frames, 3, device=device, dtype=dtype, requires_grad=True)
    global_pose = init_global_pose.detach().clone().requires_grad_(True)
    log_scale = init_scale.detach().log().clone().requires_grad_(True)
    offset = torch.zeros(frames, 2, device=device, dtype=dtype, requires_grad=True)
    zeros3 = torch.zeros(frames, 3, device=device, dtype=dtype)
    depth_target = target_depth - target_depth.mean(dim=1, keepdim=True)

    def landmarks() -> Tensor:
        coefficients = torch.cat([shape.expand(frames, -1), expression], dim=1)
        pose = torch.stack([global_pose, zeros3, jaw, zeros3, zeros3], dim=1)
        return model(coefficients, pose)

    def project(points: Tensor) -> tuple[Tensor, Tensor]:
        scale = log_scale.exp()[:, None, None]
        xy = scale * points[..., :2] + offset[:, None, :]
        depth = scale[..., 0] * points[..., 2]
        return xy, depth - depth.mean(dim=1, keepdim=True)

    with torch.no_grad():  # centre the camera on the targets before anything moves
        xy, _ = project(landmarks())
        offset += (target_xy - xy).mean(dim=1)

    def objective(with_expression: bool) -> Tensor:
        xy, depth = project(landmarks())
        loss = (xy - target_xy).pow(2).sum(-1).mean() + settings.depth_weight * (depth - depth_target).pow(2).mean()
        loss = loss + settings.temporal * (_second_difference(global_pose) + _second_difference(offset)
                                          + _second_difference(log_scale[:, None]))
        if with_expression:
            loss = loss + settings.shape_prior * shape.pow(2).sum() / frames
            loss = loss + settings.expression_prior * expression.pow(2).sum(-1).mean()
            loss = loss + settings.jaw_prior * jaw.pow(2).sum(-1).mean()
            loss = loss + settings.temporal * (_second_difference(expression) + _second_difference(jaw))
        return loss

    rigid = torch.optim.Adam([global_pose, log_scale, offset], lr=settings.learning_rate)
    for _ in range(settings.rigid_iterations):
        rigid.zero_grad(set_to_none=True)
        objective(with_expression=False).backward()
        rigid.step()
    everything = torch.optim.Adam([shape, expression, jaw, global_pose, log_scale, offset], lr=settings.learning_rate)
    for _ in range(settings.iterations):
        everything.zero_grad(set_to_none=True)
        objective(with_expression=True).backward()
        everything.step()

    with torch.no_grad():
        xy, _ = project(landmarks())
        scale = log_scale.exp()
        camera = torch.cat([scale[:, None], offset / scale[:, None]], dim=1)
        return FitResult(shape=shape.detach(), expression=expression.detach(), jaw_pose=jaw.detach(),
                         global_pose=global_pose.detach(), camera=camera, landmarks_ndc=xy)
