"""Fitting FLAME to a clip's tracked landmarks: the pieces of the ``flame-fit`` backend.

* :class:`LandmarkFlame`: FLAME restricted to the vertices the MediaPipe landmark embedding
  touches, plus one virtual vertex per joint whose template position and shape directions are the
  regressed joint's. Joints, and so every landmark, come out exactly as from the full model at a
  fraction of the cost (a few hundred vertices instead of FLAME's 5023).
* :func:`fit_sequences`: one batched optimisation over all frames of many clips at once: one
  identity shape per clip; per frame expression, jaw, global rotation and a weak-perspective
  camera; Gaussian priors on the coefficients and a second-difference temporal term that ties a
  clip's frames.

Units: the targets and predictions are in DECA's normalised crop coordinates (``ndc``: the
224-pixel crop spans [−1, 1], y up), so the loss weights do not depend on the video's resolution.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

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


PROGRESS_STEPS = 20
"""Optimisation steps between two calls of ``fit_sequences``'s ``progress``."""


class _Clips:
    """Which clip each packed frame belongs to, and per-clip means of per-frame terms."""

    def __init__(self, lengths: list[int], device: torch.device):
        self.count = len(lengths)
        self.frames = torch.tensor(lengths, device=device)
        self.index = torch.repeat_interleave(torch.arange(self.count, device=device), self.frames)
        inner = self.index[1:-1]
        # second differences only over three frames of one clip
        self.triple = (self.index[:-2] == inner) & (inner == self.index[2:]) if len(self.index) >= 3 else None

    def mean(self, per_frame: Tensor) -> Tensor:
        """(N,) per-frame values → (K,) their mean over each clip's frames."""
        return per_frame.new_zeros(self.count).index_add(0, self.index, per_frame) / self.frames

    def second_difference(self, values: Tensor) -> Tensor:
        """(K,) mean squared second difference of ``values`` (N, D) over each clip's inner frames
        (0 for a clip of fewer than three frames)."""
        if self.triple is None:
            return values.new_zeros(self.count)
        squared = (values[2:] - 2 * values[1:-1] + values[:-2]).pow(2).sum(-1) * self.triple
        owner = self.index[1:-1]
        total = values.new_zeros(self.count).index_add(0, owner, squared)
        inner = values.new_zeros(self.count).index_add(0, owner, self.triple.to(values.dtype))
        return total / inner.clamp_min(1)


def fit_sequences(model: LandmarkFlame, target_xy: Tensor, target_depth: Tensor, init_global_pose: Tensor,
                  init_scale: Tensor, lengths: list[int], settings: FitConfig,
                  progress: Callable[[], None] = lambda: None) -> list[FitResult]:
    """Fit clips packed one after another (``lengths`` frames each) with ``settings``
    (``reconstruct.fit``: steps, step size and loss weights; targets in ndc units, coefficients in
    FLAME's unit-variance units; the temporal weight is the second-difference penalty on
    expression, jaw, global rotation and camera, per frame²).

    target_xy: ``N x L x 2`` landmark positions, ndc (y up); target_depth: ``N x L`` depth towards
    the viewer, ndc, any per-frame offset (it is centred); init_global_pose: ``N x 3``;
    init_scale: ``N`` camera scale (ndc per metre); N = sum(lengths). First
    ``settings.rigid_iterations`` steps move only the global rotation and camera, then everything
    moves for ``settings.iterations`` steps (Adam); ``progress`` is called every
    :data:`PROGRESS_STEPS` steps (the runner's stall watch).

    The clips are one problem whose loss is the sum of each clip's own loss: a clip's parameters
    reach only its own term, and Adam updates each parameter from its own gradient, so each clip
    gets the fit it gets alone (within float32 rounding), in one optimisation for all of them.
    """
    frames, device, dtype = target_xy.shape[0], target_xy.device, target_xy.dtype
    if not lengths or sum(lengths) != frames or min(lengths) < 1:
        raise ValueError(f"clip lengths {lengths} do not pack {frames} frames")
    clips = _Clips(lengths, device)
    shape = torch.zeros(clips.count, model.n_shape, device=device, dtype=dtype, requires_grad=True)
    expression = torch.zeros(frames, model.n_expression, device=device, dtype=dtype, requires_grad=True)
    jaw = torch.zeros(frames, 3, device=device, dtype=dtype, requires_grad=True)
    global_pose = init_global_pose.detach().clone().requires_grad_(True)
    log_scale = init_scale.detach().log().clone().requires_grad_(True)
    offset = torch.zeros(frames, 2, device=device, dtype=dtype, requires_grad=True)
    zeros3 = torch.zeros(frames, 3, device=device, dtype=dtype)
    depth_target = target_depth - target_depth.mean(dim=1, keepdim=True)

    def landmarks() -> Tensor:
        coefficients = torch.cat([shape[clips.index], expression], dim=1)
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
        loss = clips.mean((xy - target_xy).pow(2).sum(-1).mean(-1)) \
            + settings.depth_weight * clips.mean((depth - depth_target).pow(2).mean(-1))
        loss = loss + settings.temporal * (clips.second_difference(global_pose) + clips.second_difference(offset)
                                          + clips.second_difference(log_scale[:, None]))
        if with_expression:
            loss = loss + settings.shape_prior * shape.pow(2).sum(-1) / clips.frames
            loss = loss + settings.expression_prior * clips.mean(expression.pow(2).sum(-1))
            loss = loss + settings.jaw_prior * clips.mean(jaw.pow(2).sum(-1))
            loss = loss + settings.temporal * (clips.second_difference(expression) + clips.second_difference(jaw))
        return loss.sum()

    def descend(parameters: list[torch.Tensor], iterations: int, with_expression: bool) -> None:
        optimizer = torch.optim.Adam(parameters, lr=settings.learning_rate)
        for step in range(iterations):
            optimizer.zero_grad(set_to_none=True)
            objective(with_expression=with_expression).backward()
            optimizer.step()
            if step % PROGRESS_STEPS == 0:
                progress()

    descend([global_pose, log_scale, offset], settings.rigid_iterations, with_expression=False)
    descend([shape, expression, jaw, global_pose, log_scale, offset], settings.iterations, with_expression=True)

    with torch.no_grad():
        xy, _ = project(landmarks())
        scale = log_scale.exp()
        camera = torch.cat([scale[:, None], offset / scale[:, None]], dim=1)
        bounds = [0, *torch.cumsum(clips.frames, 0).tolist()]
        return [FitResult(shape=shape[k].detach(), expression=expression[a:b].detach(), jaw_pose=jaw[a:b].detach(),
                          global_pose=global_pose[a:b].detach(), camera=camera[a:b], landmarks_ndc=xy[a:b])
                for k, (a, b) in enumerate(zip(bounds[:-1], bounds[1:]))]
