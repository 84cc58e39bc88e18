"""Face crops by a similarity transform from the landmarks, following DECA's convention.

DECA crops a square around the 68-point landmark box: side = mean of box width and height
× 1.1, scaled by 1.25, centred on the box, mapped onto a ``S × S`` image (corner to corner,
``S - 1`` pixels). MediaPipe's mesh reaches above the brows, so the box here spans the
landmarks from the eyebrows down to the chin, which is what the 68-point layout covers.
The transform is axis-aligned (no rotation), as in DECA.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np


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


def crop_transform(centre_x: float, centre_y: float, side: float, scale: float, size: int) -> np.ndarray:
    """(2, 3) float64 matrix mapping image pixels to crop pixels: a square of ``side * scale``
    pixels centred at the given point onto ``size × size``."""
    extent = side * scale
    factor = (size - 1) / extent
    return np.array([[factor, 0.0, (extent / 2.0 - centre_x) * factor],
                     [0.0, factor, (extent / 2.0 - centre_y) * factor]])


def warp_crop(image: np.ndarray, transform: np.ndarray, size: int) -> np.ndarray:
    """Apply a crop transform to an RGB image: (size, size, 3) uint8, borders replicated."""
    return cv2.warpAffine(image, transform, (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)
