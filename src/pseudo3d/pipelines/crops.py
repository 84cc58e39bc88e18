"""Face crops by a similarity transform from the landmarks, in the convention of the encoder that
reads them (:data:`CROP_CONVENTIONS`; a backend names its own, ``BackendSpec.crop``).

* ``deca``: DECA crops a square around the 68-point landmark box: side = mean of box width and
  height × 1.1, scaled by ``track.crop_scale`` (1.25, DECA's), centred on the box, mapped onto a
  ``S × S`` image (corner to corner, ``S - 1`` pixels). MediaPipe's mesh reaches above the brows,
  so the box here spans the landmarks from the eyebrows down to the chin, which is what the
  68-point layout covers.
* ``spectre``: SPECTRE's demo (github.com/filby89/spectre ``demo.py`` ``crop_face``): the box of
  the 68 landmarks, taken from the tracked mesh by :data:`MEDIAPIPE_TO_68`; side = ``int(mean of
  box width and height × 1.6)`` pixels, centred on the box.

Both transforms are axis-aligned (no rotation), as in DECA and SPECTRE.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from pseudo3d.config import TrackConfig


@lru_cache(maxsize=1)
def _landmark_sets() -> tuple[np.ndarray, np.ndarray]:
    """(face-box candidates: face oval, brows and lips; brow landmarks), MediaPipe indices."""
    from mediapipe.python.solutions import face_mesh_connections as fmc

    def indices(*edge_sets) -> set[int]:
        return {i for edges in edge_sets for edge in edges for i in edge}

    brows = indices(fmc.FACEMESH_LEFT_EYEBROW, fmc.FACEMESH_RIGHT_EYEBROW)
    box = brows | indices(fmc.FACEMESH_FACE_OVAL, fmc.FACEMESH_LIPS)
    return np.array(sorted(box), np.int64), np.array(sorted(brows), np.int64)


def face_box(landmarks: np.ndarray) -> tuple[float, float, float]:
    """(centre x, centre y, side) of the DECA-style box in the landmarks' pixel frame.

    ``landmarks``: (478, 2+) pixels. The forehead part of the face oval (above the highest brow
    point) is left out so the box matches the 68-point convention; side = mean of box width
    and height × 1.1.
    """
    box_indices, brow_indices = _landmark_sets()
    points = landmarks[box_indices, :2]
    top = float(landmarks[brow_indices, 1].min())
    points = points[points[:, 1] >= top]
    left, top_y = points.min(axis=0)
    right, bottom = points.max(axis=0)
    side = ((right - left) + (bottom - top_y)) / 2.0 * 1.1
    return float((left + right) / 2.0), float((top_y + bottom) / 2.0), float(side)


CROP_CONVENTIONS = ("deca", "spectre")
"""How a backend's encoder was trained to see a face (module docstring)."""
SPECTRE_SCALE = 1.6
"""SPECTRE's crop side relative to the mean side of the 68-landmark box."""
MEDIAPIPE_TO_68 = (
    162, 234, 93, 58, 172, 136, 149, 148, 152, 377, 378, 365, 397, 288, 323, 454, 389,  # 0-16 jaw line
    71, 63, 105, 66, 107, 336, 296, 334, 293, 301,  # 17-26 brows
    168, 197, 5, 4, 75, 97, 2, 326, 305,  # 27-35 nose
    33, 160, 158, 133, 153, 144, 362, 385, 387, 263, 373, 380,  # 36-47 eyes
    61, 39, 37, 0, 267, 269, 291, 405, 314, 17, 84, 181,  # 48-59 outer lips
    78, 82, 13, 312, 308, 317, 14, 87,  # 60-67 inner lips
)
"""MediaPipe Face Mesh vertex for each of the 68 iBUG-300W landmarks (the mapping LatentSync and
many MediaPipe-to-dlib tools use). Its jaw line starts and ends at the temples (162, 389), where
the 68-point contour starts, so the box it spans is the 68-point box."""


def crop_square(landmarks: np.ndarray, convention: str, scale: float) -> tuple[float, float, float]:
    """(centre x, centre y, side) of the square to crop, image pixels, from ``landmarks``
    (478, 2+) pixels, in ``convention`` (:data:`CROP_CONVENTIONS`); ``scale`` is
    ``track.crop_scale``, which only ``deca`` takes. Raises ValueError for another convention."""
    if convention == "deca":
        centre_x, centre_y, side = face_box(landmarks)
        return centre_x, centre_y, side * scale
    if convention == "spectre":
        points = landmarks[list(MEDIAPIPE_TO_68), :2]
        left, top = points.min(axis=0)
        right, bottom = points.max(axis=0)
        side = float(int(((right - left) + (bottom - top)) / 2.0 * SPECTRE_SCALE))
        return float(right - (right - left) / 2.0), float(bottom - (bottom - top) / 2.0), side
    raise ValueError(f"crop convention must be one of {', '.join(CROP_CONVENTIONS)}, got {convention!r}")


def crop_meta(track: TrackConfig, convention: str) -> dict[str, object]:
    """How a sample's crops were cut, as ``meta.json`` records it: ``size`` (pixels),
    ``convention`` and ``scale`` (crop side relative to the convention's box)."""
    scale = track.crop_scale if convention == "deca" else SPECTRE_SCALE
    return {"size": track.crop_size, "scale": scale, "convention": convention}


def crop_transform(centre_x: float, centre_y: float, extent: float, size: int) -> np.ndarray:
    """(2, 3) float64 matrix mapping image pixels to crop pixels: a square of ``extent`` pixels
    centred at the given point onto ``size × size``."""
    factor = (size - 1) / extent
    return np.array([[factor, 0.0, (extent / 2.0 - centre_x) * factor],
                     [0.0, factor, (extent / 2.0 - centre_y) * factor]])


def warp_crop(image: np.ndarray, transform: np.ndarray, size: int) -> np.ndarray:
    """Apply a crop transform to an RGB image: (size, size, 3) uint8, borders replicated."""
    return cv2.warpAffine(image, transform, (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)
