"""The pure tensor functions of the FLAME layer."""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from pseudo3d.reconstruction.flame.landmarks import barycentric_points, contour_bins, yaw_degrees
from pseudo3d.reconstruction.flame.lbs import (
    axis_angle_to_matrix, pose_features, rigid_transforms, skin_vertices)


def test_axis_angle_matches_scipy_including_tiny_and_zero_angles():
    rng = np.random.default_rng(0)
    rotvecs = np.concatenate([rng.normal(size=(50, 3)), rng.normal(size=(5, 3)) * 1e-7, np.zeros((1, 3)),
                              np.array([[np.pi, 0, 0], [0, 0, -3.0]])])
    ours = axis_angle_to_matrix(torch.tensor(rotvecs, dtype=torch.float64)).numpy()
    np.testing.assert_allclose(ours, Rotation.from_rotvec(rotvecs).as_matrix(), atol=1e-12)
    # batched leading dimensions are kept
    assert axis_angle_to_matrix(torch.zeros(2, 5, 3)).shape == (2, 5, 3, 3)


def test_axis_angle_gradient_at_zero_is_the_cross_product_matrix():
    rotvec = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    jacobian = torch.autograd.functional.jacobian(axis_angle_to_matrix, rotvec.detach())
    assert torch.isfinite(jacobian).all()
    # dR/dr_x at 0 is [e_x]×: (2, 1) entry +1, (1, 2) entry −1
    assert jacobian[2, 1, 0] == 1.0 and jacobian[1, 2, 0] == -1.0


def test_pose_features_vanish_at_rest_and_skip_the_root():
    rotations = torch.eye(3).expand(2, 5, 3, 3).clone()
    assert pose_features(rotations).shape == (2, 36) and pose_features(rotations).abs().max() == 0
    rotations[:, 0] = axis_angle_to_matrix(torch.tensor([0.0, 1.0, 0.0]))
    assert pose_features(rotations).abs().max() == 0


def test_root_rotation_turns_everything_rigidly_about_the_root():
    parents = (-1, 0, 1, 1, 1)
    joints = torch.randn(1, 5, 3, dtype=torch.float64)
    rotations = torch.eye(3, dtype=torch.float64).expand(1, 5, 3, 3).clone()
    turn = axis_angle_to_matrix(torch.tensor([0.2, -0.4, 0.1], dtype=torch.float64))
    rotations[:, 0] = turn
    posed, transforms = rigid_transforms(rotations, joints, parents)
    expected = (joints - joints[:, :1]) @ turn.T + joints[:, :1]
    torch.testing.assert_close(posed, expected)
    vertices = torch.randn(1, 7, 3, dtype=torch.float64)
    weights = torch.softmax(torch.randn(7, 5, dtype=torch.float64), dim=1)
    torch.testing.assert_close(skin_vertices(vertices, weights, transforms),
                               (vertices - joints[:, :1]) @ turn.T + joints[:, :1])


def test_child_rotation_moves_only_its_subtree():
    parents = (-1, 0, 1, 1, 1)
    joints = torch.randn(1, 5, 3)
    rotations = torch.eye(3).expand(1, 5, 3, 3).clone()
    rotations[:, 2] = axis_angle_to_matrix(torch.tensor([0.5, 0.0, 0.0]))  # jaw: a leaf
    posed, transforms = rigid_transforms(rotations, joints, parents)
    torch.testing.assert_close(posed, joints)  # a joint turning about itself stays put
    point = joints[:, 2] + torch.tensor([[0.0, 0.0, 1.0]])
    moved = transforms[:, 2, :3, :3] @ point[0] + transforms[:, 2, :3, 3]
    torch.testing.assert_close(moved, joints[:, 2] + torch.tensor([[0.0, -math.sin(0.5), math.cos(0.5)]]))


def test_yaw_bins_follow_decas_convention():
    degrees = torch.tensor([0.0, 10.0, 39.0, 50.0, -1.0, -10.0, -39.0, -60.0, 10.4, -10.6])
    rotations = axis_angle_to_matrix(torch.stack([torch.zeros(10), torch.deg2rad(degrees), torch.zeros(10)], 1))
    torch.testing.assert_close(yaw_degrees(rotations), degrees.clamp(-90, 90), atol=1e-4, rtol=0)
    assert contour_bins(rotations).tolist() == [0, 10, 39, 39, 40, 49, 78, 78, 10, 50]


def test_barycentric_points_per_sample_faces():
    vertices = torch.arange(2 * 4 * 3, dtype=torch.float32).view(2, 4, 3)
    faces = torch.tensor([[0, 1, 2], [1, 2, 3]])
    bary = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.5, 0.5]])
    shared = barycentric_points(vertices, faces, torch.tensor([1, 0]), bary)
    torch.testing.assert_close(shared[:, 0], vertices[:, 1])
    torch.testing.assert_close(shared[:, 1], 0.5 * (vertices[:, 1] + vertices[:, 2]))
    per_sample = barycentric_points(vertices, faces, torch.tensor([[0, 0], [1, 1]]), bary.expand(2, 2, 3))
    torch.testing.assert_close(per_sample[1, 0], vertices[1, 1])
    torch.testing.assert_close(per_sample[0, 0], vertices[0, 0])
