"""The reconstructed face of one clip frame as a mesh, whichever backend wrote the clip.

* ``mediapipe``: the sample's ``mesh_smooth`` frame (head frame, ≈ cm) on a Delaunay
  triangulation of the template, seen a little from the side so its depth shows.
* FLAME backends (``deca``, ``flame-fit``): FLAME's vertices for the clip's shape and the frame's
  smoothed expression, jaw and global pose, when the build's FLAME model file can be read (and
  torch is installed); also the vertices projected into the source image with the frame's
  weak-perspective camera and crop transform.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from pseudo3d.errors import Pseudo3DError
from pseudo3d.geometry.rotations import euler_yxz_to_matrix
from pseudo3d.qa.report.render import mediapipe_topology

MESH_MEMBERS = ("mesh_smooth.npy",)
FLAME_MEMBERS = ("flame_shape_clip.npy", "flame_expression_smooth.npy", "flame_jaw_pose_smooth.npy",
                 "flame_global_pose_smooth.npy", "flame_camera_smooth.npy", "crop_transform.npy")
SIDE_VIEW = (20.0, -8.0)
"""(yaw, pitch) in degrees of the view of MediaPipe's pose-free mesh."""


@dataclass(frozen=True)
class FrameMesh:
    vertices: np.ndarray
    """(V, 3) head-frame or FLAME camera-frame points."""
    faces: np.ndarray
    """(F, 3) int64."""
    material: np.ndarray | None
    """(F,) int8 for :func:`pseudo3d.qa.report.render.render_mesh`, or None."""
    view: np.ndarray | None
    """(3, 3) view rotation, or None for a frontal view."""
    caption: str
    image_points: np.ndarray | None = None
    """(V, 2) the vertices projected into the source image (pixels), when known."""


class MeshUnavailable(Exception):
    """No mesh can be shown for this clip; the message says why, for the page."""


def frame_mesh(sample: dict, frame: int, backend: str, flame_model_path: str | None) -> FrameMesh:
    """The mesh of clip frame ``frame`` of a sample holding :data:`MESH_MEMBERS` or
    :data:`FLAME_MEMBERS`; raises :class:`MeshUnavailable` with the reason otherwise."""
    if "mesh_smooth.npy" in sample:
        faces, material = mediapipe_topology()
        return FrameMesh(np.asarray(sample["mesh_smooth.npy"][frame], np.float64), faces, material,
                         euler_yxz_to_matrix(np.radians([*SIDE_VIEW, 0.0])), "mesh_smooth (head frame, pose removed), seen 20° from the side")
    if "flame_expression_smooth.npy" in sample:
        return _flame_mesh(sample, frame, flame_model_path)
    raise MeshUnavailable(f"the {backend} backend wrote no mesh or FLAME parameters for this clip")


def _flame_mesh(sample: dict, frame: int, flame_model_path: str | None) -> FrameMesh:
    if not flame_model_path:
        raise MeshUnavailable("the FLAME model is not available (pass --flame-model to `pseudo3d qa`; the card "
                              "records its SHA-256, not where it lives)")
    if not Path(flame_model_path).is_file():
        raise MeshUnavailable(f"the FLAME model is not available ({flame_model_path} is not a readable file)")
    try:
        import torch
    except ImportError:
        raise MeshUnavailable("rendering FLAME needs torch (pip install torch)") from None
    shape = np.asarray(sample["flame_shape_clip.npy"], np.float32)
    expression = np.asarray(sample["flame_expression_smooth.npy"], np.float32)
    try:
        model = _flame_model(str(flame_model_path), int(shape.shape[0]), int(expression.shape[1]))
    except (Pseudo3DError, ValueError, OSError) as exc:
        raise MeshUnavailable(f"the FLAME model could not be loaded: {exc}") from None
    with torch.no_grad():
        output = model(shape=torch.from_numpy(shape[None]),
                       expression=torch.from_numpy(expression[frame:frame + 1]),
                       jaw_pose=torch.from_numpy(np.asarray(sample["flame_jaw_pose_smooth.npy"][frame:frame + 1], np.float32)),
                       global_pose=torch.from_numpy(np.asarray(sample["flame_global_pose_smooth.npy"][frame:frame + 1], np.float32)))
    vertices = output.vertices[0].numpy().astype(np.float64)
    return FrameMesh(vertices, model.faces.numpy(), None, None, "FLAME with the clip's shape and the frame's "
                     "expression, jaw and global pose", _project(sample, frame, vertices))


@lru_cache(maxsize=2)
def _flame_model(path: str, n_shape: int, n_expression: int):
    from pseudo3d.reconstruction.flame import FlameModel

    return FlameModel.from_file(path, n_shape=n_shape, n_expression=n_expression)


def _project(sample: dict, frame: int, vertices: np.ndarray) -> np.ndarray | None:
    """(V, 2) image pixels of FLAME vertices through the frame's camera and crop transform."""
    if "flame_camera_smooth.npy" not in sample or "crop_transform.npy" not in sample:
        return None
    import torch

    from pseudo3d.reconstruction.camera import crop_to_image, project_to_crop

    crop_size = int(sample.get("meta.json", {}).get("crop", {}).get("size", 224))
    camera = torch.as_tensor(np.asarray(sample["flame_camera_smooth.npy"][frame:frame + 1], np.float64))
    transform = torch.as_tensor(np.asarray(sample["crop_transform.npy"][frame:frame + 1], np.float64))
    crop = project_to_crop(torch.as_tensor(vertices[None]), camera, crop_size)
    return crop_to_image(crop, transform)[0].numpy()
