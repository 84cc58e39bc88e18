"""MediaPipe's face detectors, looking at a frame through windows.

A detector (BlazeFace; the legacy ``solutions`` API's full-range model, ``model_selection=1``,
or the short-range one Face Mesh uses; both ship in the mediapipe wheel) sees a small square
image. Whether it finds a face, and how sure it is, depends on how large the face is in what it
sees: a face filling a tight 224 × 224 crop scores 0.03–0.8 with the full-range model, the same
face with a border around it 0.8–0.9, and a face under ~5 % of the image is missed. So the
tracker searches a frame through several windows (:func:`search_windows`), each covering a range
of face sizes, and scores the tracked face in its own window, where it always has the same size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from pseudo3d.pipelines.face_window import Window, face_angle

VIEW_SIZE = 192
"""Side of a search window in pixels: the full-range model's input size, so it is not resampled twice."""
FACE_FRACTION_MIN = 0.06
"""Smallest face (detector box side) the model finds reliably, as a fraction of what it sees."""
TILE_OVERLAP = 0.25
"""Overlap of neighbouring small-face tiles, as a fraction of their side."""
SAME_FACE_OVERLAP = 0.5
"""Detections overlapping by this share of the smaller one's box are one face (the same face seen
through two windows, or once upright and once, wrongly, sideways, gives boxes of different sizes)."""


@dataclass(frozen=True)
class Detection:
    """One detected face, in frame pixels (continuous coordinates; see :mod:`face_window`)."""

    box: tuple[float, float, float, float]
    """x0, y0, x1, y1 of the detector's box (about brows to chin), axis-aligned in the frame."""
    keypoints: np.ndarray
    """(6, 2) float64: subject's right eye, left eye, nose tip, mouth centre, right ear, left ear."""
    score: float
    """The detector's score, 0–1."""

    @property
    def side(self) -> float:
        """Geometric mean of the box's width and height, pixels."""
        return math.sqrt(max(0.0, self.box[2] - self.box[0]) * max(0.0, self.box[3] - self.box[1]))

    @property
    def centre(self) -> tuple[float, float]:
        return (self.box[0] + self.box[2]) / 2.0, (self.box[1] + self.box[3]) / 2.0

    @property
    def angle(self) -> float:
        """In-plane direction from the eye and mouth keypoints (see :func:`face_window.face_angle`)."""
        return face_angle(self.keypoints[0], self.keypoints[1], self.keypoints[3])


class FaceDetector:
    """One of MediaPipe's face detectors (``full_range``: model_selection 1, for search; else the
    short-range model, the one Face Mesh uses, for faces that fill much of what it sees); reports
    every detection scoring at least ``min_score``."""

    def __init__(self, min_score: float, full_range: bool = True):
        import mediapipe as mp  # heavy import: only where tracking happens

        self._model = mp.solutions.face_detection.FaceDetection(model_selection=1 if full_range else 0,
                                                                min_detection_confidence=min_score)
        self.input_size = 192 if full_range else 128
        """Side of the model's input image, pixels."""

    def detect(self, frame: np.ndarray, window: Window, image: np.ndarray | None = None) -> list[Detection]:
        """Detections in ``window`` of the RGB uint8 ``frame``, mapped to frame pixels. ``image``: the
        window's image when the caller already made it."""
        if image is None:
            image = window.image(frame)
        if image.shape[0] > self.input_size:
            # Area-averaged to the model's input (MediaPipe would resample it bilinearly, aliasing a
            # large window; a smaller image is also cheaper to hand over).
            image = cv2.resize(image, (self.input_size, self.input_size), interpolation=cv2.INTER_AREA)
        found = self._model.process(image).detections or []
        detections = []
        for detection in found:
            data = detection.location_data
            box = data.relative_bounding_box
            corners = np.array([[box.xmin, box.ymin], [box.xmin + box.width, box.ymin + box.height]]) * window.size
            corners = window.to_frame(corners)
            keypoints = np.array([[p.x, p.y] for p in data.relative_keypoints], np.float64) * window.size
            x0, y0 = corners.min(axis=0)
            x1, y1 = corners.max(axis=0)
            detections.append(Detection((float(x0), float(y0), float(x1), float(y1)),
                                        window.to_frame(keypoints), float(detection.score[0])))
        return detections

    def close(self) -> None:
        self._model.close()


def search_windows(width: int, height: int, min_face_px: float, quarter_turns: int = 0) -> list[Window]:
    """Windows that together find every face from ``min_face_px`` (detector box side) up to one
    filling the frame, in a ``width × height`` frame, turned ``quarter_turns``.

    1. The whole frame with a border as wide as the frame (a face filling a tight crop is then
       half of what the detector sees): faces from a tenth of the frame's longer side up.
    2. The whole frame, when faces smaller than that are wanted.
    3. Overlapping square tiles small enough that a ``min_face_px`` face is
       :data:`FACE_FRACTION_MIN` of one, when the frame is larger than that.
    """
    longest = float(max(width, height))
    windows = [Window(width / 2.0, height / 2.0, 2.0 * longest, VIEW_SIZE, quarter_turns)]
    if 2.0 * longest * FACE_FRACTION_MIN > min_face_px:
        windows.append(Window(width / 2.0, height / 2.0, longest, VIEW_SIZE, quarter_turns))
    tile = min_face_px / FACE_FRACTION_MIN
    if tile < longest:
        for y in _tile_starts(height, tile):
            for x in _tile_starts(width, tile):
                windows.append(Window(x + tile / 2.0, y + tile / 2.0, tile, VIEW_SIZE, quarter_turns))
    return windows


def _tile_starts(length: int, tile: float) -> list[float]:
    """Evenly spread starts of tiles of side ``tile`` covering ``[0, length)`` with overlap."""
    if tile >= length:
        return [(length - tile) / 2.0]
    count = math.ceil((length - tile) / (tile * (1.0 - TILE_OVERLAP))) + 1
    return [i * (length - tile) / (count - 1) for i in range(count)]


def suppress(detections: list[Detection]) -> list[Detection]:
    """One detection per face: the highest-scoring of each group overlapping by
    :data:`SAME_FACE_OVERLAP` or more; sorted by score, best first."""
    kept: list[Detection] = []
    for detection in sorted(detections, key=lambda d: -d.score):
        if all(overlap(detection.box, other.box) < SAME_FACE_OVERLAP for other in kept):
            kept.append(detection)
    return kept


def area(box: tuple[float, ...]) -> float:
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])


def overlap(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """Intersection of two (x0, y0, x1, y1) boxes over the smaller one's area; 0 when they do not meet."""
    smaller = min(area(a), area(b))
    return _intersection(a, b) / smaller if smaller > 0 else 0.0


def _intersection(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes; 0 when they do not meet."""
    inter = _intersection(a, b)
    union = area(a) + area(b) - inter
    return inter / union if union > 0 else 0.0
