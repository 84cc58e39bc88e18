"""Head motion, camera projection and compositing of the face layer over a backdrop.

The face layer is the base image of :mod:`pseudo3d.synth.face` treated as a flat plane. Per frame
the plane is scaled, turned in 3D about the face centre by ``R = R_y(yaw) @ R_x(pitch) @ R_z(roll)``
(the convention of :func:`pseudo3d.geometry.euler_yxz_to_matrix`: yaw > 0 turns the nose towards
image left, pitch > 0 tips it down, roll > 0 turns the head clockwise on screen) and projected by
a pinhole camera whose image of the face centre is ``(tx_px, ty_px)``. That plane-induced
homography is what ``cv2.warpPerspective`` applies to the layer.

Pixel coordinates: ``x`` right, ``y`` down, from the top-left corner of the frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray
from scipy.ndimage import gaussian_filter1d

from pseudo3d.geometry import euler_yxz_to_matrix
from pseudo3d.synth.face import UPSAMPLE, Portrait

# Largest head turns, radians: the tracker and the downstream pose fit stay reliable inside.
MAX_YAW = np.radians(15.0)
MAX_PITCH = np.radians(12.0)
MAX_ROLL = np.radians(10.0)


@dataclass(frozen=True)
class HeadMotion:
    """Per-frame head pose, each array ``(T,)``.

    Angles in radians (see the module docstring for signs). ``tx_px, ty_px``: where the face
    centre (midway between the eye-corner midpoint and the mouth centre) appears in the frame,
    in pixels from the frame's top-left corner. ``scale``: frame pixels per pixel of the
    512 x 512 source portrait, at the face centre before the 3D turn.
    """

    yaw_rad: NDArray[np.float64]
    pitch_rad: NDArray[np.float64]
    roll_rad: NDArray[np.float64]
    tx_px: NDArray[np.float64]
    ty_px: NDArray[np.float64]
    scale: NDArray[np.float64]

    def __len__(self) -> int:
        return len(self.yaw_rad)


def smooth_noise(rng: np.random.Generator, n_frames: int, fps: float, timescale_s: float) -> NDArray[np.float64]:
    """Smooth random curve ``(n_frames,)`` with peak magnitude 1, varying over ``timescale_s``."""
    sigma = max(timescale_s * fps, 1.0)
    pad = int(4 * sigma)
    noise = gaussian_filter1d(rng.standard_normal(n_frames + 2 * pad), sigma)[pad:pad + n_frames]
    noise -= noise.mean()
    return noise / max(float(np.max(np.abs(noise))), 1e-12)


def random_head_motion(rng: np.random.Generator, n_frames: int, fps: float, width: int, height: int,
                       centre_xy: tuple[float, float], scale: float) -> HeadMotion:
    """Seeded, smooth head motion around ``centre_xy`` (pixels) at ``scale`` (see HeadMotion)."""
    def wander(amplitude: float, timescale_s: float) -> NDArray[np.float64]:
        return amplitude * rng.uniform(0.7, 1.0) * smooth_noise(rng, n_frames, fps, timescale_s)

    return HeadMotion(
        yaw_rad=wander(MAX_YAW, 0.7),
        pitch_rad=wander(MAX_PITCH, 0.6),
        roll_rad=wander(MAX_ROLL, 0.9),
        tx_px=centre_xy[0] + wander(0.04 * width, 1.2),
        ty_px=centre_xy[1] + wander(0.03 * height, 1.2),
        scale=scale * (1.0 + wander(0.05, 1.5)),
    )


def head_homography(portrait: Portrait, motion: HeadMotion, frame: int, focal_px: float) -> NDArray[np.float64]:
    """3x3 homography from base-image pixels to frame pixels for one frame of ``motion``."""
    centre_x, centre_y = portrait.face_centre
    size = motion.scale[frame] / UPSAMPLE       # frame pixels per base pixel
    to_plane = np.array([[size, 0.0, -size * centre_x], [0.0, size, -size * centre_y], [0.0, 0.0, 1.0]])
    rotation = euler_yxz_to_matrix([motion.yaw_rad[frame], motion.pitch_rad[frame], motion.roll_rad[frame]])
    # The plane sits at depth focal_px so that an unturned face is imaged at exactly ``size``.
    plane_to_camera = np.column_stack([rotation[:, 0], rotation[:, 1], [0.0, 0.0, focal_px]])
    camera = np.array([[focal_px, 0.0, motion.tx_px[frame]], [0.0, focal_px, motion.ty_px[frame]], [0.0, 0.0, 1.0]])
    return camera @ plane_to_camera @ to_plane


def project(homography: NDArray[np.float64], points: NDArray[np.float64]) -> NDArray[np.float64]:
    """Apply a homography to ``(N, 2)`` pixel points."""
    homogeneous = np.column_stack([points, np.ones(len(points))]) @ homography.T
    return homogeneous[:, :2] / homogeneous[:, 2:3]


def make_backdrop(rng: np.random.Generator, width: int, height: int) -> NDArray[np.uint8]:
    """A studio-like backdrop ``(height, width, 3)`` RGB: muted vertical gradient, soft blotches."""
    hue = rng.uniform(0.0, 180.0)       # OpenCV's 8-bit hue scale

    def muted(value_low: float, value_high: float) -> NDArray[np.float32]:
        hsv = np.array([[[hue, rng.uniform(25, 90), rng.uniform(value_low, value_high)]]], np.uint8)
        return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)

    top, bottom = muted(120, 210), muted(60, 140)
    rows = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    image = top + (bottom - top) * rows
    blotches = cv2.resize(rng.standard_normal((5, 7)).astype(np.float32), (width, height),
                          interpolation=cv2.INTER_CUBIC)
    image = image + 14.0 * blotches[..., None]
    xs = np.linspace(-1.0, 1.0, width, dtype=np.float32)[None, :]
    ys = np.linspace(-1.0, 1.0, height, dtype=np.float32)[:, None]
    vignette = 1.0 - 0.18 * (xs * xs + ys * ys)
    return np.clip(image * vignette[..., None], 0, 255).astype(np.uint8)


class HeadLayer:
    """The face layer cut out of the base image, ready to warp and composite frame by frame."""

    def __init__(self, portrait: Portrait) -> None:
        rows, cols = np.nonzero(portrait.head_mask > 1.0 / 512.0)
        self.y0, self.y1 = int(rows.min()), int(rows.max()) + 1
        self.x0, self.x1 = int(cols.min()), int(cols.max()) + 1
        self._alpha = np.round(255.0 * portrait.head_mask[self.y0:self.y1, self.x0:self.x1]).astype(np.uint8)
        self._rgba = np.empty((self.y1 - self.y0, self.x1 - self.x0, 4), np.uint8)
        self._rgba[..., 3] = self._alpha

    def corners(self) -> NDArray[np.float64]:
        """The layer's bounding box corners ``(4, 2)`` in base pixels."""
        return np.array([[self.x0, self.y0], [self.x1, self.y0], [self.x1, self.y1], [self.x0, self.y1]], float)

    def composite(self, face_image: NDArray[np.uint8], homography: NDArray[np.float64],
                  backdrop: NDArray[np.uint8]) -> NDArray[np.uint8]:
        """Warp the layer of ``face_image`` (a base image) by ``homography`` over ``backdrop``."""
        height, width = backdrop.shape[:2]
        box = project(homography, self.corners())
        left, top = np.floor(box.min(axis=0)).astype(int)
        right, bottom = np.ceil(box.max(axis=0)).astype(int) + 1
        left, top = max(left, 0), max(top, 0)
        right, bottom = min(right, width), min(bottom, height)
        frame = backdrop.copy()
        if right <= left or bottom <= top:
            return frame
        self._rgba[..., :3] = face_image[self.y0:self.y1, self.x0:self.x1]
        # Warp only into the layer's bounding box: shift the crop to the origin and back.
        from_crop = np.array([[1.0, 0.0, self.x0], [0.0, 1.0, self.y0], [0.0, 0.0, 1.0]])
        to_box = np.array([[1.0, 0.0, -left], [0.0, 1.0, -top], [0.0, 0.0, 1.0]])
        warped = cv2.warpPerspective(self._rgba, to_box @ homography @ from_crop, (right - left, bottom - top),
                                     flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        alpha = warped[..., 3:4].astype(np.float32) * (1.0 / 255.0)
        under = frame[top:bottom, left:right].astype(np.float32)
        blended = under + (warped[..., :3].astype(np.float32) - under) * alpha
        frame[top:bottom, left:right] = (blended + 0.5).astype(np.uint8)
        return frame
