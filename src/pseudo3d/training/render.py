"""Preview videos of animated face meshes: frames from the QA report's renderer
(:mod:`pseudo3d.qa.report.render`) in a frontal view fitted once to the whole sequence, so the
head does not jump or breathe as the mouth opens, written as H.264 (+ AAC)."""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np

from pseudo3d.qa.report.render import fit_view, mediapipe_topology, render_frame
from pseudo3d.reconstruction.assets import N_MEDIAPIPE
from pseudo3d.training.data.windows import SAMPLE_RATE

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
        faces, mediapipe_material = mediapipe_topology()
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
    canonical template's (x, y) without the slivers along the outline (the renderer's
    :func:`~pseudo3d.qa.report.render.mediapipe_topology`; computed once per process)."""
    return mediapipe_topology()[0]


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
