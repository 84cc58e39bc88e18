"""The synthetic face: scikit-image's astronaut portrait, located once with MediaPipe Face Mesh,
with a mouth that opens and eyelids that close.

Coordinates: pixels of the *base image*, ``x`` right and ``y`` down from its top-left corner.
The base image is the 512 x 512 portrait upscaled by :data:`UPSAMPLE` and turned about the face
centre so that the outer eye corners (landmarks 33 and 263) lie on one horizontal line; a head
roll of zero then means a level eye line.

The deformations are backward maps for ``cv2.remap`` that move pixels vertically only:

* **Mouth.** The upper lip stays put. The lower lip, chin and jaw move down by a displacement
  field that is largest under the lip centre, zero at the mouth corners, and fades out below the
  chin, so skin stretches instead of tearing. The lens-shaped gap between the upper inner lip and
  the moved lower lip is painted as the upper teeth (taken from the portrait, which smiles with
  its teeth showing) over a dark mouth cavity. At ``mouth_open = 0`` the lower lip is pulled up
  onto the upper lip and the teeth are hidden.
* **Eyelids.** The skin between brow and upper lid is stretched down so the lid edge reaches the
  lower lid at ``closure = 1``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from pseudo3d.reconstruction.template import portrait_landmarks

# Base pixels per pixel of the 512 x 512 portrait: the frames show the face at 1.4-2.8x the
# portrait's size, so the deformations are drawn at 2x to keep lip edges sharp.
UPSAMPLE = 2.0
# Widest mouth opening (``mouth_open = 1``) as a fraction of the upper-lip-to-chin height.
MAX_OPENING_OF_LIP_TO_CHIN = 0.5
# Fraction of the portrait's own lip gap that is upper teeth (the rest is dark corners and the
# lower teeth's edge, which a lowered jaw would hide).
TEETH_OF_GAP = 0.8

LM_UPPER_INNER_LIP = 13
LM_LOWER_INNER_LIP = 14
LM_INNER_MOUTH_CORNERS = (78, 308)
LM_OUTER_MOUTH_CORNERS = (61, 291)
LM_OUTER_EYE_CORNERS = (33, 263)
LM_EYE_CORNERS = ((33, 133), (362, 263))
LM_CHIN = 152
LM_FOREHEAD = 10

# HSV saturation (0-255) below which a pixel near the head is the portrait's grey backdrop.
_BACKDROP_MAX_SATURATION = 60
# Colours of the mouth cavity (RGB): almost black in the throat, dark red towards the tongue.
_CAVITY_DEEP = np.array([28.0, 10.0, 12.0], np.float32)
_CAVITY_TONGUE = np.array([110.0, 45.0, 50.0], np.float32)


@dataclass(frozen=True)
class LipGeometry:
    """The mouth of the base image as column profiles over the mouth's region of interest.

    All arrays have one entry per column ``x0 .. x0 + width - 1`` of the region; ``y`` values
    are base-image rows. Outside the mouth corners ``upper`` and ``lower`` hold the row of the
    nearer corner, and ``lens`` and ``teeth`` are zero.
    """

    x0: int
    y0: int
    width: int
    height: int
    upper: NDArray[np.float32]      # upper inner lip row
    lower: NDArray[np.float32]      # lower inner lip row in the portrait
    lens: NDArray[np.float32]       # opening shape in [0, 1]: 1 at the centre, 0 at the corners
    teeth: NDArray[np.float32]      # height of the upper teeth band under the upper lip, pixels
    jaw: NDArray[np.float32]        # how much of the centre's jaw drop a column follows, [0, 1]
    max_opening: float              # lip gap at the centre for mouth_open = 1, pixels
    lip_to_chin: float              # lower inner lip to chin, pixels
    stretch: float                  # rows below the lip over which lip shape turns into jaw shape
    fade: float                     # rows below the chin over which the jaw drop fades to zero


@dataclass(frozen=True)
class EyeGeometry:
    """One eye as column profiles over its region of interest (rows of the base image)."""

    x0: int
    y0: int
    width: int
    height: int
    upper: NDArray[np.float32]      # upper lid edge row
    lower: NDArray[np.float32]      # lower lid edge row
    brow: NDArray[np.float32]       # row above which the skin does not move


@dataclass(frozen=True)
class Portrait:
    """The base image with its landmarks and the geometry the animation needs."""

    image: NDArray[np.uint8]            # (S, S, 3) RGB base image
    landmarks: NDArray[np.float64]      # (478, 2) Face Mesh landmarks, base pixels
    head_mask: NDArray[np.float32]      # (S, S) soft mask of head, hair and neck in [0, 1]
    face_centre: tuple[float, float]    # rotation pivot: midpoint of eye-corner centre and mouth
    face_height: float                  # forehead (landmark 10) to chin (152), base pixels
    face_oval: NDArray[np.float64]      # (K, 2) Face Mesh face-oval landmarks, base pixels
    lips: LipGeometry
    eyes: tuple[EyeGeometry, EyeGeometry]


def _loop_halves(edges: frozenset[tuple[int, int]], start: int, end: int,
                 landmarks: NDArray[np.float64]) -> tuple[list[int], list[int]]:
    """Split a closed landmark loop into its upper and lower paths from ``start`` to ``end``."""
    neighbours: dict[int, list[int]] = {}
    for a, b in edges:
        neighbours.setdefault(a, []).append(b)
        neighbours.setdefault(b, []).append(a)
    paths = []
    for first in neighbours[start]:
        path, previous, current = [start], start, first
        while current != end:
            path.append(current)
            previous, current = current, next(n for n in neighbours[current] if n != previous)
        paths.append(path + [end])
    paths.sort(key=lambda path: landmarks[path, 1].mean())
    return paths[0], paths[1]


def _profile(landmarks: NDArray[np.float64], path: list[int], columns: NDArray[np.float64]):
    """Row of a landmark path at each column, held flat beyond its ends."""
    points = landmarks[path]
    order = np.argsort(points[:, 0])
    return np.interp(columns, points[order, 0], points[order, 1]).astype(np.float32)


def _smoothstep(edge0: float, edge1: float, values: NDArray) -> NDArray:
    t = np.clip((values - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _lip_geometry(landmarks: NDArray[np.float64]) -> LipGeometry:
    import mediapipe as mp

    lip_edges = mp.solutions.face_mesh.FACEMESH_LIPS
    left, right = LM_INNER_MOUTH_CORNERS
    upper_path, lower_path = _loop_halves(lip_edges, left, right, landmarks)
    outer_left, outer_right = LM_OUTER_MOUTH_CORNERS
    half_width = 0.5 * (landmarks[outer_right, 0] - landmarks[outer_left, 0])
    centre_x = 0.5 * (landmarks[left, 0] + landmarks[right, 0])
    lip_to_chin = float(landmarks[LM_CHIN, 1] - landmarks[LM_LOWER_INNER_LIP, 1])
    max_opening = MAX_OPENING_OF_LIP_TO_CHIN * float(landmarks[LM_CHIN, 1] - landmarks[LM_UPPER_INNER_LIP, 1])
    # The jaw drop must change slower than one row per row or the backward map folds over.
    stretch = 2.5 * max_opening
    fade = 2.0 * lip_to_chin

    x0 = int(np.floor(centre_x - 2.2 * half_width))
    x1 = int(np.ceil(centre_x + 2.2 * half_width))
    y0 = int(np.floor(landmarks[upper_path, 1].min() - 4))
    y1 = int(np.ceil(landmarks[lower_path, 1].max() + lip_to_chin + fade + max_opening + 4))
    columns = np.arange(x0, x1, dtype=np.float64)

    upper = _profile(landmarks, upper_path, columns)
    lower = _profile(landmarks, lower_path, columns)
    inside = (columns > landmarks[left, 0]) & (columns < landmarks[right, 0])
    inner_half_width = 0.5 * (landmarks[right, 0] - landmarks[left, 0])
    u = np.clip(np.abs(columns - centre_x) / inner_half_width, 0.0, 1.0)
    lens = np.where(inside, (1.0 - u * u) ** 0.7, 0.0).astype(np.float32)
    gap = np.where(inside, np.maximum(lower - upper, 0.0), 0.0).astype(np.float32)
    jaw = (1.0 - _smoothstep(0.5 * half_width, 2.0 * half_width, np.abs(columns - centre_x))).astype(np.float32)
    return LipGeometry(
        x0=x0, y0=y0, width=x1 - x0, height=y1 - y0,
        upper=upper, lower=lower, lens=lens, teeth=(TEETH_OF_GAP * gap).astype(np.float32), jaw=jaw,
        max_opening=max_opening, lip_to_chin=lip_to_chin, stretch=stretch, fade=fade,
    )


def _eye_geometry(landmarks: NDArray[np.float64], edges, corners: tuple[int, int]) -> EyeGeometry:
    a, b = corners
    if landmarks[a, 0] > landmarks[b, 0]:
        a, b = b, a
    upper_path, lower_path = _loop_halves(edges, a, b, landmarks)
    eye_width = landmarks[b, 0] - landmarks[a, 0]
    x0 = int(np.floor(landmarks[a, 0] - 0.15 * eye_width))
    x1 = int(np.ceil(landmarks[b, 0] + 0.15 * eye_width))
    columns = np.arange(x0, x1, dtype=np.float64)
    upper = _profile(landmarks, upper_path, columns)
    lower = np.maximum(_profile(landmarks, lower_path, columns), upper)
    brow = (upper - 0.45 * eye_width).astype(np.float32)
    y0 = int(np.floor(brow.min() - 2))
    y1 = int(np.ceil(lower.max() + 3))
    return EyeGeometry(x0=x0, y0=y0, width=x1 - x0, height=y1 - y0, upper=upper, lower=lower, brow=brow)


def _face_oval_indices() -> list[int]:
    import mediapipe as mp

    return sorted({index for edge in mp.solutions.face_mesh.FACEMESH_FACE_OVAL for index in edge})


def _head_mask(image: NDArray[np.uint8], landmarks: NDArray[np.float64]) -> NDArray[np.float32]:
    """Soft mask of head, hair and neck.

    An ellipse around face and hair plus a neck block bound the search; inside it, hair and skin
    are told from the grey studio backdrop by their colour saturation, and the face oval and
    neck are always kept. The mask fades out down the neck.
    """
    size = image.shape[0]
    face_height = landmarks[LM_CHIN, 1] - landmarks[LM_FOREHEAD, 1]
    eye_left, eye_right = landmarks[LM_OUTER_EYE_CORNERS[0]], landmarks[LM_OUTER_EYE_CORNERS[1]]
    centre_x = 0.5 * (eye_left[0] + eye_right[0])
    chin_y = landmarks[LM_CHIN, 1]
    neck_top = chin_y - 0.3 * face_height
    neck_bottom = chin_y + 0.65 * face_height
    neck = np.array([
        [centre_x - 0.3 * face_height, neck_top], [centre_x + 0.3 * face_height, neck_top],
        [centre_x + 0.5 * face_height, neck_bottom], [centre_x - 0.5 * face_height, neck_bottom],
    ])
    bound = np.zeros((size, size), np.uint8)
    # The hair reaches about half a face height above the forehead landmark and bulges out to
    # the sides of the face.
    head_centre = (round(centre_x), round(landmarks[LM_FOREHEAD, 1] + 0.28 * face_height))
    cv2.ellipse(bound, head_centre, (round(0.78 * face_height), round(0.82 * face_height)),
                0.0, 0.0, 360.0, 1, thickness=-1)
    cv2.fillConvexPoly(bound, np.round(neck).astype(np.int32), 1)

    saturation = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)[..., 1]
    person = ((saturation > _BACKDROP_MAX_SATURATION) & (bound > 0)).astype(np.uint8)
    speckle = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (15, 15))
    holes = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (31, 31))
    person = cv2.morphologyEx(cv2.morphologyEx(person, cv2.MORPH_OPEN, speckle), cv2.MORPH_CLOSE, holes)
    oval = landmarks[_face_oval_indices()]
    cv2.fillConvexPoly(person, cv2.convexHull(np.round(oval).astype(np.int32)), 1)
    cv2.fillConvexPoly(person, np.round(neck).astype(np.int32), 1)
    _, labels, stats, _ = cv2.connectedComponentsWithStats(person)
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    outline, _ = cv2.findContours((labels == largest).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    filled = np.zeros((size, size), np.float32)
    cv2.drawContours(filled, outline, -1, 1.0, thickness=-1)
    rows = np.arange(size, dtype=np.float32)[:, None]
    filled *= 1.0 - _smoothstep(chin_y + 0.2 * face_height, neck_bottom, rows)
    return cv2.GaussianBlur(filled, (0, 0), 0.015 * face_height)


@functools.lru_cache(maxsize=1)
def load_portrait() -> Portrait:
    """Build the base image and locate its face (runs Face Mesh once per process, about 1 s)."""
    import mediapipe as mp
    from skimage import data

    portrait = data.astronaut()
    found = portrait_landmarks()[:, :2]
    eye_left, eye_right = found[LM_OUTER_EYE_CORNERS[0]], found[LM_OUTER_EYE_CORNERS[1]]
    tilt_deg = np.degrees(np.arctan2(eye_right[1] - eye_left[1], eye_right[0] - eye_left[0]))
    pivot = 0.5 * (eye_left + eye_right)
    size = int(round(portrait.shape[0] * UPSAMPLE))
    # getRotationMatrix2D turns counter-clockwise on screen for positive angles, which undoes a
    # clockwise (positive) tilt of the eye line; the translation keeps the pivot's scaled place.
    to_base = cv2.getRotationMatrix2D((float(pivot[0]), float(pivot[1])), float(tilt_deg), UPSAMPLE)
    to_base[:, 2] += (UPSAMPLE - 1.0) * pivot
    image = cv2.warpAffine(portrait, to_base, (size, size), flags=cv2.INTER_CUBIC,
                           borderMode=cv2.BORDER_REFLECT101)
    landmarks = found @ to_base[:, :2].T + to_base[:, 2]

    eye_mid = 0.5 * (landmarks[LM_OUTER_EYE_CORNERS[0]] + landmarks[LM_OUTER_EYE_CORNERS[1]])
    mouth_mid = 0.5 * (landmarks[LM_UPPER_INNER_LIP] + landmarks[LM_LOWER_INNER_LIP])
    centre = 0.5 * (eye_mid + mouth_mid)
    eyes = (
        _eye_geometry(landmarks, mp.solutions.face_mesh.FACEMESH_RIGHT_EYE, LM_EYE_CORNERS[0]),
        _eye_geometry(landmarks, mp.solutions.face_mesh.FACEMESH_LEFT_EYE, LM_EYE_CORNERS[1]),
    )
    return Portrait(
        image=image, landmarks=landmarks, head_mask=_head_mask(image, landmarks),
        face_centre=(float(centre[0]), float(centre[1])),
        face_height=float(landmarks[LM_CHIN, 1] - landmarks[LM_FOREHEAD, 1]),
        face_oval=landmarks[_face_oval_indices()],
        lips=_lip_geometry(landmarks), eyes=eyes,
    )


def _grid(x0: int, y0: int, width: int, height: int) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    xs = np.arange(x0, x0 + width, dtype=np.float32)
    ys = np.arange(y0, y0 + height, dtype=np.float32)
    return np.broadcast_to(xs, (height, width)), np.broadcast_to(ys[:, None], (height, width))


def _row_coverage(rows: NDArray, top: NDArray, bottom: NDArray) -> NDArray[np.float32]:
    """Fraction of each pixel row ``[row - 0.5, row + 0.5]`` inside the band ``[top, bottom]``."""
    return np.clip(np.minimum(rows + 0.5, bottom) - np.maximum(rows - 0.5, top), 0.0, 1.0).astype(np.float32)


def _draw_mouth(source: NDArray[np.uint8], target: NDArray[np.uint8], lips: LipGeometry,
                mouth_open: float) -> None:
    """Redraw the mouth region of ``target`` from ``source`` with the given opening in [0, 1]."""
    columns, rows = _grid(lips.x0, lips.y0, lips.width, lips.height)
    opening = lips.max_opening * float(np.clip(mouth_open, 0.0, 1.0)) * lips.lens
    new_lower = lips.upper + opening
    lip_drop = new_lower - lips.lower                     # lower lip's move at the lip line
    centre = int(np.argmax(lips.lens))
    jaw_drop = lip_drop[centre] * lips.jaw                # chin and jaw move as one piece
    below = np.maximum(rows - new_lower, 0.0)
    toward_jaw = _smoothstep(0.0, lips.stretch, below)
    fade_out = 1.0 - _smoothstep(lips.lip_to_chin, lips.lip_to_chin + lips.fade, below)
    drop = ((1.0 - toward_jaw) * lip_drop + toward_jaw * jaw_drop) * fade_out
    drop = np.where(rows > lips.upper, drop, 0.0).astype(np.float32)
    roi = (slice(lips.y0, lips.y0 + lips.height), slice(lips.x0, lips.x0 + lips.width))
    warped = cv2.remap(source, columns, rows - drop, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)

    # Exact coverage of each pixel row [row - 0.5, row + 0.5] by the gap and by the teeth band.
    in_gap = _row_coverage(rows, lips.upper, new_lower)
    in_teeth = _row_coverage(rows, lips.upper, np.minimum(lips.upper + lips.teeth, new_lower))
    in_cavity = in_gap - in_teeth
    depth = np.clip((rows - lips.upper) / max(lips.max_opening, 1.0), 0.0, 1.0)[..., None]
    cavity = _CAVITY_DEEP + (_CAVITY_TONGUE - _CAVITY_DEEP) * depth ** 2
    mouth = (in_teeth[..., None] * source[roi].astype(np.float32) + in_cavity[..., None] * cavity
             + (1.0 - in_gap[..., None]) * warped.astype(np.float32))
    target[roi] = np.clip(mouth + 0.5, 0, 255).astype(np.uint8)


def _draw_eyelid(source: NDArray[np.uint8], target: NDArray[np.uint8], eye: EyeGeometry, closure: float) -> None:
    columns, rows = _grid(eye.x0, eye.y0, eye.width, eye.height)
    new_upper = eye.upper + float(np.clip(closure, 0.0, 1.0)) * (eye.lower - eye.upper)
    span = np.maximum(new_upper - eye.brow, 1e-3)
    stretched = eye.brow + (rows - eye.brow) * (eye.upper - eye.brow) / span
    in_lid = (rows >= eye.brow) & (rows <= new_upper)
    source_rows = np.where(in_lid, stretched, rows).astype(np.float32)
    roi = (slice(eye.y0, eye.y0 + eye.height), slice(eye.x0, eye.x0 + eye.width))
    target[roi] = cv2.remap(source, columns, source_rows, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)


def animate_face(portrait: Portrait, mouth_open: float, eye_closure: float,
                 out: NDArray[np.uint8] | None = None) -> NDArray[np.uint8]:
    """The base image with the mouth opened by ``mouth_open`` and eyelids closed by ``eye_closure``.

    Both arguments are in [0, 1]. ``out`` may be a buffer that already holds the base image (or
    an earlier frame of it): only the mouth and eye regions are rewritten, which is what makes a
    frame cheap.
    """
    if out is None:
        out = portrait.image.copy()
    _draw_mouth(portrait.image, out, portrait.lips, mouth_open)
    for eye in portrait.eyes:
        _draw_eyelid(portrait.image, out, eye, eye_closure)
    return out
