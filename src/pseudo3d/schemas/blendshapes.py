"""The 52 ARKit face blendshapes, and the column layout of Epic's Live Link Face CSV.

:data:`ARKIT_BLENDSHAPES` is Apple's order (``ARFaceAnchor.BlendShapeLocation`` grouped as left
eye, right eye, mouth and jaw, eyebrows, cheeks, nose, tongue; the same order as Unreal's
``EARFaceBlendShape``). Blendshape targets in pseudo3d always use this order, whatever order a
file stores them in.

:data:`LIVE_LINK_FACE_COLUMNS` is the header row of a Live Link Face take's CSV: ``Timecode``,
``BlendShapeCount``, the 52 shapes capitalised, then head and eye rotations. The app writes
``JawRight`` before ``JawLeft`` and ``MouthRight`` before ``MouthLeft``, unlike Apple's order,
and some app versions spell the second column ``BlendshapeCount``, so match columns by name
(:func:`arkit_index`, case-insensitive), never by position.
"""

from __future__ import annotations

ARKIT_BLENDSHAPES: tuple[str, ...] = (
    # left eye
    "eyeBlinkLeft", "eyeLookDownLeft", "eyeLookInLeft", "eyeLookOutLeft", "eyeLookUpLeft",
    "eyeSquintLeft", "eyeWideLeft",
    # right eye
    "eyeBlinkRight", "eyeLookDownRight", "eyeLookInRight", "eyeLookOutRight", "eyeLookUpRight",
    "eyeSquintRight", "eyeWideRight",
    # mouth and jaw
    "jawForward", "jawLeft", "jawRight", "jawOpen", "mouthClose", "mouthFunnel", "mouthPucker",
    "mouthLeft", "mouthRight", "mouthSmileLeft", "mouthSmileRight", "mouthFrownLeft",
    "mouthFrownRight", "mouthDimpleLeft", "mouthDimpleRight", "mouthStretchLeft",
    "mouthStretchRight", "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper",
    "mouthPressLeft", "mouthPressRight", "mouthLowerDownLeft", "mouthLowerDownRight",
    "mouthUpperUpLeft", "mouthUpperUpRight",
    # eyebrows, cheeks, nose, tongue
    "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
    "cheekPuff", "cheekSquintLeft", "cheekSquintRight",
    "noseSneerLeft", "noseSneerRight",
    "tongueOut",
)

LIVE_LINK_FACE_ROTATIONS: tuple[str, ...] = (
    "HeadYaw", "HeadPitch", "HeadRoll",
    "LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll",
    "RightEyeYaw", "RightEyePitch", "RightEyeRoll",
)
"""The nine rotation columns after the blendshapes (``BlendShapeCount`` = 52 + 9 = 61)."""


def _capitalised(name: str) -> str:
    return name[0].upper() + name[1:]


def _live_link_order() -> tuple[str, ...]:
    order = list(ARKIT_BLENDSHAPES)
    for left, right in (("jawLeft", "jawRight"), ("mouthLeft", "mouthRight")):
        i, j = order.index(left), order.index(right)
        order[i], order[j] = order[j], order[i]
    return tuple(_capitalised(name) for name in order)


LIVE_LINK_FACE_COLUMNS: tuple[str, ...] = ("Timecode", "BlendShapeCount", *_live_link_order(),
                                           *LIVE_LINK_FACE_ROTATIONS)
"""The 63 columns of a Live Link Face CSV, in the order the app writes them."""

_INDEX = {name.lower(): i for i, name in enumerate(ARKIT_BLENDSHAPES)}


def arkit_index(name: str) -> int | None:
    """Position of a blendshape in :data:`ARKIT_BLENDSHAPES`, matched case-insensitively
    (``jawOpen``, ``JawOpen`` → 17); None for a name that is not one of the 52."""
    return _INDEX.get(str(name).lower())


if len(ARKIT_BLENDSHAPES) != 52 or len(set(ARKIT_BLENDSHAPES)) != 52:  # pragma: no cover - a typo guard
    raise RuntimeError("ARKIT_BLENDSHAPES must hold 52 distinct names")
