"""The synthetic FLAME assets: real files' layout, a plausible rig, determinism."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import scipy.sparse
import torch

from pseudo3d.reconstruction.assets import load_landmark_embedding
from pseudo3d.files import file_sha256
from pseudo3d.reconstruction.flame import FlameModel
from pseudo3d.reconstruction.template import mediapipe_template
from pseudo3d.testing.flame_assets import (
    LEFT_IRIS, MOUTH_CORNERS, RIGHT_IRIS, STATIC_68, synthetic_head, write_synthetic_flame_model,
    write_synthetic_landmark_embedding, write_synthetic_mediapipe_embedding)

UPPER_LIP, LOWER_LIP, NOSE_TIP, CHIN, BROWS = 13, 14, 4, 152, (105, 334)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return write_synthetic_flame_model(tmp_path_factory.mktemp("synthetic") / "generic_model.pkl")


@pytest.fixture(scope="module")
def model(model_path) -> FlameModel:
    return FlameModel.from_file(model_path, n_shape=300, n_expression=100)


def test_file_has_the_real_layout(model_path):
    with open(model_path, "rb") as handle:
        content = pickle.load(handle)  # our own file: trusted
    assert set(content) == {"v_template", "f", "shapedirs", "posedirs", "J_regressor", "weights",
                            "kintree_table", "J", "bs_style", "bs_type"}
    assert content["shapedirs"].shape == (478, 3, 400) and content["posedirs"].shape == (478, 3, 36)
    assert isinstance(content["J_regressor"], scipy.sparse.csc_matrix) and content["J_regressor"].shape == (5, 478)
    assert content["kintree_table"].tolist() == [[4294967295, 0, 1, 1, 1], [0, 1, 2, 3, 4]]
    assert content["weights"].shape == (478, 5) and content["J"].shape == (5, 3)
    # vertex i is MediaPipe landmark i, in metres
    np.testing.assert_allclose(content["v_template"], mediapipe_template().vertices / 100)
    assert set(np.unique(content["f"])) == set(range(478))


def test_deterministic_for_a_seed(tmp_path):
    first = write_synthetic_flame_model(tmp_path / "a.pkl", seed=3)
    second = write_synthetic_flame_model(tmp_path / "b.pkl", seed=3)
    other = write_synthetic_flame_model(tmp_path / "c.pkl", seed=4)
    assert file_sha256(first) == file_sha256(second) != file_sha256(other)
    embedding = [write_synthetic_landmark_embedding(tmp_path / f"{n}.npy", torch_tensors=False) for n in "de"]
    assert file_sha256(embedding[0]) == file_sha256(embedding[1])


def test_rig_joints_and_weights(model):
    head = synthetic_head(0)
    joints = head.joints
    np.testing.assert_allclose(joints[3], head.vertices[list(LEFT_IRIS)].mean(axis=0), atol=1e-12)
    np.testing.assert_allclose(joints[4], head.vertices[list(RIGHT_IRIS)].mean(axis=0), atol=1e-12)
    assert joints[3, 0] > 0 > joints[4, 0]  # left eye on +x
    corners = head.vertices[list(MOUTH_CORNERS)]
    assert joints[2, 1] == pytest.approx(corners[:, 1].mean()) and joints[2, 2] < corners[:, 2].mean() - 0.04
    assert joints[1, 1] < head.vertices[CHIN, 1] and joints[1, 2] < head.vertices[CHIN, 2] - 0.05
    np.testing.assert_allclose(head.J_regressor @ head.vertices, joints, atol=1e-12)
    weights = head.weights
    np.testing.assert_allclose(weights.sum(axis=1), 1.0)
    assert weights[LOWER_LIP, 2] == 1.0 and weights[CHIN, 2] == 1.0
    assert weights[UPPER_LIP, 1] == 1.0 and weights[NOSE_TIP, 1] == 1.0
    assert np.all(weights[list(LEFT_IRIS), 3] == 1.0) and np.all(weights[list(RIGHT_IRIS), 4] == 1.0)
    assert np.any((weights[:, 2] > 0.1) & (weights[:, 2] < 0.9))  # a smooth blend, not a cut


def test_jaw_opens_the_mouth_and_eyes_turn_the_irises(model):
    with torch.no_grad():
        rest = model().vertices[0]
        opened = model(jaw_pose=torch.tensor([[0.3, 0.0, 0.0]])).vertices[0]
        looking = model(eye_pose=torch.tensor([[0.3, 0.3, 0.0, 0.0, 0.0, 0.0]])).vertices[0]
    assert opened[LOWER_LIP, 1] < rest[LOWER_LIP, 1] - 0.005
    assert opened[CHIN, 1] < rest[CHIN, 1] - 0.005
    assert torch.allclose(opened[[UPPER_LIP, NOSE_TIP]], rest[[UPPER_LIP, NOSE_TIP]], atol=1e-3)
    moved = (looking - rest).norm(dim=1)  # the left eye turns; elsewhere only the small pose correctives act
    assert moved[list(LEFT_IRIS)].mean() > 1e-3
    assert moved[list(RIGHT_IRIS)].max() < moved[list(LEFT_IRIS)].mean() / 3


def test_bases_do_what_their_names_say(model):
    def with_expression(index: int) -> torch.Tensor:
        code = torch.zeros(1, 100)
        code[0, index] = 1.0
        with torch.no_grad():
            return model(expression=code).vertices[0]

    def with_shape(index: int) -> torch.Tensor:
        code = torch.zeros(1, 300)
        code[0, index] = 1.0
        with torch.no_grad():
            return model(shape=code).vertices[0]

    rest = model.v_template
    left, right = MOUTH_CORNERS[1], MOUTH_CORNERS[0]

    def mouth_width(vertices):
        return vertices[left, 0] - vertices[right, 0]

    assert mouth_width(with_expression(0)) > mouth_width(rest) + 0.005           # mouth stretch
    assert with_expression(1)[UPPER_LIP, 2] > rest[UPPER_LIP, 2] + 0.002         # lip rounding pushes forward
    assert with_expression(2)[left, 1] > rest[left, 1] + 0.002                   # smile lifts the corners
    assert all(with_expression(3)[b, 1] > rest[b, 1] + 0.002 for b in BROWS)     # brow raise
    assert with_expression(3)[CHIN].sub(rest[CHIN]).norm() < 1e-4                 # ... and only the brows
    wide = with_shape(0)
    assert wide[454, 0] - wide[234, 0] > rest[454, 0] - rest[234, 0] + 0.005     # face width
    assert with_shape(2)[NOSE_TIP, 2] > rest[NOSE_TIP, 2] + 0.002                 # nose
    magnitudes = model.shapedirs.norm(dim=1).amax(dim=0)
    assert torch.all(magnitudes > 1e-5) and torch.all(magnitudes < 0.01)         # metres per unit
    assert model.posedirs.abs().max() < 1e-3


def test_landmark_embeddings_sit_on_their_vertices(tmp_path):
    head = synthetic_head(0)
    deca = load_landmark_embedding(write_synthetic_landmark_embedding(tmp_path / "landmark_embedding.npy"))
    static = np.einsum("lk,lkc->lc", deca.static_bary, head.vertices[head.faces[deca.static_faces]])
    np.testing.assert_allclose(static, head.vertices[list(STATIC_68)], atol=1e-12)
    # iBUG layout: right eye (36–41) on −x, left eye (42–47) on +x, nose tip on the midline
    assert np.all(static[36 - 17:42 - 17, 0] < 0) and np.all(static[42 - 17:48 - 17, 0] > 0)
    contour = np.einsum("lk,lkc->lc", deca.full_bary[:17], head.vertices[head.faces[deca.full_faces[:17]]])
    assert contour[0, 0] < 0 < contour[16, 0] and np.argmin(contour[:, 1]) == 8
    assert len(np.unique(deca.contour_bary.round(6).reshape(79, -1), axis=0)) == 79  # every bin differs
    mediapipe = load_landmark_embedding(write_synthetic_mediapipe_embedding(tmp_path / "m.npz"))
    points = np.einsum("lk,lkc->lc", mediapipe.bary, head.vertices[head.faces[mediapipe.faces]])
    np.testing.assert_allclose(points, head.vertices[mediapipe.landmark_indices], atol=1e-12)
    assert len(set(mediapipe.landmark_indices.tolist())) == 105
