"""Square views of a frame, turned by quarter turns, and the face's in-plane direction.

The face tracker never runs a MediaPipe model on the whole frame as it is: it looks through
*windows*, squares of the frame (they may reach past its edges, where the edge pixels are
repeated, as MediaPipe's own crops do) resampled to a given size and turned by a multiple of 90°
so that the face inside is upright. A window is a similarity transform, so points found in it map
back to frame pixels exactly.

Coordinates are continuous pixels, as MediaPipe reports them (its normalised coordinates times
the image size): the left edge of the image is x = 0, its right edge x = width, and pixel ``i``
covers ``[i, i + 1)``. x goes right, y goes down.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

# MediaPipe landmark indices (Face Mesh, 478 points): outer and inner eye corners, inner lips.
RIGHT_EYE = (33, 133)
"""The subject's right eye (image left in an upright, unmirrored face)."""
LEFT_EYE = (362, 263)
INNER_LIPS = (13, 14)


@dataclass(frozen=True)
class Window:
    """A square of the frame, ``side`` pixels, centred at ``(centre_x, centre_y)``, resampled to
    ``size × size`` and turned ``quarter_turns`` × 90° counter-clockwise (on screen), so that a
    face rolled clockwise by that many quarter turns comes out upright."""

    centre_x: float
    centre_y: float
    side: float
    size: int
    quarter_turns: int = 0

    @property
    def scale(self) -> float:
        """Window pixels per frame pixel."""
        return self.size / self.side

    @property
    def matrix(self) -> np.ndarray:
        """(2, 3) affine map from frame to window coordinates (continuous pixels)."""
        s = self.scale
        # Frame → unturned window: the square's corner goes to the origin.
        shift = np.array([[s, 0.0, s * (self.side / 2.0 - self.centre_x)],
                          [0.0, s, s * (self.side / 2.0 - self.centre_y)],
                          [0.0, 0.0, 1.0]])
        return (_quarter_turn(self.quarter_turns, self.size) @ shift)[:2]

    def to_frame(self, points: np.ndarray) -> np.ndarray:
        """Map ``(N, 2)`` window points (continuous pixels) to frame pixels, ``(N, 2)`` float64."""
        inverse = cv2.invertAffineTransform(self.matrix)
        points = np.asarray(points, np.float64).reshape(-1, 2)
        return points @ inverse[:, :2].T + inverse[:, 2]

    def to_window(self, points: np.ndarray) -> np.ndarray:
        """Map ``(N, 2)`` frame points to window pixels, ``(N, 2)`` float64."""
        matrix = self.matrix
        points = np.asarray(points, np.float64).reshape(-1, 2)
        return points @ matrix[:, :2].T + matrix[:, 2]

    def image(self, frame: np.ndarray) -> np.ndarray:
        """The window's ``(size, size, 3)`` uint8 image of an RGB ``frame``; outside the frame the
        edge pixels are repeated.

        Strong reductions are done in two steps (an area-averaging shrink of the part of the
        frame the window covers, then the bilinear warp), so a big face is not aliased."""
        height, width = frame.shape[:2]
        corner = (self.centre_x - self.side / 2.0, self.centre_y - self.side / 2.0)
        if self.size == self.side and corner[0] == int(corner[0]) and corner[1] == int(corner[1]) \
                and -self.size < corner[0] < width and -self.size < corner[1] < height:
            return self._crop(frame, int(corner[0]), int(corner[1]))
        matrix = self.matrix
        source = frame
        reduction = 1.0 / self.scale
        if reduction > 2.0:
            x0 = max(0, int(math.floor(self.centre_x - self.side / 2.0)))
            y0 = max(0, int(math.floor(self.centre_y - self.side / 2.0)))
            x1 = min(width, int(math.ceil(self.centre_x + self.side / 2.0)))
            y1 = min(height, int(math.ceil(self.centre_y + self.side / 2.0)))
            if x1 - x0 < 2 or y1 - y0 < 2:
                return np.zeros((self.size, self.size, 3), np.uint8)
            factor = math.floor(reduction)
            small_w, small_h = max(1, round((x1 - x0) / factor)), max(1, round((y1 - y0) / factor))
            source = cv2.resize(frame[y0:y1, x0:x1], (small_w, small_h), interpolation=cv2.INTER_AREA)
            # The shrunk part's continuous coordinates: (x - x0) · small_w / (x1 - x0).
            to_small = np.array([[small_w / (x1 - x0), 0.0, -x0 * small_w / (x1 - x0)],
                                 [0.0, small_h / (y1 - y0), -y0 * small_h / (y1 - y0)],
                                 [0.0, 0.0, 1.0]])
            full = np.vstack([matrix, [0.0, 0.0, 1.0]]) @ np.linalg.inv(to_small)
            matrix = full[:2]
        return cv2.warpAffine(source, _to_pixel_centres(matrix), (self.size, self.size), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)

    def _crop(self, frame: np.ndarray, x0: int, y0: int) -> np.ndarray:
        """A window at the frame's own scale and whole-pixel place: cut out, no resampling."""
        height, width = frame.shape[:2]
        x1, y1 = x0 + self.size, y0 + self.size
        inside = frame[max(y0, 0):min(y1, height), max(x0, 0):min(x1, width)]
        image = cv2.copyMakeBorder(inside, max(-y0, 0), max(y1 - height, 0), max(-x0, 0), max(x1 - width, 0),
                                   cv2.BORDER_REPLICATE)
        return np.ascontiguousarray(np.rot90(image, self.quarter_turns % 4))


def _quarter_turn(turns: int, size: float) -> np.ndarray:
    """3×3 map of continuous coordinates of a ``size`` square turned ``turns`` × 90° counter-clockwise
    on screen (as ``np.rot90`` turns an image)."""
    turns %= 4
    if turns == 0:
        return np.eye(3)
    if turns == 1:
        return np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, size], [0.0, 0.0, 1.0]])
    if turns == 2:
        return np.array([[-1.0, 0.0, size], [0.0, -1.0, size], [0.0, 0.0, 1.0]])
    return np.array([[0.0, -1.0, size], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])


def _to_pixel_centres(matrix: np.ndarray) -> np.ndarray:
    """The same map for OpenCV, whose pixel ``i`` sits at ``i`` rather than ``i + 0.5``."""
    out = matrix.copy()
    out[:, 2] += matrix[:, :2].sum(axis=1) * 0.5 - 0.5
    return out


def face_angle(right_eye: np.ndarray, left_eye: np.ndarray, mouth: np.ndarray) -> float:
    """In-plane direction of a face, radians in (-π, π]: 0 upright (eyes level, mouth below),
    > 0 turned clockwise on screen (the convention of the synthetic corpus's ``roll_rad``).

    Averages what the eye line (subject's right eye → left eye, pointing image-right when
    upright) and the eyes → mouth direction (pointing down when upright) each say. Points are
    ``(2,)`` pixels."""
    eyes = np.asarray(left_eye, float) - np.asarray(right_eye, float)
    down = np.asarray(mouth, float) - (np.asarray(left_eye, float) + np.asarray(right_eye, float)) / 2.0
    eyes /= max(float(np.linalg.norm(eyes)), 1e-9)
    down /= max(float(np.linalg.norm(down)), 1e-9)
    along = eyes + np.array([down[1], -down[0]])     # "down" turned back by a quarter turn lies along the eyes
    return float(math.atan2(along[1], along[0]))


def landmark_angle(landmarks: np.ndarray) -> float:
    """:func:`face_angle` of ``(478, 2+)`` Face Mesh landmarks."""
    return face_angle(landmarks[list(RIGHT_EYE), :2].mean(axis=0), landmarks[list(LEFT_EYE), :2].mean(axis=0),
                      landmarks[list(INNER_LIPS), :2].mean(axis=0))


def quarter_turns(angle: float) -> int:
    """The whole number of quarter turns (0–3) nearest to a clockwise ``angle`` in radians."""
    return int(round(angle / (math.pi / 2.0))) % 4


def angle_between(a: float, b: float) -> float:
    """Absolute difference of two angles, radians in [0, π]."""
    return abs(math.remainder(a - b, 2.0 * math.pi))
