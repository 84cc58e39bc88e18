"""The ``mediapipe`` backend: head pose and a head-pose-free 3D landmark mesh.

Each frame's 478 MediaPipe landmarks (image pixels, pixel-scaled depth) are aligned to the
canonical template (:mod:`pseudo3d.reconstruction.template`) by a weighted similarity Procrustes
fit on the rigid landmarks: ``landmarks ≈ scale · R · template + t``. The fit gives the head pose,
and undoing it gives the mesh in the template's head frame, where only expression remains.

Outputs per frame (T = frames):

* ``mesh`` (T, 478, 3) float32: head-pose-free mesh, head frame (x to the subject's left, y up,
  z towards the viewer), ~cm;
* ``head_rotation`` (T, 3) float32: axis-angle (radians) of the head in camera coordinates
  (x right, y down, z away from the camera); zero when the face looks straight at the camera
  upright; :func:`pseudo3d.geometry.rotations.matrix_to_euler_yxz` gives yaw/pitch/roll;
* ``head_translation`` (T, 3) float32: where the template origin lands, image pixels (x, y) and
  pixel-scaled depth (z);
* ``head_scale`` (T,) float32: image pixels per template centimetre.

The tracked landmarks themselves (``landmarks_2d``) are written for every backend by the
pipeline, not here.
"""

from __future__ import annotations

from typing import ClassVar, Mapping

import mediapipe
import numpy as np

from pseudo3d.geometry.procrustes import invert_similarity, similarity_procrustes_batch
from pseudo3d.geometry.rotations import matrix_to_axis_angle
from pseudo3d.reconstruction.base import Reconstructor, SmoothingKind
from pseudo3d.reconstruction.template import mediapipe_template
from pseudo3d.schemas.records import Clip

# Head frame (y up, z to the viewer) → camera orientation (y down, z away) for a frontal face.
HEAD_TO_CAMERA = np.diag([1.0, -1.0, -1.0])


class MediaPipeHead(Reconstructor):
    name: ClassVar[str] = "mediapipe"
    smoothed: ClassVar[Mapping[str, SmoothingKind]] = {
        "mesh": "linear",
        "head_rotation": "rotation",
        "head_translation": "linear",
        "head_scale": "linear",
    }

    def __init__(self):
        self.template = mediapipe_template()

    def asset_hashes(self) -> dict[str, str]:
        return {"mediapipe": mediapipe.__version__, "mediapipe_template_sha256": self.template.sha256}

    def reconstruct_clip(self, clip: Clip) -> dict[str, np.ndarray]:
        points = clip.landmarks.astype(np.float64)
        scale, rotation, translation = similarity_procrustes_batch(
            self.template.vertices, points, self.template.rigid_weights)
        mesh = invert_similarity(points, scale, rotation, translation)
        head_rotation = matrix_to_axis_angle(rotation @ HEAD_TO_CAMERA)
        return {
            "mesh": mesh.astype(np.float32),
            "head_rotation": head_rotation.astype(np.float32),
            "head_translation": translation.astype(np.float32),
            "head_scale": scale.astype(np.float32),
        }
