"""Preview videos of animated face meshes: a small software renderer and an H.264 + AAC writer.

The view is frontal and orthographic in the mesh's own frame (x to the subject's left = image
right, y up = image up, z towards the viewer), fitted once to the mesh's x–y bounds over the
whole sequence, so the head does not jump or breathe as the mouth opens. Triangles are
Lambert-shaded with one light from the viewer's upper left and filled far to near (painter's
order) with ``cv2.fillConvexPoly`` on a 2× supersampled canvas, then area-downsampled. Shading is
two-sided: an open surface such as MediaPipe's mesh folds away from the viewer at its rim, and
the painter's order already hides what lies behind.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from pseudo3d.reconstruction.assets import N_MEDIAPIPE
from pseudo3d.training.data.windows import SAMPLE_RATE

BACKGROUND = (232, 234, 238)
"""Neutral light grey (RGB)."""
MATERIAL_COLOURS = np.array([[200, 196, 190],   # 0 skin: a warm clay
                             [84, 40, 48],      # 1 mouth opening
                             [70, 78, 96]],     # 2 eye
                            np.float64)
LIGHT = np.array([-0.35, 0.5, 1.0]) / np.linalg.norm([-0.35, 0.5, 1.0])
"""Unit direction towards the light in the mesh frame: from the viewer, above, to the left."""
AMBIENT = 0.3
SUPERSAMPLE = 2
MARGIN = 0.06
"""Fraction of the image left empty on each side of the sequence's bounds."""
_SUBPIXEL_BITS = 2  # cv2 fill coordinates carry 2 fractional bits


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
    ``faces`` use (non-finite ones ignored) into a ``size``-pixel square with ``margin``.

    vertices: (T, V, 3); faces: (F, 3)."""
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
        vertices: (V, 3) mesh-frame points (y up, z towards the viewer), any unit.
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


def render_frames(vertices: np.ndarray, faces: np.ndarray, size: int = 512,
                  material: np.ndarray | None = None) -> Iterator[np.ndarray]:
    """(size, size, 3) uint8 RGB frames of a (T, V, 3) sequence, one per frame, in a view fitted
    to the whole sequence."""
    vertices, faces, material = _checked_mesh(vertices, faces, material)  # now, not on the first frame
    view = fit_view(vertices, faces, size)
    return (render_frame(frame, faces, view, material) for frame in vertices)


def render_preview(path: str | Path, vertices: np.ndarray, faces: np.ndarray | None, fps: float,
                   audio: np.ndarray | None = None, size: int = 512, *, sample_rate: int = SAMPLE_RATE,
                   material: np.ndarray | None = None) -> Path:
    """Write an MP4 (H.264, plus AAC when ``audio`` is given) of an animated mesh.

    Args:
        path: output ``.mp4``; it appears only once complete.
        vertices: (T, V, 3) mesh-frame vertices (y up, z towards the viewer), any unit.
        faces: (F, 3) triangles, or None for MediaPipe's 478-landmark mesh, which is then
            triangulated once (:func:`mediapipe_faces`) with a dark mouth opening and eyes.
        fps: frames per second of ``vertices``; the video has exactly T frames.
        audio: (S,) float32 mono samples in [−1, 1] at ``sample_rate`` Hz (16 kHz by default),
            from the clip's first frame, or None for a silent video.
        size: width and height in pixels (even, for H.264's 4:2:0 chroma).
        material: (F,) per-triangle 0 skin, 1 mouth opening, 2 eye; all skin if None.

    Returns:
        ``path``.
    """
    from pseudo3d.synth.mp4 import write_mp4

    vertices = np.asarray(vertices, np.float64)
    if faces is None:
        if vertices.ndim != 3 or vertices.shape[1] != N_MEDIAPIPE:
            raise ValueError(f"faces=None means a MediaPipe mesh of shape (T, {N_MEDIAPIPE}, 3), "
                             f"got vertices {vertices.shape}; pass the mesh's faces")
        faces, mediapipe_material = _mediapipe_topology()
        material = mediapipe_material if material is None else material
    if not isinstance(size, (int, np.integer)) or size < 16 or size % 2:
        raise ValueError(f"size must be an even number of pixels ≥ 16, got {size}")
    if not (np.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a positive number, got {fps}")
    samples = None
    if audio is not None:
        samples = np.asarray(audio, np.float32)
        if samples.ndim != 1 or samples.size == 0:
            raise ValueError(f"audio must be (S,) mono samples, got shape {samples.shape}")
        if not np.isfinite(samples).all():
            raise ValueError("audio must be finite (found NaN or inf samples)")
        samples = np.clip(samples, -1.0, 1.0)[None, :]
    frames = render_frames(vertices, faces, int(size), material)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_mp4(path, frames, Fraction(fps).limit_denominator(1001), int(size), int(size), samples, sample_rate)
    return path


def mediapipe_faces() -> np.ndarray:
    """(F, 3) int64 triangles over MediaPipe's 478 landmarks: a Delaunay triangulation of the
    canonical template's (x, y) without the slivers along the outline (shared with the QA
    report's renderer; computed once per process)."""
    return _mediapipe_topology()[0]


def _mediapipe_topology() -> tuple[np.ndarray, np.ndarray]:
    from pseudo3d.qa.report.render import mediapipe_topology  # the QA report's, so both views agree

    return mediapipe_topology()


def _checked_mesh(vertices, faces, material) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    vertices = np.asarray(vertices, np.float64)
    if vertices.ndim != 3 or vertices.shape[2] != 3 or vertices.shape[0] == 0:
        raise ValueError(f"vertices must have shape (T, V, 3) with T ≥ 1, got {vertices.shape}")
    faces = np.asarray(faces)
    if faces.ndim != 2 or faces.shape[1] != 3 or faces.shape[0] == 0 or not np.issubdtype(faces.dtype, np.integer):
        raise ValueError(f"faces must be a non-empty (F, 3) integer array, got shape {faces.shape}, "
                         f"dtype {faces.dtype}")
    faces = faces.astype(np.int64)
    if faces.min() < 0 or faces.max() >= vertices.shape[1]:
        raise ValueError(f"faces index vertices {int(faces.min())}..{int(faces.max())}, but the mesh has "
                         f"{vertices.shape[1]} vertices")
    if material is not None:
        material = np.asarray(material)
        if material.shape != (len(faces),) or not np.isin(material, (0, 1, 2)).all():
            raise ValueError(f"material must be ({len(faces)},) values in {{0, 1, 2}}, got shape {material.shape}")
        material = material.astype(np.int64)
    return vertices, faces, material
