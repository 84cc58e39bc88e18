"""Cut a source's per-frame track into clips, frame by frame, as the video is decoded.

A clip is a run of frames of one continuous face track within one shot. Boundaries come from:

* shot cuts (a frame pushed with ``cut=True`` starts a new shot);
* jumps: the face centre moving more than ``max_jump`` face sizes between two tracked frames
  (a cut the histogram missed, or the tracker switching to another face);
* tracking gaps longer than ``max_gap`` frames (shorter gaps are interpolated and flagged).

Runs shorter than ``min_frames`` are dropped and reported. A run is emitted as soon as it ends,
so memory follows the length of a clip, not of the video: a long run is cut as it grows, a clip
of ``max_frames`` off its front each time it reaches ``2 * max_frames`` (so the rest is always
long enough to stay a clip), and what is left when it ends is split into equal parts of at most
``max_frames``. Every clip is thus between ``max_frames / 2`` and ``max_frames`` long unless the
whole run is shorter. All of this is pure array logic, so it is tested without video.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pseudo3d.smoothing import interpolate_gaps


@dataclass(frozen=True)
class Segment:
    """A finished face run: a clip to keep, or one too short to keep."""

    start: int
    stop: int
    """Half-open frame range on the source's output grid."""
    landmarks: np.ndarray | None
    """(stop - start, N, 3) float32 landmarks with the short gaps filled; None when too short."""
    interpolated: np.ndarray | None
    """(stop - start,) bool, the frames whose landmarks were filled; None when too short."""

    @property
    def too_short(self) -> bool:
        return self.landmarks is None


class TrackSegmenter:
    """Frames in, one at a time (:meth:`push`); finished :class:`Segment` s out as soon as they
    are known; :meth:`finish` after the last frame. Frame counts are on the output grid."""

    def __init__(self, *, max_gap: int, min_frames: int, max_frames: int, max_jump: float, first_frame: int = 0):
        if max_frames < 1 or min_frames > max_frames:
            raise ValueError(f"need 1 <= max_frames and min_frames <= max_frames, got {min_frames}, {max_frames}")
        self.max_gap = max_gap
        self.min_frames = min_frames
        self.max_frames = max_frames
        self.max_jump = max_jump
        self.next_frame = first_frame
        """The index the next pushed frame gets (``first_frame`` first: a chunk of a long source)."""
        self.start = first_frame
        """The first frame a segment still to come can hold: earlier frames' data can be dropped."""
        self._points: list[np.ndarray | None] = []  # frames start..next_frame-1; None where not tracked
        self._filled: list[bool] = []  # frames filled before the front of a long run was emitted
        self._gap = 0  # untracked frames at the end of the run
        self._last: tuple[np.ndarray, float] | None = None  # centre and size of the last tracked face

    def push(self, landmarks: np.ndarray | None, cut: bool = False) -> list[Segment]:
        """Take the next frame: its (N, 3) landmarks in pixels, or None where no face was
        tracked; ``cut``: a new shot starts at this frame. Returns the segments it finished."""
        index = self.next_frame
        self.next_frame += 1
        finished = []
        if landmarks is not None:
            shape = face_centre_and_size(landmarks)
            if cut or self._jumped(*shape):
                finished = self._close()
            self._last = shape
        elif cut:
            finished = self._close()
        if not self._points and landmarks is None:
            self.start = index + 1  # nothing to bridge: a run starts at a tracked frame
            return finished
        self._points.append(landmarks)
        self._filled.append(False)
        self._gap = 0 if landmarks is not None else self._gap + 1
        if self._gap > self.max_gap:
            finished += self._close()
        elif landmarks is not None and len(self._points) >= 2 * self.max_frames:
            finished.append(self._emit_front())
        return finished

    def finish(self) -> list[Segment]:
        """The segments still open after the last frame."""
        return self._close()

    def _jumped(self, centre: np.ndarray, size: float) -> bool:
        if self._last is None:
            return False
        last_centre, last_size = self._last
        moved = float(np.linalg.norm(centre - last_centre))
        return moved > self.max_jump * min(size, last_size) or abs(math.log(size / last_size)) > math.log1p(self.max_jump)

    def _window(self, n: int) -> tuple[np.ndarray, np.ndarray, list[tuple[int, int]]]:
        """The first ``n`` buffered frames with the short gaps filled: (landmarks, interpolated,
        segments), segments relative to :attr:`start`."""
        points = self._points[:n]
        template = next(p for p in points if p is not None)
        valid = np.array([p is not None for p in points])
        stacked = np.stack([template if p is None else p for p in points]).astype(np.float32)
        filled, mask, segments = interpolate_gaps(stacked, valid, self.max_gap)
        interpolated = mask | np.array(self._filled[:n])
        return filled.astype(np.float32), interpolated, segments

    def _emit_front(self) -> Segment:
        """A clip of ``max_frames`` off the front of a run twice as long, whose last frame is
        tracked (so every gap in the front is bounded and filled); the frames it filled stay
        buffered as filled values for the rest of the run (linear interpolation from a point on
        the line gives the same line)."""
        landmarks, interpolated, _ = self._window(len(self._points))
        n = self.max_frames
        segment = Segment(self.start, self.start + n, landmarks[:n], interpolated[:n])
        for offset in range(n, len(self._points)):
            if self._points[offset] is None and interpolated[offset]:
                self._points[offset], self._filled[offset] = landmarks[offset], True
        self._drop(n)
        return segment

    def _close(self) -> list[Segment]:
        """Everything buffered is final (the track ended): cut it into segments. The buffer
        starts at a tracked frame, so a buffer that is not empty holds a run."""
        if not self._points:
            return []
        landmarks, interpolated, runs = self._window(len(self._points))
        segments = []
        for a, b in runs:
            if b - a < self.min_frames:
                segments.append(Segment(self.start + a, self.start + b, None, None))
                continue
            # Split in frames of the video, not of the buffer: the rounding of the edges (to even)
            # must not depend on where the buffer starts.
            for lo, hi in split_evenly(self.start + a, self.start + b, self.max_frames):
                segments.append(Segment(lo, hi, landmarks[lo - self.start:hi - self.start],
                                        interpolated[lo - self.start:hi - self.start]))
        self._drop(len(self._points))
        self._gap = 0
        return segments

    def _drop(self, n: int) -> None:
        del self._points[:n], self._filled[:n]
        self.start += n


def face_centre_and_size(landmarks: np.ndarray) -> tuple[np.ndarray, float]:
    """Centre (2,) and size (the geometric mean of width and height) of the landmark bounding box."""
    low = landmarks[:, :2].min(axis=0)
    high = landmarks[:, :2].max(axis=0)
    return (low + high) / 2.0, float(np.sqrt(np.prod(high - low)))


def split_evenly(start: int, stop: int, max_frames: int) -> list[tuple[int, int]]:
    """``[start, stop)`` in the fewest equal parts of at most ``max_frames`` frames."""
    parts = math.ceil((stop - start) / max_frames)
    edges = np.linspace(start, stop, parts + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]
