import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from pseudo3d.geometry.rotations import (
    axis_angle_to_matrix,
    axis_angle_to_quaternion,
    euler_yxz_to_matrix,
    geodesic_angle,
    make_quaternions_continuous,
    matrix_to_axis_angle,
    matrix_to_euler_yxz,
    matrix_to_quaternion,
    nearest_equivalent_axis_angle,
    quaternion_slerp,
    quaternion_to_axis_angle,
    quaternion_to_matrix,
)


def random_axes(rng, n):
    axes = rng.normal(size=(n, 3))
    return axes / np.linalg.norm(axes, axis=1, keepdims=True)


def rotvecs_with_hard_angles(rng):
    """Random axes with angles spread over [0, pi], plus angles at 0, tiny, and just below pi."""
    angles = np.concatenate(
        [
            rng.uniform(0.0, np.pi, 200),
            [0.0, 1e-12, 1e-8, 1e-5, 1e-4, 2e-4, 1e-3],
            np.pi - np.array([1e-3, 1e-5, 1e-7, 1e-9]),
        ]
    )
    return random_axes(rng, len(angles)) * angles[:, None]


def test_axis_angle_to_matrix_matches_scipy_and_is_a_rotation():
    rotvecs = rotvecs_with_hard_angles(np.random.default_rng(0))
    matrices = axis_angle_to_matrix(rotvecs)
    np.testing.assert_allclose(matrices, Rotation.from_rotvec(rotvecs).as_matrix(), atol=1e-14)
    products = matrices @ np.swapaxes(matrices, -1, -2)
    np.testing.assert_allclose(products, np.broadcast_to(np.eye(3), matrices.shape), atol=1e-14)
    np.testing.assert_allclose(np.linalg.det(matrices), 1.0, atol=1e-14)


def test_zero_rotation_is_identity_and_tiny_rotation_keeps_first_order_term():
    np.testing.assert_array_equal(axis_angle_to_matrix(np.zeros(3)), np.eye(3))
    tiny = np.array([1e-10, -2e-10, 3e-10])
    matrix = axis_angle_to_matrix(tiny)
    assert matrix[2, 1] == pytest.approx(tiny[0], rel=1e-12)
    np.testing.assert_allclose(matrix_to_axis_angle(matrix), tiny, rtol=1e-9, atol=0)


def test_matrix_axis_angle_round_trip_including_near_zero_and_near_pi():
    rotvecs = rotvecs_with_hard_angles(np.random.default_rng(1))
    recovered = matrix_to_axis_angle(axis_angle_to_matrix(rotvecs))
    np.testing.assert_allclose(recovered, rotvecs, atol=1e-7)
    # Away from the half-turn the representation is unique, so it is recovered tightly.
    below_pi = np.linalg.norm(rotvecs, axis=1) < np.pi - 1e-3
    np.testing.assert_allclose(recovered[below_pi], rotvecs[below_pi], atol=1e-12)


def test_half_turn_gives_angle_pi_and_same_matrix():
    axes = random_axes(np.random.default_rng(2), 20)
    matrices = axis_angle_to_matrix(np.pi * axes)
    recovered = matrix_to_axis_angle(matrices)
    np.testing.assert_allclose(np.linalg.norm(recovered, axis=1), np.pi, atol=1e-12)
    np.testing.assert_allclose(np.abs(np.sum(recovered * axes, axis=1)), np.pi, atol=1e-12)
    np.testing.assert_allclose(axis_angle_to_matrix(recovered), matrices, atol=1e-14)


def test_angles_above_pi_come_back_canonical():
    axis = np.array([0.0, 0.6, 0.8])
    recovered = matrix_to_axis_angle(axis_angle_to_matrix(4.0 * axis))
    np.testing.assert_allclose(recovered, -(2 * np.pi - 4.0) * axis, atol=1e-12)


def test_random_matrices_round_trip_through_axis_angle_and_quaternion():
    matrices = Rotation.random(300, random_state=3).as_matrix()
    np.testing.assert_allclose(axis_angle_to_matrix(matrix_to_axis_angle(matrices)), matrices, atol=1e-13)
    quaternions = matrix_to_quaternion(matrices)
    np.testing.assert_allclose(np.linalg.norm(quaternions, axis=-1), 1.0, atol=1e-14)
    assert np.all(quaternions[:, 0] >= 0.0)
    np.testing.assert_allclose(quaternion_to_matrix(quaternions), matrices, atol=1e-13)


def test_quaternion_order_is_scalar_first():
    # 90 degrees about +z: w = cos 45, z = sin 45.
    quaternion = matrix_to_quaternion(axis_angle_to_matrix([0.0, 0.0, np.pi / 2]))
    np.testing.assert_allclose(quaternion, [np.sqrt(0.5), 0.0, 0.0, np.sqrt(0.5)], atol=1e-15)
    scipy_xyzw = Rotation.from_rotvec([0.3, -0.2, 0.5]).as_quat()
    np.testing.assert_allclose(axis_angle_to_quaternion([0.3, -0.2, 0.5]), np.roll(scipy_xyzw, 1), atol=1e-15)


def test_quaternion_axis_angle_round_trip_and_sign_invariance():
    rotvecs = rotvecs_with_hard_angles(np.random.default_rng(4))
    quaternions = axis_angle_to_quaternion(rotvecs)
    np.testing.assert_allclose(quaternion_to_axis_angle(quaternions), rotvecs, atol=1e-7)
    np.testing.assert_allclose(
        quaternion_to_axis_angle(-quaternions), quaternion_to_axis_angle(quaternions), atol=1e-12
    )
    # Non-unit input is normalised.
    np.testing.assert_allclose(quaternion_to_matrix(3.0 * quaternions), axis_angle_to_matrix(rotvecs), atol=1e-13)


def test_conversions_keep_leading_batch_axes():
    rotvecs = np.random.default_rng(5).normal(size=(4, 2, 3))
    assert axis_angle_to_matrix(rotvecs).shape == (4, 2, 3, 3)
    assert matrix_to_quaternion(axis_angle_to_matrix(rotvecs)).shape == (4, 2, 4)
    assert matrix_to_euler_yxz(axis_angle_to_matrix(rotvecs)).shape == (4, 2, 3)


@pytest.mark.parametrize(
    ("function", "bad", "name"),
    [
        (axis_angle_to_matrix, np.zeros((5, 4)), "rotvec"),
        (matrix_to_axis_angle, np.zeros((3, 4)), "matrix"),
        (quaternion_to_matrix, np.zeros(3), "quaternion"),
        (quaternion_to_matrix, np.zeros(4), "non-zero"),
    ],
)
def test_bad_shapes_raise_value_error_naming_the_argument(function, bad, name):
    with pytest.raises(ValueError, match=name):
        function(bad)


def test_make_quaternions_continuous_flips_signs_without_changing_rotations():
    rng = np.random.default_rng(6)
    # A slow rotation sampled densely, with random sign flips like a per-frame converter produces.
    angles = np.linspace(0.0, 3.0 * np.pi, 100)
    quaternions = axis_angle_to_quaternion(angles[:, None] * np.array([0.0, 1.0, 0.0]))
    flipped = quaternions * rng.choice([-1.0, 1.0], size=(100, 1))
    continuous = make_quaternions_continuous(flipped)
    assert np.all(np.sum(continuous[1:] * continuous[:-1], axis=1) >= 0.0)
    np.testing.assert_array_equal(continuous[0], flipped[0])
    np.testing.assert_allclose(np.abs(continuous), np.abs(flipped))
    np.testing.assert_allclose(continuous, quaternions * np.sign(flipped[0, 0] / quaternions[0, 0]), atol=1e-15)


def test_make_quaternions_continuous_handles_joints_independently():
    q = np.array([[[1.0, 0, 0, 0], [0, 1.0, 0, 0]], [[-1.0, 0, 0, 0], [0, 1.0, 0, 0]]])
    continuous = make_quaternions_continuous(q)
    np.testing.assert_array_equal(continuous[1, 0], [1.0, 0, 0, 0])
    np.testing.assert_array_equal(continuous[1, 1], [0, 1.0, 0, 0])


def test_slerp_moves_at_constant_speed_along_the_short_arc():
    axis = np.array([1.0, 2.0, 2.0]) / 3.0
    start = axis_angle_to_quaternion(2.9 * axis)
    end = -axis_angle_to_quaternion(3.5 * axis)  # opposite sign: slerp must still take the short way
    fractions = np.linspace(0.0, 1.0, 7)
    blended = quaternion_slerp(start, end, fractions)
    truth = axis_angle_to_matrix((2.9 + 0.6 * fractions)[:, None] * axis)
    np.testing.assert_allclose(geodesic_angle(quaternion_to_matrix(blended), truth), 0.0, atol=1e-7)


def test_nearest_equivalent_axis_angle_keeps_the_reference_branch():
    axis = np.array([0.0, 0.0, 1.0])
    canonical = matrix_to_axis_angle(axis_angle_to_matrix(4.0 * axis))
    np.testing.assert_allclose(nearest_equivalent_axis_angle(canonical, 3.9 * axis), 4.0 * axis, atol=1e-12)
    np.testing.assert_allclose(nearest_equivalent_axis_angle(0.5 * axis, 0.4 * axis), 0.5 * axis)
    np.testing.assert_array_equal(nearest_equivalent_axis_angle(np.zeros(3), 2.0 * axis), np.zeros(3))


def test_geodesic_angle_of_known_relative_rotation():
    base = Rotation.random(10, random_state=7).as_matrix()
    relative = axis_angle_to_matrix(0.25 * random_axes(np.random.default_rng(8), 10))
    np.testing.assert_allclose(geodesic_angle(base, base @ relative), 0.25, atol=1e-12)


def test_euler_matches_scipy_intrinsic_yxz():
    angles = np.random.default_rng(9).uniform([-np.pi, -np.pi / 2, -np.pi], [np.pi, np.pi / 2, np.pi], size=(100, 3))
    np.testing.assert_allclose(euler_yxz_to_matrix(angles), Rotation.from_euler("YXZ", angles).as_matrix(), atol=1e-14)


def test_euler_round_trips():
    rng = np.random.default_rng(10)
    angles = rng.uniform([-np.pi, -np.pi / 2 + 1e-6, -np.pi], [np.pi, np.pi / 2 - 1e-6, np.pi], size=(300, 3))
    np.testing.assert_allclose(matrix_to_euler_yxz(euler_yxz_to_matrix(angles)), angles, atol=1e-9)
    matrices = Rotation.random(300, random_state=11).as_matrix()
    np.testing.assert_allclose(euler_yxz_to_matrix(matrix_to_euler_yxz(matrices)), matrices, atol=1e-13)


def test_euler_at_gimbal_lock_reproduces_the_matrix():
    angles = np.array([[0.7, np.pi / 2, 0.2], [0.7, -np.pi / 2, 0.2], [-2.0, np.pi / 2, 1.5]])
    matrices = euler_yxz_to_matrix(angles)
    recovered = matrix_to_euler_yxz(matrices)
    np.testing.assert_allclose(recovered[:, 1], angles[:, 1], atol=1e-8)
    np.testing.assert_array_equal(recovered[:, 2], 0.0)
    np.testing.assert_allclose(euler_yxz_to_matrix(recovered), matrices, atol=1e-12)


def test_euler_signs_match_the_documented_head_pose_reading():
    nose = np.array([0.0, 0.0, -1.0])  # a face looking at the camera points its nose along -z
    right_of_image = np.array([1.0, 0.0, 0.0])
    yawed = euler_yxz_to_matrix([0.3, 0.0, 0.0]) @ nose
    pitched = euler_yxz_to_matrix([0.0, 0.3, 0.0]) @ nose
    rolled = euler_yxz_to_matrix([0.0, 0.0, 0.3]) @ right_of_image
    assert yawed[0] < 0.0  # positive yaw: nose towards image left
    assert pitched[1] > 0.0  # positive pitch: nose down (y points down)
    assert rolled[1] > 0.0  # positive roll: clockwise on screen, +x swings down
    np.testing.assert_allclose(matrix_to_euler_yxz(euler_yxz_to_matrix([0.3, -0.2, 0.1])), [0.3, -0.2, 0.1], atol=1e-15)
