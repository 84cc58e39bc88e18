"""MediaPipe face tracking: 478 landmarks per frame plus a detector score.

MediaPipe's Face Mesh graph tracks from frame to frame and runs its face detector again whenever
the landmark model's face-presence score drops below ``min_tracking_confidence``; :meth:`reset`
forces a fresh detection (used at shot cuts). The graph does not expose a per-frame confidence,
so the full-range face detector also runs on every frame and its score for the tracked face is
reported as the frame's detection confidence.

When several faces are in view the most prominent one is followed: the graph tracks up to
``track.max_faces`` faces, and the tracker keeps the face it followed in the previous frame (the one
overlapping it most) unless another is :data:`SWITCH_RATIO` times larger; a new track starts on
the largest face.

Both models ship inside the mediapipe wheel (0.10.21); nothing is downloaded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pseudo3d.config import TrackConfig

N_LANDMARKS = 478
SWITCH_RATIO = 1.5
"""A face this many times larger (in area) than the followed one takes the track over."""


@dataclass
class Observation:
    landmarks: np.ndarray | None
    """(478, 3) float32: x, y in working-image pixels, z in the same pixel scale; None if lost."""
    confidence: float
    """Detector score of the tracked face, 0.0 when the detector did not see it."""


class FaceTracker:
    """One MediaPipe Face Mesh graph and one face detector; not thread-safe, one per worker."""

    def __init__(self, config: TrackConfig):
        import mediapipe as mp  # heavy import: only where tracking happens

        self._mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=False,
            max_num_faces=config.max_faces,
            refine_landmarks=True,
            min_detection_confidence=config.min_detection_confidence,
            min_tracking_confidence=config.min_tracking_confidence,
        )
        self._detector = mp.solutions.face_detection.FaceDetection(
            model_selection=1, min_detection_confidence=0.2)
        self._previous: tuple[float, ...] | None = None

    def reset(self) -> None:
        """Forget the current track; the next frame starts from a fresh detection."""
        self._mesh.reset()
        self._previous = None

    def __call__(self, image: np.ndarray) -> Observation:
        """Track one RGB uint8 (H, W, 3) frame."""
        height, width = image.shape[:2]
        result = self._mesh.process(image)
        if not result.multi_face_landmarks:
            self._previous = None
            return Observation(None, self._best_score(image, None))
        faces = [np.array([(p.x * width, p.y * height, p.z * width) for p in face.landmark], np.float32)
                 for face in result.multi_face_landmarks]
        landmarks = faces[choose_face([_bounds(face) for face in faces], self._previous)]
        self._previous = _bounds(landmarks)
        return Observation(landmarks, self._best_score(image, landmarks))

    def _best_score(self, image: np.ndarray, landmarks: np.ndarray | None) -> float:
        """Detector score of the detection that overlaps the tracked face most (any detection
        when the track is lost)."""
        detections = self._detector.process(image).detections or []
        if not detections:
            return 0.0
        if landmarks is None:
            return float(max(d.score[0] for d in detections))
        height, width = image.shape[:2]
        face = _bounds(landmarks)
        best = 0.0
        for detection in detections:
            box = detection.location_data.relative_bounding_box
            other = (box.xmin * width, box.ymin * height,
                     (box.xmin + box.width) * width, (box.ymin + box.height) * height)
            if _iou(face, other) > 0.3:
                best = max(best, float(detection.score[0]))
        return best

    def close(self) -> None:
        self._mesh.close()
        self._detector.close()


def choose_face(boxes: list[tuple[float, ...]], previous: tuple[float, ...] | None) -> int:
    """Index of the face to follow among ``boxes`` (x0, y0, x1, y1): the one overlapping
    ``previous`` most, unless another is ``SWITCH_RATIO`` times larger; the largest otherwise."""
    areas = [_area(box) for box in boxes]
    largest = int(np.argmax(areas))
    if previous is None:
        return largest
    overlaps = [_iou(box, previous) for box in boxes]
    same = int(np.argmax(overlaps))
    if overlaps[same] <= 0.0 or areas[largest] > SWITCH_RATIO * areas[same]:
        return largest
    return same


def _bounds(landmarks: np.ndarray) -> tuple[float, ...]:
    return (*(float(v) for v in landmarks[:, :2].min(axis=0)), *(float(v) for v in landmarks[:, :2].max(axis=0)))


def _area(box: tuple[float, ...]) -> float:
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = _area(a) + _area(b) - inter
    return inter / union if union > 0 else 0.0
