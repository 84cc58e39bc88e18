"""Evaluation metrics on hand-computed examples, and their input checks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pseudo3d.training.metrics import (
    lip_audio_correlation, lip_max_errors, lip_vertex_error, lip_vertex_error_sqrt, mean_vertex_error,
    mediapipe_lip_opening, upper_face_dynamics_deviation, upper_face_motion_std)


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
