"""The FLAME head model as a PyTorch module: buffers from a checked :class:`FlameAssets`, the
forward pass from :mod:`.lbs`, landmarks from :mod:`.landmarks`.

Conventions (FLAME's): metres; head frame x to the subject's left, y up, z out of the face;
rotations are axis-angle in radians. Joints: 0 global (root), 1 neck, 2 jaw, 3 left eye,
4 right eye; ``eye_pose`` is (left eye, right eye) = joints 3 and 4, as in DECA and smplx.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from pseudo3d.errors import AssetError
from pseudo3d.reconstruction.assets import (
    MODEL_WHAT, SHAPE_SPACE, FlameAssets, Flame68Embedding, LandmarkEmbedding, MediaPipeEmbedding,
    check_embedding_fits, load_flame_model, load_landmark_embedding)
from pseudo3d.reconstruction.flame.landmarks import barycentric_points, contour_bins
from pseudo3d.reconstruction.flame.lbs import axis_angle_to_matrix, linear_blend_skinning

POSE_INPUTS = {"global_pose": 3, "neck_pose": 3, "jaw_pose": 3, "eye_pose": 6, "translation": 3}
"""Pose keyword → its width."""


@dataclass(frozen=True)
class FlameOutput:
    vertices: Tensor
    """(B, V, 3) posed mesh, translation included, metres."""
    joints: Tensor
    """(B, 5, 3) posed joints (global, neck, jaw, left eye, right eye), translation included."""
    landmarks: Tensor | None
    """(B, L, 3) landmarks on the posed mesh, or None without a landmark embedding."""


class FlameModel(nn.Module):
    """FLAME with ``n_shape`` shape and ``n_expression`` expression components; float32 buffers
    (move them with ``.to(device)``).

    ``landmark_kind`` is None, ``"flame68"`` (DECA's embedding: 68 landmarks in iBUG order, the
    jaw contour 0–16 chosen by the head's yaw as in :mod:`.landmarks`, then the static 17–67) or
    ``"mediapipe"`` (``landmark_indices`` (L,) int64 buffer: which of MediaPipe's 478 landmarks
    each output landmark is). ``asset_hashes`` maps ``flame_model`` (and ``landmark_embedding``)
    to the files' SHA-256.
    """

    # Buffers (registered in __init__), declared for the type checker: nn.Module's __getattr__ is untyped.
    v_template: Tensor
    shapedirs: Tensor
    posedirs: Tensor
    J_regressor: Tensor
    lbs_weights: Tensor
    faces: Tensor
    landmark_indices: Tensor | None
    static_faces: Tensor  # the flame68 embedding's
    static_bary: Tensor
    contour_faces: Tensor
    contour_bary: Tensor
    full_faces: Tensor
    full_bary: Tensor
    landmark_faces: Tensor  # the mediapipe embedding's
    landmark_bary: Tensor

    def __init__(self, assets: FlameAssets, n_shape: int = 100, n_expression: int = 50,
                 landmarks: LandmarkEmbedding | None = None):
        super().__init__()
        for name, count, available in (("n_shape", n_shape, assets.n_shape_available),
                                       ("n_expression", n_expression, assets.n_expression_available)):
            if isinstance(count, bool) or not isinstance(count, int) or count < 0:
                raise ValueError(f"{name} must be a non-negative int, got {count!r}")
            if count > available:
                raise AssetError(f"{MODEL_WHAT} {assets.path} holds {available} {name[2:]} components; "
                                 f"{name}={count} were asked for")
        self.n_shape, self.n_expression = n_shape, n_expression
        self.parents = assets.parents
        self.asset_hashes = {"flame_model": assets.sha256}

        def buffer(name: str, array: np.ndarray, dtype: torch.dtype = torch.float32) -> None:
            self.register_buffer(name, torch.as_tensor(np.ascontiguousarray(array), dtype=dtype))

        buffer("v_template", assets.v_template)
        buffer("shapedirs", np.concatenate([assets.shapedirs[:, :, :n_shape],
                                            assets.shapedirs[:, :, SHAPE_SPACE:SHAPE_SPACE + n_expression]], 2))
        buffer("posedirs", assets.posedirs)
        buffer("J_regressor", assets.J_regressor)
        buffer("lbs_weights", assets.weights)
        buffer("faces", assets.faces, torch.int64)

        self.landmark_kind: str | None = None
        self.register_buffer("landmark_indices", None)
        if landmarks is not None:
            check_embedding_fits(landmarks, assets)
            self.asset_hashes["landmark_embedding"] = landmarks.sha256
        if isinstance(landmarks, Flame68Embedding):
            self.landmark_kind = "flame68"
            buffer("static_faces", landmarks.static_faces, torch.int64)
            buffer("static_bary", landmarks.static_bary)
            buffer("contour_faces", landmarks.contour_faces, torch.int64)
            buffer("contour_bary", landmarks.contour_bary)
            buffer("full_faces", landmarks.full_faces, torch.int64)
            buffer("full_bary", landmarks.full_bary)
        elif isinstance(landmarks, MediaPipeEmbedding):
            self.landmark_kind = "mediapipe"
            buffer("landmark_faces", landmarks.faces, torch.int64)
            buffer("landmark_bary", landmarks.bary)
            buffer("landmark_indices", landmarks.landmark_indices, torch.int64)

    @classmethod
    def from_file(cls, path: str | Path, n_shape: int = 100, n_expression: int = 50,
                  landmark_embedding: str | Path | None = None) -> "FlameModel":
        """Load a FLAME pickle (and optionally a landmark embedding) with the safe loaders of
        :mod:`pseudo3d.reconstruction.assets`; errors name the file at fault."""
        assets = load_flame_model(path)
        embedding = None if landmark_embedding is None else load_landmark_embedding(landmark_embedding)
        return cls(assets, n_shape=n_shape, n_expression=n_expression, landmarks=embedding)

    @property
    def n_vertices(self) -> int:
        return self.v_template.shape[0]

    def forward(self, shape: Tensor | None = None, expression: Tensor | None = None,
                global_pose: Tensor | None = None, neck_pose: Tensor | None = None,
                jaw_pose: Tensor | None = None, eye_pose: Tensor | None = None,
                translation: Tensor | None = None) -> FlameOutput:
        """Every input is optional (zeros); the batch size B comes from those given.

        shape (B, n_shape), expression (B, n_expression): component coefficients;
        global_pose, neck_pose, jaw_pose (B, 3) and eye_pose (B, 6) = (left, right): axis-angle,
        radians; translation (B, 3), metres, added last.
        """
        widths = {"shape": self.n_shape, "expression": self.n_expression, **POSE_INPUTS}
        given = {"shape": shape, "expression": expression, "global_pose": global_pose,
                 "neck_pose": neck_pose, "jaw_pose": jaw_pose, "eye_pose": eye_pose,
                 "translation": translation}
        inputs = self._checked_inputs(given, widths)
        # Geometry stays in the buffers' precision even inside a bfloat16 autocast region (the
        # encoder's): bfloat16 would put millimetre errors on head-sized coordinates.
        with torch.autocast(device_type=self.v_template.device.type, enabled=False):
            return self._forward(inputs)

    def _forward(self, inputs: dict[str, Tensor]) -> FlameOutput:
        coefficients = torch.cat([inputs["shape"], inputs["expression"]], dim=1)
        pose = torch.cat([inputs["global_pose"], inputs["neck_pose"], inputs["jaw_pose"],
                          inputs["eye_pose"]], dim=1).unflatten(1, (-1, 3))
        vertices, joints = linear_blend_skinning(coefficients, pose, self.v_template, self.shapedirs,
                                                 self.posedirs, self.J_regressor, self.parents,
                                                 self.lbs_weights)
        offset = inputs["translation"].unsqueeze(1)
        vertices, joints = vertices + offset, joints + offset
        return FlameOutput(vertices=vertices, joints=joints, landmarks=self._landmarks(vertices, pose))

    def full_landmarks(self, vertices: Tensor) -> Tensor:
        """DECA's yaw-independent 68 landmarks (its ``landmarks3d``) ``B x 68 x 3`` on posed
        vertices ``B x V x 3``; needs the ``flame68`` embedding."""
        if self.landmark_kind != "flame68":
            raise ValueError(f"full_landmarks needs DECA's 68-point embedding; this model has {self.landmark_kind!r}")
        return barycentric_points(vertices, self.faces, self.full_faces, self.full_bary)

    def _landmarks(self, vertices: Tensor, pose: Tensor) -> Tensor | None:
        if self.landmark_kind == "mediapipe":
            return barycentric_points(vertices, self.faces, self.landmark_faces, self.landmark_bary)
        if self.landmark_kind != "flame68":
            return None
        head = axis_angle_to_matrix(pose[:, 0]) @ axis_angle_to_matrix(pose[:, 1])
        rows = contour_bins(head)
        batch = vertices.shape[0]
        face_index = torch.cat([self.contour_faces[rows], self.static_faces.expand(batch, -1)], dim=1)
        bary = torch.cat([self.contour_bary[rows], self.static_bary.expand(batch, -1, -1)], dim=1)
        return barycentric_points(vertices, self.faces, face_index, bary)

    def _checked_inputs(self, given: dict[str, Tensor | None], widths: dict[str, int]) -> dict[str, Tensor]:
        dtype, device = self.v_template.dtype, self.v_template.device
        batch_sizes = set()
        tensors: dict[str, Tensor] = {}
        for name, value in given.items():
            if value is None:
                continue
            value = torch.as_tensor(value, device=device).to(dtype)
            if value.dim() != 2 or value.shape[1] != widths[name]:
                raise ValueError(f"{name} must have shape (B, {widths[name]}), got {tuple(value.shape)}")
            tensors[name] = value
            batch_sizes.add(value.shape[0])
        if len(batch_sizes) > 1:
            sizes = ", ".join(f"{name} {value.shape[0]}" for name, value in tensors.items())
            raise ValueError(f"inputs disagree on the batch size: {sizes}")
        batch = batch_sizes.pop() if batch_sizes else 1
        for name, width in widths.items():
            if name not in tensors:
                tensors[name] = torch.zeros(batch, width, dtype=dtype, device=device)
        return tensors
