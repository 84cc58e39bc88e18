"""Rotation conversions: axis-angle, 3x3 matrices, unit quaternions and yaw/pitch/roll.

Pure float64 numpy functions, batched over any leading axes ``...``.

Conventions used throughout the package:

* **Rotation matrices** act on column vectors: ``v_rotated = R @ v``. A head pose ``R`` maps
  directions from the head's frame into the camera frame.
* **Axis-angle** (``rotvec``) is a 3-vector whose direction is the rotation axis and whose length
  is the angle in radians (right-hand rule), as in OpenCV's ``Rodrigues`` and FLAME's pose codes.
* **Quaternions** are ``(w, x, y, z)``: scalar first, unit length. ``q`` and ``-q`` are the same
  rotation; functions that return a canonical quaternion pick ``w >= 0``.
* **Camera frame** (OpenCV / image coordinates): ``+x`` right, ``+y`` down, ``+z`` forward,
  along the viewing direction. See :func:`matrix_to_euler_yxz` for the reporting angles.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

# Below this angle (radians) the trigonometric ratios use their Taylor series; the series error
# there is far below float64 resolution and the closed forms would divide 0 by 0.
_SMALL_ANGLE = 1e-4
# Below this value of cos(pitch) yaw and roll turn about the same axis and cannot be separated.
_GIMBAL_COS = 1e-9


def _as_float_array(values: ArrayLike, name: str, trailing: tuple[int, ...]) -> NDArray[np.float64]:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim < len(trailing) or array.shape[array.ndim - len(trailing):] != trailing:
        wanted = "(..., " + ", ".join(str(n) for n in trailing) + ")"
        raise ValueError(f"{name} must have shape {wanted}, got {array.shape}")
    return array


def _skew(vectors: NDArray[np.float64]) -> NDArray[np.float64]:
    """Cross-product matrices ``K`` with ``K @ u == v x u``; ``(..., 3) -> (..., 3, 3)``."""
    x, y, z = vectors[..., 0], vectors[..., 1], vectors[..., 2]
    zero = np.zeros_like(x)
    rows = [
        np.stack([zero, -z, y], axis=-1),
        np.stack([z, zero, -x], axis=-1),
        np.stack([-y, x, zero], axis=-1),
    ]
    return np.stack(rows, axis=-2)


def axis_angle_to_matrix(rotvec: ArrayLike) -> NDArray[np.float64]:
    """Rodrigues' formula: axis-angle ``(..., 3)`` (radians) to rotation matrices ``(..., 3, 3)``.

    Uses ``R = I + a K + b K^2`` with ``K`` the cross-product matrix of the unnormalised
    rotation vector, ``a = sin(theta) / theta`` and ``b = (1 - cos(theta)) / theta^2``; both
    ratios switch to their Taylor series near ``theta = 0``, so tiny rotations stay exact to
    float64 precision and zero maps to the identity.
    """
    rotvec = _as_float_array(rotvec, "rotvec", (3,))
    theta2 = np.sum(rotvec * rotvec, axis=-1)
    theta = np.sqrt(theta2)
    small = theta < _SMALL_ANGLE
    safe_theta = np.where(small, 1.0, theta)
    sin_ratio = np.where(small, 1.0 - theta2 / 6.0 + theta2 * theta2 / 120.0, np.sin(safe_theta) / safe_theta)
    cos_ratio = np.where(
        small,
        0.5 - theta2 / 24.0 + theta2 * theta2 / 720.0,
        (1.0 - np.cos(safe_theta)) / (safe_theta * safe_theta),
    )
    skew = _skew(rotvec)
    identity = np.broadcast_to(np.eye(3), skew.shape)
    return identity + sin_ratio[..., None, None] * skew + cos_ratio[..., None, None] * (skew @ skew)


def axis_angle_to_quaternion(rotvec: ArrayLike) -> NDArray[np.float64]:
    """Axis-angle ``(..., 3)`` (radians) to unit quaternions ``(..., 4)`` in ``(w, x, y, z)`` order.

    The result is ``(cos(theta/2), sin(theta/2) * axis)`` and is *not* canonicalised: an angle
    above pi gives ``w < 0``. That keeps a continuous rotation-vector sequence continuous in
    quaternion space.
    """
    rotvec = _as_float_array(rotvec, "rotvec", (3,))
    theta2 = np.sum(rotvec * rotvec, axis=-1)
    theta = np.sqrt(theta2)
    small = theta < _SMALL_ANGLE
    safe_theta = np.where(small, 1.0, theta)
    # sin(theta / 2) / theta, which tends to 1/2 at theta = 0.
    half_sin_ratio = np.where(
        small, 0.5 - theta2 / 48.0 + theta2 * theta2 / 3840.0, np.sin(0.5 * safe_theta) / safe_theta
    )
    w = np.cos(0.5 * theta)
    return np.concatenate([w[..., None], half_sin_ratio[..., None] * rotvec], axis=-1)


def quaternion_to_axis_angle(quaternion: ArrayLike) -> NDArray[np.float64]:
    """Quaternions ``(..., 4)`` in ``(w, x, y, z)`` order to axis-angle ``(..., 3)``.

    The input is normalised first (it must not be zero) and flipped to ``w >= 0``, so the
    returned angle ``|rotvec|`` lies in ``[0, pi]``. Computed as ``2 * atan2(|v|, w)``, which
    stays accurate both near the identity and near half-turns.
    """
    quaternion = normalize_quaternion(quaternion)
    quaternion = np.where(quaternion[..., :1] < 0.0, -quaternion, quaternion)
    w = quaternion[..., 0]
    vector = quaternion[..., 1:]
    sin_half = np.linalg.norm(vector, axis=-1)
    small = sin_half < _SMALL_ANGLE
    safe_sin_half = np.where(small, 1.0, sin_half)
    # angle / sin(angle / 2); near zero use atan(r)/r ~ 1 - r^2/3 with r = |v| / w (w ~ 1 there).
    ratio_small = (2.0 / np.where(small, w, 1.0)) * (1.0 - (sin_half / np.where(small, w, 1.0)) ** 2 / 3.0)
    ratio = np.where(small, ratio_small, 2.0 * np.arctan2(sin_half, w) / safe_sin_half)
    return ratio[..., None] * vector


def normalize_quaternion(quaternion: ArrayLike) -> NDArray[np.float64]:
    """Scale quaternions ``(..., 4)`` to unit length; raises ``ValueError`` on a zero quaternion."""
    quaternion = _as_float_array(quaternion, "quaternion", (4,))
    norm = np.linalg.norm(quaternion, axis=-1, keepdims=True)
    if np.any(norm == 0.0):
        raise ValueError("quaternion must be non-zero to be normalised")
    return quaternion / norm


def quaternion_to_matrix(quaternion: ArrayLike) -> NDArray[np.float64]:
    """Quaternions ``(..., 4)`` in ``(w, x, y, z)`` order (normalised here) to matrices ``(..., 3, 3)``."""
    quaternion = normalize_quaternion(quaternion)
    w, x, y, z = (quaternion[..., i] for i in range(4))
    rows = [
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], axis=-1),
        np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], axis=-1),
        np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], axis=-1),
    ]
    return np.stack(rows, axis=-2)


def matrix_to_quaternion(matrix: ArrayLike) -> NDArray[np.float64]:
    """Rotation matrices ``(..., 3, 3)`` to canonical unit quaternions ``(..., 4)``, ``(w, x, y, z)``, ``w >= 0``.

    Each of ``4w^2, 4x^2, 4y^2, 4z^2`` can be read off the diagonal; the largest one is taken by
    square root and the other three components come from off-diagonal sums or differences
    divided by it (Shepperd's method). Dividing by the largest component keeps every case,
    including half-turns where ``w = 0``, well conditioned. At exactly a half-turn ``q`` and
    ``-q`` both have ``w = 0``; either may be returned.
    """
    matrix = _as_float_array(matrix, "matrix", (3, 3))
    m = matrix
    trace = m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2]
    four_squares = np.stack(
        [
            1.0 + trace,
            1.0 + m[..., 0, 0] - m[..., 1, 1] - m[..., 2, 2],
            1.0 - m[..., 0, 0] + m[..., 1, 1] - m[..., 2, 2],
            1.0 - m[..., 0, 0] - m[..., 1, 1] + m[..., 2, 2],
        ],
        axis=-1,
    )
    # Row k holds 4 * q_k * q for the case where component k is the largest one.
    skew_w_x = m[..., 2, 1] - m[..., 1, 2]
    skew_w_y = m[..., 0, 2] - m[..., 2, 0]
    skew_w_z = m[..., 1, 0] - m[..., 0, 1]
    sym_x_y = m[..., 0, 1] + m[..., 1, 0]
    sym_x_z = m[..., 0, 2] + m[..., 2, 0]
    sym_y_z = m[..., 1, 2] + m[..., 2, 1]
    candidates = np.stack(
        [
            np.stack([four_squares[..., 0], skew_w_x, skew_w_y, skew_w_z], axis=-1),
            np.stack([skew_w_x, four_squares[..., 1], sym_x_y, sym_x_z], axis=-1),
            np.stack([skew_w_y, sym_x_y, four_squares[..., 2], sym_y_z], axis=-1),
            np.stack([skew_w_z, sym_x_z, sym_y_z, four_squares[..., 3]], axis=-1),
        ],
        axis=-2,
    )
    best = np.argmax(four_squares, axis=-1)
    chosen = np.take_along_axis(candidates, best[..., None, None], axis=-2)[..., 0, :]
    quaternion = chosen / np.linalg.norm(chosen, axis=-1, keepdims=True)
    return np.where(quaternion[..., :1] < 0.0, -quaternion, quaternion)


def matrix_to_axis_angle(matrix: ArrayLike) -> NDArray[np.float64]:
    """Rotation matrices ``(..., 3, 3)`` to axis-angle ``(..., 3)`` with angle in ``[0, pi]`` radians.

    Goes through :func:`matrix_to_quaternion`, which stays accurate near the identity (no
    ``arccos`` of a trace close to 3) and near half-turns (no division by ``sin(theta) ~ 0``).
    At exactly ``pi`` the axis sign is arbitrary, as both signs describe the same rotation.
    """
    return quaternion_to_axis_angle(matrix_to_quaternion(matrix))


def make_quaternions_continuous(quaternions: ArrayLike) -> NDArray[np.float64]:
    """Flip quaternion signs along time so neighbours lie in the same hemisphere.

    ``quaternions`` is ``(T, ..., 4)`` with time on axis 0; trailing axes (e.g. several joints)
    are handled independently. The result describes the same rotations and satisfies
    ``dot(q[t], q[t - 1]) >= 0`` for every ``t``; ``q[0]`` keeps its sign. Needed before any
    per-component filtering, because ``q`` and ``-q`` are the same rotation.
    """
    quaternions = _as_float_array(quaternions, "quaternions", (4,))
    if quaternions.ndim < 2:
        raise ValueError(f"quaternions must have shape (T, ..., 4), got {quaternions.shape}")
    if quaternions.shape[0] < 2:
        return quaternions.copy()
    neighbour_dots = np.sum(quaternions[1:] * quaternions[:-1], axis=-1)
    step_signs = np.where(neighbour_dots < 0.0, -1.0, 1.0)
    # The sign of frame t is the product of all sign changes up to t.
    signs = np.concatenate([np.ones_like(step_signs[:1]), np.cumprod(step_signs, axis=0)], axis=0)
    return quaternions * signs[..., None]


def quaternion_slerp(start: ArrayLike, end: ArrayLike, fraction: ArrayLike) -> NDArray[np.float64]:
    """Spherical linear interpolation along the shorter arc between two rotations.

    ``start`` and ``end`` are quaternions ``(..., 4)`` in ``(w, x, y, z)`` order, ``fraction``
    broadcasts against ``(...)``: 0 gives ``start``, 1 gives the rotation of ``end``. The
    rotation angle grows linearly with ``fraction`` about a fixed axis. Returns unit
    quaternions ``(..., 4)``; near-identical inputs fall back to normalised linear
    interpolation, where slerp's ``sin`` ratios lose precision.
    """
    start = normalize_quaternion(start)
    end = normalize_quaternion(end)
    fraction = np.asarray(fraction, dtype=np.float64)[..., None]
    dot = np.sum(start * end, axis=-1, keepdims=True)
    end = np.where(dot < 0.0, -end, end)
    dot = np.clip(np.abs(dot), 0.0, 1.0)
    half_angle = np.arccos(dot)
    sin_half = np.sin(half_angle)
    nearly_equal = sin_half < _SMALL_ANGLE
    safe_sin = np.where(nearly_equal, 1.0, sin_half)
    weight_start = np.where(nearly_equal, 1.0 - fraction, np.sin((1.0 - fraction) * half_angle) / safe_sin)
    weight_end = np.where(nearly_equal, fraction, np.sin(fraction * half_angle) / safe_sin)
    blended = weight_start * start + weight_end * end
    return blended / np.linalg.norm(blended, axis=-1, keepdims=True)


def nearest_equivalent_axis_angle(rotvec: ArrayLike, reference: ArrayLike) -> NDArray[np.float64]:
    """Re-express rotations as the axis-angle vector closest to ``reference``.

    ``theta * axis`` and ``(theta + 2 pi k) * axis`` are the same rotation for any integer ``k``.
    For each rotation in ``rotvec`` ``(..., 3)`` this picks the ``k`` whose vector is nearest
    (Euclidean) to ``reference`` (broadcasting to ``(..., 3)``), so a processed sequence stays on
    the same branch as its input. The identity (angle below 1e-4 rad) is returned unchanged.
    """
    rotvec = _as_float_array(rotvec, "rotvec", (3,))
    reference = _as_float_array(reference, "reference", (3,))
    angle = np.linalg.norm(rotvec, axis=-1)
    has_axis = angle >= _SMALL_ANGLE
    axis = rotvec / np.where(has_axis, angle, 1.0)[..., None]
    along_axis = np.sum(axis * reference, axis=-1)
    turns = np.where(has_axis, np.round((along_axis - angle) / (2.0 * np.pi)), 0.0)
    return (angle + 2.0 * np.pi * turns)[..., None] * axis


def geodesic_angle(matrix_a: ArrayLike, matrix_b: ArrayLike) -> NDArray[np.float64]:
    """Angle in radians, in ``[0, pi]``, of the rotation taking ``matrix_a`` to ``matrix_b``.

    Both are ``(..., 3, 3)`` (broadcast); the result has shape ``(...)``. This is the standard
    distance between orientations, independent of how they are parameterised.
    """
    matrix_a = _as_float_array(matrix_a, "matrix_a", (3, 3))
    matrix_b = _as_float_array(matrix_b, "matrix_b", (3, 3))
    relative = np.swapaxes(matrix_a, -1, -2) @ matrix_b
    return np.linalg.norm(matrix_to_axis_angle(relative), axis=-1)


def _rotation_about_y(angle: NDArray[np.float64]) -> NDArray[np.float64]:
    c, s, one, zero = np.cos(angle), np.sin(angle), np.ones_like(angle), np.zeros_like(angle)
    return np.stack([np.stack([c, zero, s], -1), np.stack([zero, one, zero], -1), np.stack([-s, zero, c], -1)], -2)


def _rotation_about_x(angle: NDArray[np.float64]) -> NDArray[np.float64]:
    c, s, one, zero = np.cos(angle), np.sin(angle), np.ones_like(angle), np.zeros_like(angle)
    return np.stack([np.stack([one, zero, zero], -1), np.stack([zero, c, -s], -1), np.stack([zero, s, c], -1)], -2)


def _rotation_about_z(angle: NDArray[np.float64]) -> NDArray[np.float64]:
    c, s, one, zero = np.cos(angle), np.sin(angle), np.ones_like(angle), np.zeros_like(angle)
    return np.stack([np.stack([c, -s, zero], -1), np.stack([s, c, zero], -1), np.stack([zero, zero, one], -1)], -2)


def euler_yxz_to_matrix(angles: ArrayLike) -> NDArray[np.float64]:
    """``(yaw, pitch, roll)`` in radians, ``(..., 3)``, to rotation matrices ``(..., 3, 3)``.

    ``R = R_y(yaw) @ R_x(pitch) @ R_z(roll)``: intrinsic Y-X'-Z'' rotations about the camera
    axes (``+x`` right, ``+y`` down, ``+z`` forward), each right-handed, so
    ``R_y(a) = [[cos a, 0, sin a], [0, 1, 0], [-sin a, 0, cos a]]`` and likewise for x and z.
    scipy's ``Rotation.from_euler("YXZ", [yaw, pitch, roll])`` builds the same matrix.

    Read as a head pose, for a face looking straight at the camera (nose along ``-z``):

    * **yaw** (about the vertical ``y`` axis) > 0 turns the nose towards image left (``-x``),
      i.e. towards the subject's own right;
    * **pitch** (about the horizontal ``x`` axis) > 0 tips the nose down (``+y``): looking down;
    * **roll** (about the viewing ``z`` axis) > 0 turns the head clockwise as seen in the image
      (``+x`` moves towards ``+y``, i.e. downwards on screen).
    """
    angles = _as_float_array(angles, "angles", (3,))
    yaw, pitch, roll = angles[..., 0], angles[..., 1], angles[..., 2]
    return _rotation_about_y(yaw) @ _rotation_about_x(pitch) @ _rotation_about_z(roll)


def matrix_to_euler_yxz(matrix: ArrayLike) -> NDArray[np.float64]:
    """Rotation matrices ``(..., 3, 3)`` to ``(yaw, pitch, roll)`` in radians, ``(..., 3)``.

    Inverse of :func:`euler_yxz_to_matrix` (see there for axes and signs). Ranges:
    yaw and roll in ``(-pi, pi]``, pitch in ``[-pi/2, pi/2]``. At pitch = +-pi/2 (gimbal lock)
    yaw and roll turn about the same axis; roll is then reported as 0 and yaw carries the
    whole turn, which still reproduces the matrix.
    """
    matrix = _as_float_array(matrix, "matrix", (3, 3))
    cos_pitch = np.hypot(matrix[..., 1, 0], matrix[..., 1, 1])
    pitch = np.arctan2(-matrix[..., 1, 2], cos_pitch)
    locked = cos_pitch < _GIMBAL_COS
    yaw_free = np.arctan2(matrix[..., 0, 2], matrix[..., 2, 2])
    roll_free = np.arctan2(matrix[..., 1, 0], matrix[..., 1, 1])
    # With cos(pitch) = 0: R[0,0] = cos(yaw -+ roll), R[0,1] = sin(yaw -+ roll) * sign(sin(pitch)).
    yaw_locked = np.arctan2(np.sign(-matrix[..., 1, 2]) * matrix[..., 0, 1], matrix[..., 0, 0])
    yaw = np.where(locked, yaw_locked, yaw_free)
    roll = np.where(locked, 0.0, roll_free)
    return np.stack([yaw, pitch, roll], axis=-1)
