"""Source frames for the gallery: the frame a clip sample shows, and points drawn over it.

Times follow the data contract: seconds from the source's first video frame. A clip frame
``k`` is at ``start_s + k / fps``; the source frame shown is the one whose presentation time is
nearest (the earlier one on a tie), which is how the decode stage chose it. The display rotation
is applied, as the landmarks were tracked on the rotated picture.
"""

from __future__ import annotations

import av
import cv2
import numpy as np

from pseudo3d.errors import Pseudo3DError, StageError
from pseudo3d.pipelines.media import describe_av_error, normalise_rotation, open_container, rotate_image

LANDMARK_COLOUR = (64, 224, 255)
"""RGB of the drawn points: a light cyan that reads on skin and on dark backgrounds."""


class FrameUnavailable(Exception):
    """The source frame could not be decoded; the message says why, for the page."""


def decode_source_frame(uri: str, time_s: float) -> np.ndarray:
    """(H, W, 3) uint8 RGB frame of ``uri`` nearest to ``time_s`` seconds after its first frame.

    Raises :class:`FrameUnavailable` when the source cannot be opened or has no frame there.
    """
    try:
        with open_container(uri, "qa") as container:
            if not container.streams.video:
                raise FrameUnavailable("the source has no video stream")
            stream = container.streams.video[0]
            first = next(container.decode(stream), None)
            if first is None:
                raise FrameUnavailable("the source yields no frame")
            target = (first.time or 0.0) + time_s
            if time_s > 0.5 and stream.time_base:
                container.seek(int(target / stream.time_base), stream=stream, backward=True, any_frame=False)
                frames = container.decode(stream)
            else:
                frames = _chain(first, container.decode(stream))
            best = _nearest(frames, target)
            if best is None:
                raise FrameUnavailable(f"no frame near {time_s:.2f} s")
            image = best.to_ndarray(format="rgb24")
            return rotate_image(image, normalise_rotation(getattr(best, "rotation", 0)))
    except (StageError, Pseudo3DError) as exc:
        raise FrameUnavailable(str(exc)) from None
    except (av.error.FFmpegError, OSError) as exc:
        raise FrameUnavailable(f"cannot decode the source: {describe_av_error(exc)}") from None


def _chain(first, rest):
    yield first
    yield from rest


def _nearest(frames, target: float):
    best, best_distance = None, float("inf")
    for frame in frames:
        if frame.time is None:
            continue
        distance = abs(frame.time - target)
        if distance < best_distance - 1e-9:
            best, best_distance = frame, distance
        elif frame.time > target:
            break  # moving away from the target
    return best


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
