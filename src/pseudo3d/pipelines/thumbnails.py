"""Thumbnails for the QA report's gallery, cut while the source is decoded.

The report must never open the original videos (they are untrusted input, and a dataset moved to
another machine has none), so the worker that decodes a source keeps a small JPEG of the face
every :data:`EVERY_S` seconds of video where a face is tracked, and each clip carries the one
nearest its middle as its ``thumbnail.jpg`` member. Each candidate costs about 10–20 kB and is
kept only until the face track it belongs to has been cut into clips.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from pseudo3d.schemas.records import Thumbnail

EVERY_S = 2.0
"""Seconds of video between candidate thumbnails."""
SIZE = 256
"""Pixels: the longer side of a thumbnail."""
FACE_CONTEXT = 1.9
"""A thumbnail spans this many times the face's extent (the landmark box's longer side)."""
JPEG_QUALITY = 85


def face_view_box(points: np.ndarray, width: int, height: int) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) pixels of the frame around the face of ``points`` ((478, 2+) pixels of a
    ``width`` × ``height`` frame), :data:`FACE_CONTEXT` times its extent, clipped to the frame;
    None when the face lies off the frame."""
    finite = np.asarray(points, np.float64)[:, :2]
    finite = finite[np.isfinite(finite).all(axis=1)]
    if not len(finite):
        return None
    centre = 0.5 * (finite.min(axis=0) + finite.max(axis=0))
    half = max(0.5 * FACE_CONTEXT * float((finite.max(axis=0) - finite.min(axis=0)).max()), 16.0)
    x0, y0 = max(0, math.floor(centre[0] - half)), max(0, math.floor(centre[1] - half))
    x1, y1 = min(width, math.ceil(centre[0] + half)), min(height, math.ceil(centre[1] + half))
    if x1 - x0 < 8 or y1 - y0 < 8:
        return None
    return x0, y0, x1, y1


def encode_jpeg(image: np.ndarray) -> bytes:
    """(H, W, 3) uint8 RGB → JPEG bytes."""
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ValueError("OpenCV could not encode the thumbnail as JPEG")
    return data.tobytes()


class ThumbnailPicker:
    """Collects face thumbnails while a source is decoded; hands each clip the one nearest its
    middle. ``fps``: the output frame rate (frames are numbered on the output grid)."""

    def __init__(self, fps: float):
        self.step = max(1, round(EVERY_S * fps))
        self._candidates: dict[int, tuple[bytes, tuple[int, int, int, int]]] = {}

    def wants(self, index: int) -> bool:
        return index % self.step == self.step // 2

    def offer(self, index: int, image: np.ndarray, points: np.ndarray, scale: float, size: tuple[int, int]) -> None:
        """Keep frame ``index``'s face view. ``image`` is the frame as decoded (working pixels,
        ``scale`` working pixels per source pixel); ``points`` are in source pixels of a frame of
        ``size`` (width, height)."""
        box = face_view_box(points, *size)
        if box is None:
            return
        x0, y0, x1, y1 = box
        view = image[math.floor(y0 * scale):math.ceil(y1 * scale), math.floor(x0 * scale):math.ceil(x1 * scale)]
        if view.shape[0] < 2 or view.shape[1] < 2:
            return
        factor = SIZE / max(view.shape[:2])
        size = (max(1, round(view.shape[1] * factor)), max(1, round(view.shape[0] * factor)))
        resized = cv2.resize(np.ascontiguousarray(view), size,
                             interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_CUBIC)
        self._candidates[index] = (encode_jpeg(resized), box)

    def forget_before(self, index: int) -> None:
        """Drop the candidates of frames before ``index`` (no clip to come starts before it)."""
        for candidate in [candidate for candidate in self._candidates if candidate < index]:
            del self._candidates[candidate]

    def for_clip(self, start: int, stop: int) -> Thumbnail | None:
        """The thumbnail of the candidate frame in ``[start, stop)`` nearest its middle, or None."""
        inside = [index for index in self._candidates if start <= index < stop]
        if not inside:
            return None
        middle = (start + stop - 1) / 2
        index = min(inside, key=lambda candidate: (abs(candidate - middle), candidate))
        jpeg, box = self._candidates[index]
        return Thumbnail(frame=index - start, jpeg=jpeg, box=box)
