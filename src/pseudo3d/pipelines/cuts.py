"""Shot-cut detection from colour histograms of consecutive frames.

A hard cut changes the colour distribution of the whole frame at once, while head motion and
talking barely move it, so the Bhattacharyya distance between the HSV histograms of
consecutive (downscaled) frames separates the two well.
"""

from __future__ import annotations

import cv2
import numpy as np

_THUMB = 96
_BINS = (16, 8, 8)  # hue, saturation, value


class ShotCutDetector:
    """Call once per frame, in order; returns True when the frame starts a new shot."""

    def __init__(self, threshold: float):
        self.threshold = threshold
        self._previous: np.ndarray | None = None
        self.last_distance = 0.0

    def __call__(self, image: np.ndarray) -> bool:
        histogram = colour_histogram(image)
        previous, self._previous = self._previous, histogram
        if previous is None:
            self.last_distance = 0.0
            return False
        self.last_distance = float(cv2.compareHist(previous, histogram, cv2.HISTCMP_BHATTACHARYYA))
        return self.last_distance > self.threshold


def colour_histogram(image: np.ndarray) -> np.ndarray:
    """Normalised HSV histogram of an RGB uint8 image, float32 of shape ``_BINS``."""
    height, width = image.shape[:2]
    factor = _THUMB / max(height, width)
    thumb = cv2.resize(image, (max(1, round(width * factor)), max(1, round(height * factor))),
                       interpolation=cv2.INTER_AREA)
    hsv = cv2.cvtColor(thumb, cv2.COLOR_RGB2HSV)
    histogram = cv2.calcHist([hsv], [0, 1, 2], None, list(_BINS), [0, 180, 0, 256, 0, 256])
    return cv2.normalize(histogram, histogram, alpha=1.0, norm_type=cv2.NORM_L1).astype(np.float32)
