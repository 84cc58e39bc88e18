import numpy as np
from scipy.spatial.transform import Rotation

from pseudo3d.geometry.rotations import axis_angle_to_matrix, geodesic_angle, matrix_to_axis_angle
from pseudo3d.smoothing.rotation import smooth_rotations
from pseudo3d.smoothing.savgol import savgol_smooth

FPS = 25.0


def perturb(rotvec, noise_rad, seed):
    """Compose each rotation with a random small rotation of about ``noise_rad`` radians."""
    noise = np.random.default_rng(seed).normal(scale=noise_rad / np.sqrt(3), size=rotvec.shape)
    return matrix_to_axis_angle(axis_angle_to_matrix(noise) @ axis_angle_to_matrix(rotvec))


def test_rotation_through_a_half_turn_is_smoothed_without_wrap_artefacts():
    axis = np.array([0.0, 0.6, 0.8])
    angles = np.linspace(2.4, 3.9, 100)  # crosses pi: canonical axis-angle flips from +pi*axis to -pi*axis
    truth = axis_angle_to_matrix(angles[:, None] * axis)
    observed = perturb(angles[:, None] * axis, 0.01, seed=0)
    assert np.max(np.linalg.norm(np.diff(observed, axis=0), axis=1)) > 5.0  # the representation jumps

    smoothed = smooth_rotations(observed, 0.2, FPS, 2)
    naive = savgol_smooth(observed, 0.2, FPS, 2)

    smoothed_error = geodesic_angle(axis_angle_to_matrix(smoothed), truth)
    naive_error = geodesic_angle(axis_angle_to_matrix(naive), truth)
    observed_error = geodesic_angle(axis_angle_to_matrix(observed), truth)
    assert np.max(smoothed_error) < 0.02
    assert np.mean(smoothed_error) < np.mean(observed_error)
    assert np.max(naive_error) > 1.0  # per-component smoothing of rotvecs breaks at the wrap


def test_noise_is_reduced_on_small_angle_motion():
    t = np.arange(200) / FPS
    clean = np.stack(
        [
            0.15 * np.sin(2 * np.pi * 0.3 * t),
            0.1 * np.sin(2 * np.pi * 0.2 * t + 1.0),
            0.05 * np.cos(2 * np.pi * 0.4 * t),
        ],
        axis=1,
    )
    observed = perturb(clean, 0.02, seed=1)
    truth = axis_angle_to_matrix(clean)

    def rms_error(rotvec):
        return np.sqrt(np.mean(geodesic_angle(axis_angle_to_matrix(rotvec), truth) ** 2))

    # A 5-frame quadratic Savitzky-Golay filter passes sqrt(595/1225) ~ 0.70 of white noise;
    # an 11-frame one about 0.45.
    assert rms_error(smooth_rotations(observed, 0.2, FPS, 2)) < 0.8 * rms_error(observed)
    assert rms_error(smooth_rotations(observed, 0.4, FPS, 2)) < 0.55 * rms_error(observed)


def test_output_stays_on_the_input_branch():
    # Angles above pi are legitimate input (an unwrapped head-turn track); smoothing a constant
    # rotation returns it component for component, not its canonical twin.
    rotvec = np.tile(4.0 * np.array([0.0, 0.6, 0.8]), (30, 1))
    np.testing.assert_allclose(smooth_rotations(rotvec, 0.2, FPS, 2), rotvec, atol=1e-12)


def test_several_joints_and_short_clips():
    rotvec = Rotation.random(40, random_state=2).as_rotvec().reshape(10, 4, 3) * 0.3
    smoothed = smooth_rotations(rotvec, 0.2, FPS, 2)
    assert smoothed.shape == (10, 4, 3)
    for joint in range(4):
        np.testing.assert_allclose(smoothed[:, joint], smooth_rotations(rotvec[:, joint], 0.2, FPS, 2), atol=1e-12)
    short = rotvec[:3, 0]
    np.testing.assert_allclose(smooth_rotations(short, 0.2, FPS, 2), short, atol=1e-12)
