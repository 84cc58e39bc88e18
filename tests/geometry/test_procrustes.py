import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from pseudo3d.geometry.procrustes import (
    apply_similarity,
    invert_similarity,
    similarity_procrustes,
    similarity_procrustes_batch,
)
from pseudo3d.geometry.rotations import geodesic_angle


@pytest.fixture
def face_points():
    """68 points spread like a face, in millimetres."""
    return np.random.default_rng(0).normal(scale=[40.0, 50.0, 20.0], size=(68, 3))


def known_similarity(seed):
    rng = np.random.default_rng(seed)
    return rng.uniform(0.5, 3.0), Rotation.random(random_state=seed).as_matrix(), rng.normal(scale=100.0, size=3)


def test_recovers_exact_similarity(face_points):
    scale, rotation, translation = known_similarity(1)
    target = apply_similarity(face_points, scale, rotation, translation)
    fitted_scale, fitted_rotation, fitted_translation = similarity_procrustes(face_points, target)
    assert isinstance(fitted_scale, float)
    assert fitted_scale == pytest.approx(scale, rel=1e-12)
    np.testing.assert_allclose(fitted_rotation, rotation, atol=1e-12)
    np.testing.assert_allclose(fitted_translation, translation, atol=1e-9)


def test_recovers_similarity_from_noisy_points(face_points):
    scale, rotation, translation = known_similarity(2)
    noise = np.random.default_rng(3).normal(scale=1.0, size=face_points.shape)  # ~1 mm on a ~100 mm face
    target = apply_similarity(face_points, scale, rotation, translation) + noise
    fitted_scale, fitted_rotation, fitted_translation = similarity_procrustes(face_points, target)
    assert fitted_scale == pytest.approx(scale, rel=0.01)
    assert geodesic_angle(fitted_rotation, rotation) < np.deg2rad(0.5)
    np.testing.assert_allclose(fitted_translation, translation, atol=1.0)
    residual = apply_similarity(face_points, fitted_scale, fitted_rotation, fitted_translation) - target
    truth_residual = apply_similarity(face_points, scale, rotation, translation) - target
    assert np.sum(residual**2) <= np.sum(truth_residual**2)  # least squares beats the truth on its own data


def test_mirrored_target_still_gives_a_proper_rotation(face_points):
    mirrored = face_points * np.array([-1.0, 1.0, 1.0])
    _, rotation, _ = similarity_procrustes(face_points, mirrored)
    assert np.linalg.det(rotation) == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-12)


def test_heavily_weighted_subset_dominates(face_points):
    first = known_similarity(4)
    second = known_similarity(5)
    target = apply_similarity(face_points, *second)
    target[:10] = apply_similarity(face_points[:10], *first)
    weights = np.ones(68)
    weights[:10] = 1e8
    scale, rotation, translation = similarity_procrustes(face_points, target, weights)
    assert scale == pytest.approx(first[0], rel=1e-4)
    assert geodesic_angle(rotation, first[1]) < 1e-4
    # Zero weights ignore points entirely: the fit is then exact on the subset.
    weights[10:] = 0.0
    scale, rotation, translation = similarity_procrustes(face_points, target, weights)
    assert scale == pytest.approx(first[0], rel=1e-12)
    np.testing.assert_allclose(rotation, first[1], atol=1e-12)


def test_only_weight_ratios_matter(face_points):
    noise = np.random.default_rng(7).normal(size=face_points.shape)
    target = apply_similarity(face_points, *known_similarity(6)) + noise
    weights = np.random.default_rng(8).uniform(0.1, 2.0, size=68)
    one = similarity_procrustes(face_points, target, weights)
    other = similarity_procrustes(face_points, target, 7.0 * weights)
    for a, b in zip(one, other):
        np.testing.assert_allclose(a, b, atol=1e-12)


def test_batch_equals_per_frame(face_points):
    rng = np.random.default_rng(9)
    targets = np.stack([apply_similarity(face_points, *known_similarity(s)) for s in range(10, 16)])
    targets += rng.normal(size=targets.shape)
    for weights in (None, rng.uniform(0.0, 1.0, size=68), rng.uniform(0.0, 1.0, size=(6, 68))):
        scales, rotations, translations = similarity_procrustes_batch(face_points, targets, weights)
        assert scales.shape == (6,) and rotations.shape == (6, 3, 3) and translations.shape == (6, 3)
        for frame in range(6):
            frame_weights = weights[frame] if weights is not None and weights.ndim == 2 else weights
            scale, rotation, translation = similarity_procrustes(face_points, targets[frame], frame_weights)
            assert scales[frame] == pytest.approx(scale, rel=1e-12)
            np.testing.assert_allclose(rotations[frame], rotation, atol=1e-12)
            np.testing.assert_allclose(translations[frame], translation, atol=1e-9)


def test_apply_and_invert_round_trip_single_and_batched(face_points):
    scale, rotation, translation = known_similarity(17)
    moved = apply_similarity(face_points, scale, rotation, translation)
    np.testing.assert_allclose(moved, face_points @ rotation.T * scale + translation)
    np.testing.assert_allclose(invert_similarity(moved, scale, rotation, translation), face_points, atol=1e-10)

    transforms = [known_similarity(s) for s in (18, 19, 20)]
    scales = np.array([s for s, _, _ in transforms])
    rotations = np.stack([r for _, r, _ in transforms])
    translations = np.stack([t for _, _, t in transforms])
    batch_moved = apply_similarity(face_points, scales, rotations, translations)
    assert batch_moved.shape == (3, 68, 3)
    np.testing.assert_allclose(batch_moved[1], apply_similarity(face_points, *transforms[1]))
    back = invert_similarity(batch_moved, scales, rotations, translations)
    np.testing.assert_allclose(back, np.broadcast_to(face_points, (3, 68, 3)), atol=1e-10)


def test_batch_aligns_every_frame_back_onto_the_template(face_points):
    targets = np.stack([apply_similarity(face_points, *known_similarity(s)) for s in range(21, 25)])
    scales, rotations, translations = similarity_procrustes_batch(face_points, targets)
    back = invert_similarity(targets, scales, rotations, translations)
    np.testing.assert_allclose(back, np.broadcast_to(face_points, targets.shape), atol=1e-9)


@pytest.mark.parametrize(
    ("source", "target", "weights", "message"),
    [
        (np.zeros((5, 3)) + np.arange(5)[:, None], np.zeros((6, 3)), None, "same shape"),
        (np.eye(3)[:2], np.eye(3)[:2], None, "at least 3 points"),
        (np.ones((4, 3)), np.ones((4, 3)), None, "not all coincide"),
        (np.random.default_rng(0).normal(size=(4, 3)), np.full((4, 3), np.nan), None, "target must be finite"),
        (np.random.default_rng(0).normal(size=(4, 3)), np.zeros((4, 3)), np.zeros(4), "all zero"),
        (np.random.default_rng(0).normal(size=(4, 3)), np.zeros((4, 3)), [1.0, 1.0, 0.0, 0.0], "at least 3 points"),
        (np.random.default_rng(0).normal(size=(4, 3)), np.zeros((4, 3)), [1.0, -1.0, 1.0, 1.0], ">= 0"),
        (np.random.default_rng(0).normal(size=(4, 3)), np.zeros((4, 3)), np.ones(5), r"weights must have shape \(4,\)"),
        (np.zeros((4, 2)), np.zeros((4, 2)), None, r"source must have shape \(N, 3\)"),
    ],
)
def test_invalid_input_raises_clear_value_error(source, target, weights, message):
    with pytest.raises(ValueError, match=message):
        similarity_procrustes(source, target, weights)


def test_batch_names_non_finite_frames(face_points):
    targets = np.stack([face_points] * 4)
    targets[2, 5, 1] = np.inf
    with pytest.raises(ValueError, match=r"targets must be finite.*frames \[2\]"):
        similarity_procrustes_batch(face_points, targets)
    with pytest.raises(ValueError, match=r"targets must have shape \(T, 68, 3\)"):
        similarity_procrustes_batch(face_points, np.stack([face_points[:10]] * 4))


def test_invert_rejects_zero_scale():
    with pytest.raises(ValueError, match="scale must be non-zero"):
        invert_similarity(np.zeros((2, 3)), 0.0, np.eye(3), np.zeros(3))
