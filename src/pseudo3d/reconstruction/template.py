"""A canonical, head-pose-free template for MediaPipe's 478-landmark topology.

MediaPipe's own canonical face model is not part of the wheel, so pseudo3d derives one with the
bundled models: Face Mesh on scikit-image's public-domain astronaut portrait, expressed in an
anatomical head frame and made left-right symmetric.

Head frame (right-handed, like FLAME's): +x towards the subject's left (image right for a
frontal face), +y up, +z out of the face towards the viewer; origin at the centroid of the rigid
landmarks; units approximately centimetres (outer eye corners 9 cm apart).

Rigid landmarks (weight 1 in the pose fit): nose, forehead, temples and cheekbones — everything
at or above the base of the nose except the eyelids, brows and irises, which move with
expression. The jaw, lips and cheeks below the nose get weight 0, so talking does not leak into
the head pose.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.optimize import linear_sum_assignment

OUTER_EYE_CORNERS = (33, 263)  # subject's right, subject's left
FOREHEAD, CHIN = 10, 152
SUBNASALE = 2
INTEROCULAR_CM = 9.0


@dataclass(frozen=True)
class FaceTemplate:
    vertices: np.ndarray
    """(478, 3) float64, head frame, ~cm."""
    rigid_weights: np.ndarray
    """(478,) float64, 1 for rigid landmarks, 0 otherwise."""
    mirror: np.ndarray
    """(478,) int64, index of each landmark's left-right counterpart (itself on the midline)."""

    @property
    def sha256(self) -> str:
        return hashlib.sha256(np.ascontiguousarray(self.vertices, np.float64).tobytes()).hexdigest()


def head_frame(points: np.ndarray) -> np.ndarray:
    """(3, 3) matrix whose columns are the head axes (x left-eye-ward, y up, z out of the face)
    expressed in camera coordinates, from (478, 3) camera-frame landmarks (x right, y down)."""
    x_axis = points[OUTER_EYE_CORNERS[1]] - points[OUTER_EYE_CORNERS[0]]
    x_axis /= np.linalg.norm(x_axis)
    up = points[FOREHEAD] - points[CHIN]
    y_axis = up - (up @ x_axis) * x_axis
    y_axis /= np.linalg.norm(y_axis)
    return np.stack([x_axis, y_axis, np.cross(x_axis, y_axis)], axis=1)


def symmetrise(vertices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Average a head-frame shape with its mirror image (x → −x), pairing each landmark with its
    counterpart by an optimal assignment. Returns (symmetric vertices, mirror index)."""
    mirrored = vertices * np.array([-1.0, 1.0, 1.0])
    cost = np.linalg.norm(vertices[:, None, :] - mirrored[None, :, :], axis=-1)
    _, mirror = linear_sum_assignment(cost)
    symmetric = 0.5 * (vertices + mirrored[mirror])
    return symmetric, mirror.astype(np.int64)


def rigid_landmarks(vertices: np.ndarray) -> np.ndarray:
    """(478,) weights: 1 at or above the base of the nose, except eyes, brows and irises."""
    from mediapipe.python.solutions import face_mesh_connections as fmc

    mobile = {i for edges in (fmc.FACEMESH_LEFT_EYE, fmc.FACEMESH_RIGHT_EYE, fmc.FACEMESH_LEFT_EYEBROW,
                              fmc.FACEMESH_RIGHT_EYEBROW, fmc.FACEMESH_IRISES)
              for edge in edges for i in edge}
    weights = (vertices[:, 1] >= vertices[SUBNASALE, 1]).astype(np.float64)
    weights[sorted(mobile)] = 0.0
    return weights


@lru_cache(maxsize=1)
def portrait_landmarks() -> np.ndarray:
    """(478, 3) float64 Face Mesh landmarks of scikit-image's astronaut portrait: x, y in pixels of
    the 512×512 image, z in the same pixel scale (larger is further away). Computed once per
    process; also what :mod:`pseudo3d.synth` animates."""
    import mediapipe as mp
    from skimage import data

    from pseudo3d.logs import native_stderr_silenced

    image = data.astronaut()
    height, width = image.shape[:2]
    with native_stderr_silenced(), mp.solutions.face_mesh.FaceMesh(
            static_image_mode=True, max_num_faces=1, refine_landmarks=True) as mesh:
        result = mesh.process(image)
    if not result.multi_face_landmarks:
        raise RuntimeError("MediaPipe found no face in the astronaut portrait; is mediapipe==0.10.21 installed?")
    return np.array([(p.x * width, p.y * height, p.z * width)
                     for p in result.multi_face_landmarks[0].landmark], np.float64)


@lru_cache(maxsize=1)
def mediapipe_template() -> FaceTemplate:
    """The template, computed once per process (about 0.2 s)."""
    points = portrait_landmarks()
    axes = head_frame(points)
    vertices = (points - points.mean(axis=0)) @ axes
    vertices, mirror = symmetrise(vertices)
    vertices *= INTEROCULAR_CM / np.linalg.norm(vertices[OUTER_EYE_CORNERS[1]] - vertices[OUTER_EYE_CORNERS[0]])
    weights = rigid_landmarks(vertices)
    vertices -= (weights[:, None] * vertices).sum(axis=0) / weights.sum()
    return FaceTemplate(vertices=vertices, rigid_weights=weights, mirror=mirror)
