"""Points drawn over the gallery's face pictures (the samples' thumbnails)."""

from __future__ import annotations

import cv2
import numpy as np

LANDMARK_COLOUR = (64, 224, 255)
"""RGB of the drawn points: a light cyan that reads on skin and on dark backgrounds."""


def draw_points(image: np.ndarray, points: np.ndarray, scale: float = 1.0, radius: float = 1.0,
                colour: tuple[int, int, int] = LANDMARK_COLOUR) -> np.ndarray:
    """A copy of an (H, W, 3) RGB image with (N, 2) pixel points (times ``scale``) drawn as small
    anti-aliased dots over a faint dark halo; non-finite points are skipped."""
    canvas = image.copy()
    shift = 4  # sub-pixel precision for cv2: coordinates × 16
    points = np.asarray(points, np.float64)[:, :2] * scale
    points = points[np.isfinite(points).all(axis=1)]
    fixed = np.round(points * (1 << shift)).astype(np.int64)
    halo = canvas.copy()
    for x, y in fixed:
        cv2.circle(halo, (int(x), int(y)), int(round((radius + 0.6) * (1 << shift))), (0, 0, 0), -1, cv2.LINE_AA, shift)
    canvas = cv2.addWeighted(halo, 0.25, canvas, 0.75, 0)
    for x, y in fixed:
        cv2.circle(canvas, (int(x), int(y)), int(round(radius * (1 << shift))), colour, -1, cv2.LINE_AA, shift)
    return canvas
