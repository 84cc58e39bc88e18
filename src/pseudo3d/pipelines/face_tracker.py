"""Face tracking: find the face in the whole frame, then follow it with Face Mesh in a window.

Per frame, the tracker

1. **finds** faces when it has none (at the start, after a loss, after :meth:`FaceTracker.reset`):
   MediaPipe's full-range detector looks at the frame through several windows (the frame with a
   border as wide as itself, the frame, and tiles for small faces; see
   :func:`face_detector.search_windows`), so faces from ``track.min_face_px`` up to one filling a
   tight crop are found (the finer windows, and with ``track.find_rotated_faces`` the bordered
   frame turned by 90°, 180° and 270° for video whose rotation is not tagged, only now and then:
   :data:`THOROUGH_SEARCH_EVERY`). Of the ``track.max_faces`` best-scoring faces the largest is
   chosen (:func:`choose_face`);
2. **places a window** on it: a square :data:`WINDOW_FACES` face sizes wide (a plain crop of the
   frame, or resampled to :data:`WINDOW_SIZES` when the face is small or large; past the frame's
   edge its pixels are repeated, as Face Mesh does), turned by quarter turns so that the face is
   upright. Which way is up is settled in the window, where the face is large: the short-range
   detector (the one Face Mesh uses) scores it in all four quarter turns, the best wins, and a
   face that does not score :data:`ORIENTATION_MARGIN` better the right way up than upside down
   is not tracked (``rejected="orientation"``);
3. **tracks** the face in the window with MediaPipe Face Mesh (478 landmarks), whose graph
   follows the face from frame to frame by itself (its landmarks place the next frame's region,
   which keeps them stable). The window stays put while the face stays well inside it at about
   the size it was placed for, and moves, keeping the graph's track, when the face drifts
   :data:`DRIFT_FACES` face sizes off its centre, changes size by more than
   :data:`RESIZE_RATIO` or turns past :data:`MAX_WINDOW_ROLL`;
4. **scores** the frame: the short-range detector looks at the same window, where the face is
   always about 40 % of the picture, and the score of its detection covering the landmarks is
   the frame's confidence (0 when none does). It does not depend on how large the face is in the
   frame: a face filling a tight 224 × 224 crop scores like the same face in a wide shot;
5. **checks orientation**: the landmarks' eyes → mouth direction must agree (within
   :data:`MAX_ANGLE_DISAGREEMENT`) with that of the detection's eye and mouth keypoints, and must
   not be upside down in the window. Otherwise the landmarks are dropped
   (``rejected="orientation"``) and the face is searched for again, so landmarks of an upright
   face are never laid over an upside-down one.

Every :data:`SWITCH_CHECK_EVERY` frames the whole frame is searched again (at the coarsest scale
that sees a face a little larger than the followed one), and another face takes the track over
if it is :data:`SWITCH_RATIO` times larger than the followed one.

Landmarks are reported in the frame's pixels whatever the window. Both detectors and Face Mesh
ship inside the mediapipe wheel (0.10.21, the legacy ``solutions`` API); nothing is downloaded.
docs/tracking.md has the measurements behind the constants below.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pseudo3d.config import TrackConfig
from pseudo3d.pipelines.face_detector import (FACE_FRACTION_MIN, Detection, FaceDetector, area, iou, search_windows,
                                                   suppress)
from pseudo3d.pipelines.face_window import Window, angle_between, landmark_angle, quarter_turns

SWITCH_RATIO = 1.5
"""A face this many times larger (in area) than the followed one takes the track over."""
SWITCH_CHECK_EVERY = 5
"""While a face is followed, the whole frame is searched for a larger one every this many frames."""
THOROUGH_SEARCH_EVERY = (5, 25)
"""While no face is followed, the bordered frame is searched on every frame, and the whole frame,
the small-face tiles and the turned frame on the first, then on every 5th frame, and after 25
frames without a face on every 25th (a face under a tenth of the frame, or turned, is found up
to 0.16 s late at 25 fps, or 1 s late after a second without a face)."""
WINDOW_FACES = 2.4
"""Window side in face sizes (the landmarks' bounding box, square root of width × height). Face
Mesh crops 1.5 × the landmarks' longest side around the face, so this leaves room to drift."""
WINDOW_SIZES = (256, 384)
"""Smallest and largest window side in pixels. Between the two the window is a plain crop of
the frame (no resampling: Face Mesh sees the frame's own pixels); a smaller face is enlarged to
the smallest size (Face Mesh's landmark model sees 192 × 192), a larger one reduced to the largest."""
DRIFT_FACES = 0.2
"""The window moves when the face's centre is this many face sizes away from the window's centre."""
RESIZE_RATIO = 1.2
"""The window is resized when the face is this many times larger or smaller than it was placed for."""
FULL_RANGE_TO_FACE = 1.08
SHORT_RANGE_TO_FACE = 1.0
"""Detector box side over face size (the landmarks' box), for the full- and the short-range model;
medians over 36 real and synthetic clips."""
MAX_ANGLE_DISAGREEMENT = math.radians(45.0)
"""Largest difference between the landmarks' and the keypoints' in-plane direction."""
MAX_WINDOW_ROLL = math.radians(60.0)
"""Largest roll of the face inside its window before the window turns by a quarter turn."""
MAX_UPRIGHT_DEVIATION = math.radians(135.0)
"""Landmarks turned further than this from their window's upright are dropped: the window was
turned for an upright face, so they would lie upside down over it."""
CONFIRMING_OVERLAP = 0.3
"""A detection confirms the landmarks when this share of its box lies inside theirs."""
SAME_FACE_IOU = 0.3
"""A detection in the face's window is the searched face when their boxes overlap this much."""
ORIENTATION_MARGIN = 0.05
"""A face's window must score this much higher the right way up than upside down, or the face
is not tracked (its frames are ``rejected="orientation"``)."""
DETECTOR_FLOOR = 0.1
"""Detections scoring below this are not reported at all (a frame's confidence is then 0)."""


PLACED, UNCONFIRMED, AMBIGUOUS = "placed", "unconfirmed", "ambiguous"


@dataclass
class Observation:
    landmarks: np.ndarray | None
    """(478, 3) float32: x, y in working-image pixels, z in the same pixel scale; None if lost."""
    confidence: float
    """Detector score of the tracked face in its window (0 when no detection confirms the
    landmarks); while no face is tracked, the best score of the frame's search (or 0)."""
    rejected: str | None = None
    """Why landmarks found in this frame were dropped: ``"orientation"`` when they disagreed with
    the detector's keypoints (a sideways or upside-down face); None otherwise."""


class FaceTracker:
    """One face detector and one Face Mesh graph; not thread-safe, one per worker."""

    def __init__(self, config: TrackConfig):
        import mediapipe as mp  # heavy import: only where tracking happens

        self._config = config
        self._finder = FaceDetector(DETECTOR_FLOOR, full_range=True)
        self._scorer = FaceDetector(DETECTOR_FLOOR, full_range=False)
        self._mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=False,
            max_num_faces=1,
            refine_landmarks=True,
            min_detection_confidence=config.min_detection_confidence,
            min_tracking_confidence=config.min_tracking_confidence,
        )
        self._window: Window | None = None
        self._face_size = 0.0          # face size (frame pixels) the window was placed for
        self._followed: tuple[float, ...] | None = None   # detector box of the followed face
        self._frames_followed = 0
        self._frames_searching = 0
        self._turns = 0
        self._window_changed: str | None = None   # "placed" or "moved" since the last frame

    def reset(self) -> None:
        """Forget the current track and orientation; the next frame starts from a fresh search.
        (Called at the start of every video, so that a worker's earlier videos never change how
        a video is tracked.)"""
        self._lose()
        self._turns = 0

    def __call__(self, image: np.ndarray) -> Observation:
        """Track one RGB uint8 (H, W, 3) frame."""
        search_score = 0.0
        if self._window is None:
            often, rarely = THOROUGH_SEARCH_EVERY
            thorough = self._frames_searching % (often if self._frames_searching < rarely else rarely) == 0
            self._frames_searching += 1
            candidates = self._search(image, self._search_windows(image, thorough))
            search_score = max((d.score for d in candidates), default=0.0)
            placed = self._start(image, candidates)
            if placed != PLACED:
                return Observation(None, search_score, rejected="orientation" if placed == AMBIGUOUS else None)
        elif self._frames_followed % SWITCH_CHECK_EVERY == SWITCH_CHECK_EVERY - 1:
            self._check_for_larger_face(image)
        self._frames_followed += 1

        window = self._window
        if window is None:  # a search that placed no window returned above
            raise RuntimeError("face tracker: no window after placing one")
        view = window.image(image)
        landmarks = self._landmarks(view)
        if landmarks is None:
            self._lose()
            return Observation(None, search_score)
        landmarks[:, :2] = window.to_frame(landmarks[:, :2])
        landmarks[:, 2] /= window.scale

        detection = self._confirming_detection(image, window, view, landmarks)
        angle = landmark_angle(landmarks)
        if not orientation_agrees(angle, window.quarter_turns, None if detection is None else detection.angle):
            self._lose()
            return Observation(None, 0.0, rejected="orientation")
        if detection is not None:
            self._followed = detection.box
        self._follow(window, landmarks, angle)
        return Observation(landmarks.astype(np.float32), detection.score if detection is not None else 0.0)

    def _landmarks(self, view: np.ndarray) -> np.ndarray | None:
        """Face Mesh on the window's image: (478, 3) float64 window pixels, or None."""
        changed, self._window_changed = self._window_changed, None
        if changed == "placed":
            self._mesh.reset()
        if changed is not None:
            # The graph's landmark region comes from a detection (a new face) or from landmarks
            # in the old window's coordinates (a moved window): this pass finds the face in the
            # new window, starting afresh if the old region missed it, and the next places the
            # region from this frame's own landmarks, as in steady tracking, so that a new
            # window does not make the landmarks jump.
            if not self._mesh.process(view).multi_face_landmarks:
                if changed == "placed":
                    return None
                self._mesh.reset()
                if not self._mesh.process(view).multi_face_landmarks:
                    return None
        result = self._mesh.process(view)
        if not result.multi_face_landmarks:
            return None
        points = np.array([(p.x, p.y, p.z) for p in result.multi_face_landmarks[0].landmark], np.float64)
        return points * view.shape[1]

    def close(self) -> None:
        self._mesh.close()
        self._finder.close()
        self._scorer.close()

    # --- finding and placing ---------------------------------------------------------------

    def _search(self, image: np.ndarray, windows: list[Window]) -> list[Detection]:
        """Faces scoring at least ``min_detection_confidence`` in any of ``windows``, one detection
        per face, the ``max_faces`` best-scoring."""
        detections = [detection for window in windows for detection in self._finder.detect(image, window)
                      if detection.score >= self._config.min_detection_confidence]
        return suppress(detections)[:self._config.max_faces]

    def _search_windows(self, image: np.ndarray, thorough: bool) -> list[Window]:
        """The bordered frame in the last track's orientation; ``thorough``: also the whole frame,
        the small-face tiles and (``find_rotated_faces``) the bordered frame in the other three."""
        height, width = image.shape[:2]
        windows = search_windows(width, height, self._config.min_face_px, self._turns)
        if not thorough:
            return windows[:1]
        if self._config.find_rotated_faces:
            windows += [search_windows(width, height, self._config.min_face_px, turns)[0]
                        for turns in range(4) if turns != self._turns]
        return windows

    def _start(self, image: np.ndarray, candidates: list[Detection]) -> str:
        """Place the window on the face :func:`choose_face` picks (or, if its window does not
        confirm it, the next largest). Returns :data:`PLACED`, or why not."""
        candidates = list(candidates)
        outcome = UNCONFIRMED
        while candidates:
            placed = self._place(image, candidates.pop(choose_face([d.box for d in candidates], None)))
            if placed == PLACED:
                return PLACED
            outcome = AMBIGUOUS if placed == AMBIGUOUS else outcome
        return outcome

    def _place(self, image: np.ndarray, detection: Detection) -> str:
        """Put the window on ``detection``, turned so that the face is upright in it. Returns
        :data:`PLACED`, :data:`UNCONFIRMED` (the window shows no face there) or :data:`AMBIGUOUS`
        (it cannot tell which way up the face is).

        The short-range detector scores the face's window in all four quarter turns. It scores
        a face the right way up clearly higher than upside down (by 0.09 or more on 175 real and
        synthetic faces, where the full-range model sometimes preferred the wrong way); a
        sideways guess that wins by a hair is put right by Face Mesh's own in-plane angle."""
        face_size = detection.side / FULL_RANGE_TO_FACE
        scores, found = [0.0] * 4, [detection] * 4
        for turns in range(4):
            for candidate in self._scorer.detect(image, window_around(detection.centre, face_size, turns)):
                if iou(candidate.box, detection.box) >= SAME_FACE_IOU and candidate.score > scores[turns]:
                    scores[turns], found[turns] = candidate.score, candidate
        best = int(np.argmax(scores))
        if scores[best] < self._config.min_detection_confidence:
            return UNCONFIRMED
        if scores[best] - scores[(best + 2) % 4] < ORIENTATION_MARGIN:
            return AMBIGUOUS
        face_size = found[best].side / SHORT_RANGE_TO_FACE
        self._window = window_around(found[best].centre, face_size, best)
        self._window_changed = "placed"
        self._face_size = face_size
        self._followed = found[best].box
        self._turns = best
        self._frames_followed = 0
        return PLACED

    def _check_for_larger_face(self, image: np.ndarray) -> None:
        """Hand the track to a face :data:`SWITCH_RATIO` times larger, if the frame shows one."""
        followed = self._followed
        if followed is None:
            return
        # The coarsest window that can see a face a little larger than the followed one.
        larger = 1.2 * math.sqrt(area(followed))
        height, width = image.shape[:2]
        windows = search_windows(width, height, self._config.min_face_px, self._turns)
        window = next((w for w in windows if FACE_FRACTION_MIN * w.side <= larger), windows[-1])
        candidates = self._search(image, [window])
        boxes: list[tuple[float, ...]] = [d.box for d in candidates]
        if not any(iou(box, followed) > 0.0 for box in boxes):
            boxes.append(followed)
        chosen = choose_face(boxes, followed)
        if chosen < len(candidates) and iou(boxes[chosen], followed) <= 0.0:
            self._place(image, candidates[chosen])      # if it fails, the followed face stays

    # --- following -------------------------------------------------------------------------

    def _confirming_detection(self, image: np.ndarray, window: Window, view: np.ndarray,
                              landmarks: np.ndarray) -> Detection | None:
        """The window's detection overlapping the landmarks most (None if none does)."""
        box = _bounds(landmarks)
        best, best_overlap = None, CONFIRMING_OVERLAP
        for detection in self._scorer.detect(image, window, view):
            overlap = _coverage(detection.box, box)
            if overlap > best_overlap:
                best, best_overlap = detection, overlap
        return best

    def _follow(self, window: Window, landmarks: np.ndarray, angle: float) -> None:
        """Move ``window`` (the current one) when the face has drifted, grown, shrunk or turned in it."""
        box = _bounds(landmarks)
        face_size = math.sqrt(area(box))
        centre = ((box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0)
        drift = math.hypot(centre[0] - window.centre_x, centre[1] - window.centre_y)
        turns = window.quarter_turns
        if angle_between(angle, turns * math.pi / 2.0) > MAX_WINDOW_ROLL:
            turns = quarter_turns(angle)
        if drift > DRIFT_FACES * face_size or not 1.0 / RESIZE_RATIO <= face_size / self._face_size <= RESIZE_RATIO \
                or turns != window.quarter_turns:
            self._window = window_around(centre, face_size, turns)
            self._window_changed = "moved"
            self._face_size = face_size
            self._turns = turns

    def _lose(self) -> None:
        self._mesh.reset()
        self._window = None
        self._followed = None
        self._frames_searching = 0


def orientation_agrees(landmark_angle: float, window_turns: int, detection_angle: float | None) -> bool:
    """Whether landmarks whose in-plane direction is ``landmark_angle`` (radians, see
    :func:`face_window.face_angle`) can be kept: they are not upside down in their window, turned
    ``window_turns`` quarter turns for an upright face, and agree with the confirming detection's
    keypoints (``detection_angle``; None when no detection confirmed them)."""
    if angle_between(landmark_angle, window_turns * math.pi / 2.0) > MAX_UPRIGHT_DEVIATION:
        return False
    return detection_angle is None or angle_between(landmark_angle, detection_angle) <= MAX_ANGLE_DISAGREEMENT


def window_around(centre: tuple[float, float], face_size: float, turns: int) -> Window:
    """The tracking window for a face of ``face_size`` pixels centred at ``centre`` (frame pixels)."""
    side = WINDOW_FACES * face_size
    low, high = WINDOW_SIZES
    if side < low or side > high:
        return Window(centre[0], centre[1], side, low if side < low else high, turns)
    # A plain crop: whole pixels, so the window's pixels are the frame's.
    side = float(round(side))
    x0, y0 = round(centre[0] - side / 2.0), round(centre[1] - side / 2.0)
    return Window(x0 + side / 2.0, y0 + side / 2.0, side, int(side), turns)


def choose_face(boxes: list[tuple[float, ...]], previous: tuple[float, ...] | None) -> int:
    """Index of the face to follow among ``boxes`` (x0, y0, x1, y1): the one overlapping
    ``previous`` most, unless another is ``SWITCH_RATIO`` times larger; the largest otherwise."""
    areas = [area(box) for box in boxes]
    largest = int(np.argmax(areas))
    if previous is None:
        return largest
    overlaps = [iou(box, previous) for box in boxes]
    same = int(np.argmax(overlaps))
    if overlaps[same] <= 0.0 or areas[largest] > SWITCH_RATIO * areas[same]:
        return largest
    return same


def _bounds(landmarks: np.ndarray) -> tuple[float, ...]:
    return (*(float(v) for v in landmarks[:, :2].min(axis=0)), *(float(v) for v in landmarks[:, :2].max(axis=0)))


def _coverage(detection_box: tuple[float, ...], landmark_box: tuple[float, ...]) -> float:
    """Share of the detector box inside the landmarks' box (the landmark box is larger: it
    reaches the forehead and the ears)."""
    ix = max(0.0, min(detection_box[2], landmark_box[2]) - max(detection_box[0], landmark_box[0]))
    iy = max(0.0, min(detection_box[3], landmark_box[3]) - max(detection_box[1], landmark_box[1]))
    own = area(detection_box)
    return ix * iy / own if own > 0 else 0.0
