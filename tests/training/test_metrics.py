"""Evaluation metrics on hand-computed examples, and their input checks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pseudo3d.training.metrics import (
    lip_audio_correlation, lip_max_errors, lip_vertex_error, lip_vertex_error_sqrt, mean_vertex_error,
    mediapipe_lip_opening, pooled_vertex_metrics, upper_face_dynamics_deviation, upper_face_motion_std)


def _lve_example() -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Two frames, three vertices; vertices 0 and 2 are the lips, vertex 1 is not.

    Errors pred − gt:   frame 0: v0 (1, 0, 0)  v1 (10, 0, 0)  v2 (0, 2, 0)
                        frame 1: v0 (1, 2, 2)  v1 (10, 0, 0)  v2 (0, 0, 0)
    Squared lip errors: frame 0: 1, 4  → max 4  (distance 2)
                        frame 1: 9, 0  → max 9  (distance 3)
    LVE = (4 + 9) / 2 = 6.5; sqrt variant = (2 + 3) / 2 = 2.5. Vertex 1 (error 100) is ignored.
    """
    gt = np.arange(18, dtype=np.float64).reshape(2, 3, 3)
    error = np.array([[[1, 0, 0], [10, 0, 0], [0, 2, 0]],
                      [[1, 2, 2], [10, 0, 0], [0, 0, 0]]], np.float64)
    return gt + error, gt, [0, 2]


def test_lip_vertex_error_hand_computed():
    pred, gt, lips = _lve_example()
    assert lip_max_errors(pred, gt, lips).tolist() == [4.0, 9.0]
    assert lip_vertex_error(pred, gt, lips) == pytest.approx(6.5)
    assert lip_vertex_error_sqrt(pred, gt, lips) == pytest.approx(2.5)
    assert lip_vertex_error(pred, gt, np.array([1])) == pytest.approx(100.0)


def test_upper_face_dynamics_deviation_hand_computed():
    """Template v0 = (1, 1, 1), v1 = v2 = 0; upper face = v0, v1 (v2 is not).

    Motion m_t(v) = ‖x_t(v) − template(v)‖² (squared):
      gt:   v0 offsets (0,0,0), (2,0,0) → m = 0, 4 → std 2;   v1 offsets (1,0,0) twice → m = 1, 1 → std 0
      pred: v0 offsets (1,0,0) twice   → m = 1, 1 → std 0;   v1 offsets (0,0,3), 0   → m = 9, 0 → std 4.5
    gt side = (2 + 0) / 2 = 1; pred side = (0 + 4.5) / 2 = 2.25; FDD = 1 − 2.25 = −1.25.
    (With unsquared norms the gt side would be 0.5, so this also pins the square.)
    """
    template = np.array([[1, 1, 1], [0, 0, 0], [0, 0, 0]], np.float64)
    gt_offsets = np.array([[[0, 0, 0], [1, 0, 0], [5, 5, 5]],
                           [[2, 0, 0], [1, 0, 0], [-5, 0, 0]]], np.float64)
    pred_offsets = np.array([[[1, 0, 0], [0, 0, 3], [0, 0, 0]],
                             [[1, 0, 0], [0, 0, 0], [9, 9, 9]]], np.float64)
    gt, pred = template + gt_offsets, template + pred_offsets
    assert upper_face_motion_std(gt, [0, 1], template) == pytest.approx(1.0)
    assert upper_face_motion_std(pred, [0, 1], template) == pytest.approx(2.25)
    assert upper_face_dynamics_deviation(pred, gt, [0, 1], template) == pytest.approx(-1.25)
    assert upper_face_dynamics_deviation(gt, gt, [0, 1], template) == 0.0


def test_mean_vertex_error_is_unsquared_l2():
    gt = np.zeros((1, 2, 3))
    pred = np.array([[[3.0, 4.0, 0.0], [0.0, 0.0, 0.0]]])
    assert mean_vertex_error(pred, gt) == pytest.approx(2.5)  # (5 + 0) / 2


def test_mismatched_shapes_name_both():
    with pytest.raises(ValueError, match=r"pred \(2, 3, 3\).*gt \(3, 3, 3\)"):
        lip_vertex_error(np.zeros((2, 3, 3)), np.zeros((3, 3, 3)), [0])
    with pytest.raises(ValueError, match=r"\(2, 5, 3\).*\(2, 4, 3\)"):
        mean_vertex_error(np.zeros((2, 5, 3)), np.zeros((2, 4, 3)))
    with pytest.raises(ValueError, match=r"\(T, V, 3\)"):
        lip_vertex_error(np.zeros((2, 3)), np.zeros((2, 3)), [0])


def test_region_checks():
    pred, gt, _ = _lve_example()
    with pytest.raises(ValueError, match="lip_indices is empty"):
        lip_vertex_error(pred, gt, [])
    with pytest.raises(ValueError, match="upper_indices is empty"):
        upper_face_dynamics_deviation(pred, gt, np.array([], np.int64), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="outside the mesh's 0..2"):
        lip_vertex_error(pred, gt, [0, 3])
    with pytest.raises(ValueError, match="integer"):
        lip_vertex_error(pred, gt, [0.0, 1.0])
    with pytest.raises(ValueError, match=r"template must have shape \(V, 3\) = \(3, 3\)"):
        upper_face_dynamics_deviation(pred, gt, [0], np.zeros((4, 3)))


def test_lip_opening_and_audio_correlation():
    mesh = np.zeros((3, 478, 3))
    mesh[:, 13, 1] = [1.0, 1.0, 2.0]
    mesh[:, 14, 1] = [-1.0, 0.0, -2.0]
    assert mediapipe_lip_opening(mesh).tolist() == [2.0, 1.0, 4.0]
    with pytest.raises(ValueError, match=r"\(T, 478, 3\)"):
        mediapipe_lip_opening(np.zeros((3, 468, 3)))

    opening = np.array([1.0, 2.0, 3.0, 4.0])
    assert lip_audio_correlation(opening, 2 * opening + 1) == pytest.approx(1.0)
    assert lip_audio_correlation(opening, -opening) == pytest.approx(-1.0)
    # Hand-computed: x = (1, 2, 3, 4), y = (1, 3, 2, 4): centred dot 4, norms² 5 and 5 → r = 0.8.
    assert lip_audio_correlation(opening, np.array([1.0, 3.0, 2.0, 4.0])) == pytest.approx(0.8)
    assert math.isnan(lip_audio_correlation(opening, np.full(4, 0.1)))
    with pytest.raises(ValueError, match=r"lip_opening \(4,\) and audio_envelope \(5,\)"):
        lip_audio_correlation(opening, np.zeros(5))


def test_a_test_set_pools_lve_and_mve_over_frames_and_averages_fdd_over_sequences():
    """Sequence A is :func:`_lve_example` (lip maxima 4 and 9; distances 1, 10, 2 and 3, 10, 0);
    sequence B is one frame whose only error is (1, 0, 0) on lip vertex 0 (maximum 1; distances
    1, 0, 0). Pooled over the 3 frames: LVE (4 + 9 + 1) / 3, not the mean of the sequences' 6.5
    and 1; its square-root variant (2 + 3 + 1) / 3 = 2; MVE 27 / 9 = 3.
    FDD with template 0 and upper face = vertex 1: in A the truth's squared norms are 50 and 509
    (std 229.5), the prediction's 210 and 849 (std 319.5): −90; B has one frame (std 0): 0;
    averaged over the sequences: −45."""
    pred_a, gt_a, lips = _lve_example()
    gt_b = np.zeros((1, 3, 3))
    pred_b = gt_b + np.array([[[1, 0, 0], [0, 0, 0], [0, 0, 0]]], np.float64)
    template = np.zeros((3, 3))
    result = pooled_vertex_metrics([(pred_a, gt_a, template), (pred_b, gt_b, template)], lip_indices=lips,
                                   upper_indices=[1])
    assert result == pytest.approx({"sequences": 2, "frames": 3, "lve": 14 / 3, "lve_sqrt": 2.0, "mve": 3.0,
                                    "fdd": -45.0})
    assert set(pooled_vertex_metrics([(pred_b, gt_b, template)])) == {"sequences", "frames", "mve"}
    with pytest.raises(ValueError, match="no test sequences"):
        pooled_vertex_metrics([])


def _codetalker_reference(sequences, mouth_map, upper_map):
    """LVE and FDD as CodeTalker's ``main/cal_metric.py`` computes them (its loop, written out
    with numpy over lists of sequences), and MVE as FaceDiffuser pools it."""
    vertices_gt_all, vertices_pred_all, motion_std_difference = [], [], []
    for vertices_pred, vertices_gt, template in sequences:
        motion_pred = vertices_pred - template
        motion_gt = vertices_gt - template
        vertices_gt_all.extend(list(vertices_gt))
        vertices_pred_all.extend(list(vertices_pred))
        l2_dis_upper = np.array([np.square(motion_gt[:, v, :]) for v in upper_map])
        l2_dis_upper = np.sum(np.transpose(l2_dis_upper, (1, 0, 2)), axis=2)
        gt_motion_std = np.mean(np.std(l2_dis_upper, axis=0))
        l2_dis_upper = np.array([np.square(motion_pred[:, v, :]) for v in upper_map])
        l2_dis_upper = np.sum(np.transpose(l2_dis_upper, (1, 0, 2)), axis=2)
        pred_motion_std = np.mean(np.std(l2_dis_upper, axis=0))
        motion_std_difference.append(gt_motion_std - pred_motion_std)
    vertices_gt_all, vertices_pred_all = np.array(vertices_gt_all), np.array(vertices_pred_all)
    l2_dis_mouth = np.array([np.square(vertices_gt_all[:, v, :] - vertices_pred_all[:, v, :]) for v in mouth_map])
    l2_dis_mouth_max = np.max(np.sum(np.transpose(l2_dis_mouth, (1, 0, 2)), axis=2), axis=1)
    mve = np.mean(np.linalg.norm(vertices_gt_all - vertices_pred_all, axis=2))
    return {"lve": np.mean(l2_dis_mouth_max), "fdd": sum(motion_std_difference) / len(motion_std_difference),
            "mve": mve}


def test_pooled_metrics_equal_the_published_evaluation_on_random_data():
    rng = np.random.default_rng(3)
    n_vertices = 40
    lips, upper = sorted(rng.choice(n_vertices, 8, replace=False)), sorted(rng.choice(n_vertices, 12, replace=False))
    sequences = []
    for length in (5, 17, 30, 1):
        template = rng.normal(size=(n_vertices, 3))
        gt = template + rng.normal(scale=0.1, size=(length, n_vertices, 3))
        sequences.append((gt + rng.normal(scale=0.05, size=gt.shape), gt, template))
    expected = _codetalker_reference(sequences, lips, upper)
    result = pooled_vertex_metrics(sequences, lip_indices=lips, upper_indices=upper)
    assert {name: result[name] for name in expected} == pytest.approx(expected, rel=1e-12)
    assert result["frames"] == 53 and result["sequences"] == 4
