"""The face-mesh renderer, for the QA report's gallery and for training's preview videos:
orthographic view, Lambert shading, painter's order.

Coordinates follow the head frame of the data contract and of FLAME: x to the subject's left
(image right for a frontal face), y up, z towards the viewer; any unit (the view is fitted to the
mesh's x–y bounds with a margin). Triangles are Lambert-shaded with one light from the viewer's
upper left and filled far to near with ``cv2.fillConvexPoly`` on a supersampled canvas, then
area-downsampled. Shading is two-sided: an open surface such as MediaPipe's mesh folds away from
the viewer at its rim, and the painter's order already hides what lies behind. Images are RGB uint8.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

BACKGROUND = (246, 247, 249)
"""Near-white grey (RGB)."""
MATERIAL_COLOURS = np.array([[196, 206, 222],   # 0 skin: a cool clay grey
                             [92, 52, 60],      # 1 mouth opening
                             [84, 92, 110]],    # 2 eye
                            np.float64)
LIGHT = np.array([-0.35, 0.45, 1.0]) / np.linalg.norm([-0.35, 0.45, 1.0])
"""Unit direction towards the light in the head frame: from the viewer, above, to the left."""
AMBIENT = 0.28
SUPERSAMPLE = 2
MARGIN = 0.06
"""Fraction of the image left empty on each side of the mesh's bounds."""
_SUBPIXEL_BITS = 2  # cv2 fill coordinates carry 2 fractional bits

INNER_LIPS = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308, 324, 318, 402, 317, 14, 87, 178, 88, 95)
"""MediaPipe landmarks on the inner lip contour: triangles between them fill the mouth opening."""


@dataclass(frozen=True)
class OrthoView:
    """Mesh (x, y) → pixel (column, row) of a ``size``-pixel square image:
    column = (x − centre_x)·scale + size/2, row = −(y − centre_y)·scale + size/2."""

    centre: tuple[float, float]
    """Mesh-unit point drawn at the image centre."""
    scale: float
    """Pixels per mesh unit."""
    size: int

    def pixels(self, vertices: np.ndarray) -> np.ndarray:
        """(V, 2) float64 pixel coordinates of (V, 3) vertices."""
        half = 0.5 * self.size
        columns = (vertices[:, 0] - self.centre[0]) * self.scale + half
        rows = -(vertices[:, 1] - self.centre[1]) * self.scale + half
        return np.stack([columns, rows], axis=1)


def fit_view(vertices: np.ndarray, faces: np.ndarray, size: int, margin: float = MARGIN) -> OrthoView:
    """The :class:`OrthoView` that fits the x–y bounds, over all T frames, of the vertices that
    ``faces`` use (non-finite ones ignored) into a ``size``-pixel square with ``margin``, so that
    a sequence neither jumps nor breathes as the mouth moves.

    vertices: (T, V, 3); faces: (F, 3). Raises ``ValueError`` when no used vertex is finite."""
    used = vertices[:, np.unique(faces)][..., :2].reshape(-1, 2)
    used = used[np.isfinite(used).all(axis=1)]
    if len(used) == 0:
        raise ValueError("the mesh has no finite vertex in any frame; nothing to render")
    low, high = used.min(axis=0), used.max(axis=0)
    extent = max(float((high - low).max()), 1e-12)
    centre = 0.5 * (low + high)
    return OrthoView(centre=(float(centre[0]), float(centre[1])), scale=(1 - 2 * margin) * size / extent, size=size)


def render_frame(vertices: np.ndarray, faces: np.ndarray, view: OrthoView,
                 material: np.ndarray | None = None) -> np.ndarray:
    """Render one frame.

    Args:
        vertices: (V, 3) head-frame points (y up, z towards the viewer), any unit; triangles with
            a non-finite corner are skipped.
        faces: (F, 3) vertex indices (either winding).
        view: the image mapping (:func:`fit_view`).
        material: (F,) 0 skin, 1 mouth opening, 2 eye; all skin if None.

    Returns:
        (view.size, view.size, 3) uint8 RGB.
    """
    big = view.size * SUPERSAMPLE
    canvas = np.empty((big, big, 3), np.uint8)
    canvas[:] = BACKGROUND
    corners = vertices[faces]                                    # (F, 3, 3)
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    lengths = np.linalg.norm(normals, axis=1)
    drawable = np.isfinite(lengths) & (lengths > 0)
    if not drawable.any():
        return cv2.resize(canvas, (view.size, view.size), interpolation=cv2.INTER_AREA)
    normals = normals[drawable] / lengths[drawable, None]
    normals[normals[:, 2] < 0] *= -1.0                           # two-sided
    shade = AMBIENT + (1.0 - AMBIENT) * np.clip(normals @ LIGHT, 0.0, 1.0)
    kinds = np.zeros(int(drawable.sum()), np.int64) if material is None else np.asarray(material)[drawable]
    colours = np.clip(MATERIAL_COLOURS[kinds] * shade[:, None], 0, 255).astype(np.uint8)
    depth = corners[drawable, :, 2].mean(axis=1)

    safe = np.where(np.isfinite(vertices), vertices, 0.0)
    scaled = OrthoView(view.centre, view.scale * SUPERSAMPLE, big).pixels(safe)
    triangles = np.round(scaled[faces[drawable]] * (1 << _SUBPIXEL_BITS)).astype(np.int32)  # (F', 3, 2)
    colour_lists = colours.tolist()
    for index in np.argsort(depth, kind="stable"):              # far to near
        cv2.fillConvexPoly(canvas, triangles[index], colour_lists[index], lineType=cv2.LINE_8,
                           shift=_SUBPIXEL_BITS)
    return cv2.resize(canvas, (view.size, view.size), interpolation=cv2.INTER_AREA)


def render_mesh(vertices: np.ndarray, faces: np.ndarray, size: int = 240,
                material: np.ndarray | None = None, view: np.ndarray | None = None) -> np.ndarray:
    """Render one mesh, fitted into the image on its own.

    Args:
        vertices: (V, 3) head-frame points (x left-of-subject, y up, z to the viewer), any unit.
        faces: (F, 3) vertex indices.
        size: output width and height in pixels.
        material: (F,) 0 skin, 1 mouth opening, 2 eye; all skin if None.
        view: (3, 3) rotation applied to the vertices before viewing along −z.

    Returns:
        (size, size, 3) uint8 RGB image (the background alone when no vertex is finite).
    """
    points = np.asarray(vertices, np.float64)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"vertices must have shape (V, 3), got {points.shape}")
    faces = np.asarray(faces, np.int64)
    if view is not None:
        points = points @ np.asarray(view, np.float64).T
    whole = np.isfinite(points[faces]).all(axis=(1, 2))
    if not whole.any():
        blank = np.empty((size, size, 3), np.uint8)
        blank[:] = BACKGROUND
        return blank
    return render_frame(points, faces, fit_view(points[None], faces[whole], size),
                        None if material is None else np.asarray(material))


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
