"""The ``flame-fit`` backend: FLAME fitted to the tracked MediaPipe landmarks, clip by clip.

No neural network and no non-commercial asset: with FLAME 2023 Open (CC-BY-4.0) and MediaPipe
(Apache-2.0) the resulting dataset is licence-clean. The targets are the tracked landmarks that the
MediaPipe landmark embedding maps onto FLAME's surface, taken into the clip's face-crop frame
(DECA's normalised coordinates), with MediaPipe's depth as a weak extra cue. The head rotation
starts from the ``mediapipe`` backend's Procrustes pose, then :func:`fit_sequences` optimises all
frames of all the clips handed over together (on the GPU when there is one).

Outputs match the ``deca`` backend's FLAME arrays: ``flame_expression`` (T, n_expression),
``flame_jaw_pose``, ``flame_global_pose`` (T, 3) axis-angle radians, ``flame_camera`` (T, 3)
DECA's (s, tx, ty), ``reprojection_error`` (T,) image pixels, and per clip ``flame_shape_clip``
(n_shape,).
"""

from __future__ import annotations

from typing import ClassVar, Mapping

import numpy as np
import torch

from pseudo3d.config import BuildConfig
from pseudo3d.errors import AssetError, StageError
from pseudo3d.geometry.procrustes import similarity_procrustes_batch
from pseudo3d.geometry.rotations import matrix_to_axis_angle
from pseudo3d.reconstruction.asset_files import asset_option
from pseudo3d.reconstruction.base import BatchReconstructor, SmoothingKind
from pseudo3d.reconstruction.camera import crop_to_image, image_to_crop, reprojection_error
from pseudo3d.reconstruction.deca_backend import FLAME_SMOOTHED
from pseudo3d.reconstruction.device import numerics, resolve_device, split_like
from pseudo3d.reconstruction.fitting import LandmarkFlame, fit_sequences
from pseudo3d.reconstruction.flame import FlameModel
from pseudo3d.reconstruction.template import mediapipe_template
from pseudo3d.schemas.records import Clip

CAMERA_FLIP = np.diag([1.0, -1.0, -1.0])
"""Image axes (x right, y down, z away) ↔ FLAME's camera axes (x right, y up, z to the viewer)."""


class FlameFitBackend(BatchReconstructor):
    name: ClassVar[str] = "flame-fit"
    smoothed: ClassVar[Mapping[str, SmoothingKind]] = FLAME_SMOOTHED
    per_clip: ClassVar[frozenset[str]] = frozenset({"flame_shape_clip"})

    def __init__(self, config: BuildConfig):
        options = config.reconstruct
        self.settings = options.fit
        self.device = resolve_device(options.device)
        self.crop_size = config.track.crop_size
        flame = FlameModel.from_file(asset_option(options.flame_model, "flame_model"), n_shape=options.n_shape,
                                     n_expression=options.n_expression, landmark_embedding=options.landmark_embedding)
        if flame.landmark_kind != "mediapipe" or flame.landmark_indices is None:  # (the same: mediapipe's buffer)
            raise AssetError(f"landmark embedding {options.landmark_embedding}: flame-fit needs the MediaPipe layout "
                             "(mediapipe_landmark_embedding.npz)")
        self.hashes = dict(flame.asset_hashes)
        self.indices = flame.landmark_indices.cpu().numpy()
        self.model = LandmarkFlame(flame).to(self.device)
        self.template = mediapipe_template()

    def asset_hashes(self) -> dict[str, str]:
        return dict(self.hashes)

    def numerics(self) -> dict[str, str]:
        return numerics(self.device, "fp32")  # the fit needs gradients: never under autocast

    def reconstruct_batch(self, clips: list[Clip]) -> list[dict[str, np.ndarray] | StageError]:
        """All ``clips`` fitted in one optimisation (:func:`fit_sequences`: each gets the fit it
        gets alone), so a GPU runs a few large steps instead of many small ones."""
        tensor = lambda array: torch.as_tensor(np.asarray(array, np.float32), device=self.device)  # noqa: E731
        transforms = tensor(np.concatenate([clip.crop_transforms for clip in clips]))
        tracked = tensor(np.concatenate([clip.landmarks[:, self.indices] for clip in clips]))  # N x L x 3 image pixels
        half = self.crop_size / 2.0
        in_crop = image_to_crop(tracked[..., :2], transforms)
        target_xy = torch.stack([(in_crop[..., 0] - half) / half, -(in_crop[..., 1] - half) / half], dim=-1)
        crop_factor = torch.linalg.det(transforms[:, :, :2]).abs().sqrt()  # crop pixels per image pixel
        target_depth = -tracked[..., 2] * crop_factor[:, None] / half
        lengths = [clip.n_frames for clip in clips]
        poses = [self._initial_pose(clip, factor) for clip, factor in
                 zip(clips, np.split(crop_factor.cpu().numpy(), np.cumsum(lengths)[:-1]))]
        global_pose = tensor(np.concatenate([pose for pose, _ in poses]))
        scale = tensor(np.concatenate([scale for _, scale in poses]))

        with torch.enable_grad():
            fits = fit_sequences(self.model, target_xy, target_depth, global_pose, scale, lengths, self.settings,
                                 progress=self.progress)
        fitted = torch.cat([fit.landmarks_ndc for fit in fits])
        fitted_crop = torch.stack([fitted[..., 0] * half + half, -fitted[..., 1] * half + half], -1)
        errors = reprojection_error(crop_to_image(fitted_crop, transforms), tracked[..., :2])
        numpy = lambda value: value.float().cpu().numpy()  # noqa: E731
        return [{
            "flame_expression": numpy(fit.expression),
            "flame_jaw_pose": numpy(fit.jaw_pose),
            "flame_global_pose": numpy(fit.global_pose),
            "flame_camera": numpy(fit.camera),
            "flame_shape_clip": numpy(fit.shape),
            "reprojection_error": numpy(error),
        } for fit, error in zip(fits, split_like(errors, lengths))]

    def _initial_pose(self, clip: Clip, crop_factor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Global rotation (T, 3) and camera scale (T,) from a Procrustes fit of the MediaPipe
        template's rigid landmarks, as in the ``mediapipe`` backend."""
        scale_px_per_cm, rotation, _ = similarity_procrustes_batch(
            self.template.vertices, clip.landmarks.astype(np.float64), self.template.rigid_weights)
        global_pose = matrix_to_axis_angle(CAMERA_FLIP @ rotation)  # image frame → FLAME's camera frame
        scale = scale_px_per_cm * 100.0 * crop_factor / (self.crop_size / 2.0)  # ndc per metre
        return global_pose, scale

