"""A small software renderer for face meshes: orthographic view, Lambert shading, painter's order.

Coordinates follow the head frame of the data contract and of FLAME: x to the subject's left
(image right for a frontal face), y up, z towards the viewer. The image is RGB uint8; the mesh
is fitted into it with a margin, so the scale of the input (cm or metres) does not matter.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

BACKGROUND = (246, 247, 249)
SKIN = np.array([196, 206, 222], np.float64)
"""Base colour (RGB) of the surface: a cool clay grey."""
MOUTH = np.array([92, 52, 60], np.float64)
EYES = np.array([84, 92, 110], np.float64)
LIGHT = np.array([-0.35, 0.45, 1.0]) / np.linalg.norm([-0.35, 0.45, 1.0])
"""Unit direction towards the light, head frame: from the viewer, above, a little to the right."""
AMBIENT = 0.28
SUPERSAMPLE = 3

INNER_LIPS = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308, 324, 318, 402, 317, 14, 87, 178, 88, 95)
"""MediaPipe landmarks on the inner lip contour: triangles between them fill the mouth opening."""


def rotation_yx(yaw_deg: float, pitch_deg: float) -> np.ndarray:
    """(3, 3) rotation: ``pitch_deg`` about x (positive tips the top away), then ``yaw_deg`` about y
    (positive turns the face to the viewer's right)."""
    yaw, pitch = np.radians(yaw_deg), np.radians(pitch_deg)
    about_y = np.array([[np.cos(yaw), 0, np.sin(yaw)], [0, 1, 0], [-np.sin(yaw), 0, np.cos(yaw)]])
    about_x = np.array([[1, 0, 0], [0, np.cos(pitch), -np.sin(pitch)], [0, np.sin(pitch), np.cos(pitch)]])
    return about_y @ about_x


@lru_cache(maxsize=1)
def mediapipe_topology() -> tuple[np.ndarray, np.ndarray]:
    """Triangles over MediaPipe's 478 landmarks and a per-triangle material (0 skin, 1 mouth
    opening, 2 eye): a Delaunay triangulation of the template's (x, y), wound so that normals
    point towards the viewer, without the sliver triangles Delaunay adds along concave parts of
    the outline. Returns ((F, 3) int64, (F,) int8); computed once per process."""
    from mediapipe.python.solutions import face_mesh_connections as connections
    from scipy.spatial import Delaunay

    from pseudo3d.reconstruction.template import mediapipe_template

    vertices = mediapipe_template().vertices
    faces = Delaunay(vertices[:, :2]).simplices.astype(np.int64)
    a, b, c = (vertices[faces[:, i], :2] for i in range(3))
    cross = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    faces[cross < 0] = faces[cross < 0][:, ::-1]
    edges = np.stack([np.linalg.norm(vertices[faces[:, i], :2] - vertices[faces[:, (i + 1) % 3], :2], axis=1)
                      for i in range(3)], axis=1)
    faces = faces[edges.max(axis=1) < 4.0 * np.median(edges)]
    eye = {i for edge in connections.FACEMESH_LEFT_EYE | connections.FACEMESH_RIGHT_EYE | connections.FACEMESH_IRISES
           for i in edge}
    material = np.zeros(len(faces), np.int8)
    material[np.isin(faces, INNER_LIPS).all(axis=1)] = 1
    material[np.isin(faces, sorted(eye)).all(axis=1)] = 2
    return faces, material


def render_mesh(vertices: np.ndarray, faces: np.ndarray, size: int = 240,
                material: np.ndarray | None = None, view: np.ndarray | None = None) -> np.ndarray:
    """Render a mesh to an image.

    Args:
        vertices: (V, 3) head-frame points (x left-of-subject, y up, z to the viewer), any unit.
        faces: (F, 3) vertex indices, counter-clockwise seen from outside.
        size: output width and height in pixels.
        material: (F,) 0 skin, 1 mouth opening, 2 eye; all skin if None.
        view: (3, 3) rotation applied to the vertices before viewing along −z.

    Returns:
        (size, size, 3) uint8 RGB image.
    """
    points = np.asarray(vertices, np.float64)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"vertices must have shape (V, 3), got {points.shape}")
    faces = np.asarray(faces, np.int64)
    if view is not None:
        points = points @ np.asarray(view, np.float64).T
    finite = np.isfinite(points).all(axis=1)
    canvas = np.empty((size * SUPERSAMPLE, size * SUPERSAMPLE, 3), np.uint8)
    canvas[:] = BACKGROUND
    faces_ok = finite[faces].all(axis=1)
    if not faces_ok.any():
        return cv2.resize(canvas, (size, size), interpolation=cv2.INTER_AREA)
    faces = faces[faces_ok]
    material = np.zeros(len(faces), np.int8) if material is None else np.asarray(material)[faces_ok]

    used = points[np.unique(faces)]
    low, high = used[:, :2].min(axis=0), used[:, :2].max(axis=0)
    scale = 0.86 * size * SUPERSAMPLE / max(float((high - low).max()), 1e-9)
    centre = 0.5 * (low + high)
    pixels = np.empty((len(points), 2))
    pixels[:, 0] = (points[:, 0] - centre[0]) * scale + 0.5 * size * SUPERSAMPLE
    pixels[:, 1] = -(points[:, 1] - centre[1]) * scale + 0.5 * size * SUPERSAMPLE

    corners = points[faces]
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    lengths = np.linalg.norm(normals, axis=1)
    # Two-sided: an open surface (MediaPipe's mesh) folds away from the viewer at its rim, and
    # the painter's order already hides what is behind.
    normals *= np.where(normals[:, 2] < 0, -1.0, 1.0)[:, None]
    facing = lengths > 0
    normals = normals[facing] / lengths[facing, None]
    faces, material, depth = faces[facing], material[facing], corners[facing, :, 2].mean(axis=1)
    shade = AMBIENT + (1 - AMBIENT) * np.clip(normals @ LIGHT, 0.0, 1.0)
    base = np.where(material[:, None] == 1, MOUTH, np.where(material[:, None] == 2, EYES, SKIN))
    colours = np.clip(base * shade[:, None], 0, 255).astype(np.uint8)

    triangles = np.round(pixels[faces] * 4).astype(np.int32)  # 2 fractional bits for cv2's shift
    for index in np.argsort(depth, kind="stable"):  # far to near
        cv2.fillConvexPoly(canvas, triangles[index], colours[index].tolist(), lineType=cv2.LINE_8, shift=2)
    return cv2.resize(canvas, (size, size), interpolation=cv2.INTER_AREA)
