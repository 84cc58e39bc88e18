"""FlameModel against smplx's FLAME, and its landmarks, defaults and errors."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from pseudo3d.errors import AssetError
from pseudo3d.reconstruction.flame import FlameModel, FlameOutput
from pseudo3d.reconstruction.flame.landmarks import barycentric_points
from pseudo3d.testing.flame_assets import (
    STATIC_68, write_smplx_flame_folder, write_synthetic_landmark_embedding,
    write_synthetic_mediapipe_embedding)

smplx = pytest.importorskip("smplx")

B = 6


@pytest.fixture(scope="module")
def assets(tmp_path_factory) -> dict[str, Path]:
    folder = write_smplx_flame_folder(tmp_path_factory.mktemp("flame"))
    return {
        "folder": folder,
        "model": folder / "FLAME_NEUTRAL.pkl",
        "deca": write_synthetic_landmark_embedding(folder / "landmark_embedding.npy"),
        "mediapipe": write_synthetic_mediapipe_embedding(folder / "mediapipe_landmark_embedding.npz"),
    }


def random_inputs(n_shape: int, n_expression: int, seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)

    def uniform(width: int, limit: float) -> torch.Tensor:
        return (torch.rand(B, width, generator=generator) * 2 - 1) * limit

    return {
        "shape": 2 * torch.randn(B, n_shape, generator=generator),
        "expression": 2 * torch.randn(B, n_expression, generator=generator),
        "global_pose": uniform(3, 1.0),
        "neck_pose": uniform(3, 1.0),
        "jaw_pose": uniform(3, 0.6),
        "eye_pose": uniform(6, 0.4),
        "translation": uniform(3, 0.2),
    }


@pytest.mark.parametrize("n_shape, n_expression", [(100, 50), (300, 100), (7, 0), (0, 13)])
def test_vertices_joints_and_static_landmarks_match_smplx(assets, n_shape, n_expression):
    ours = FlameModel.from_file(assets["model"], n_shape=n_shape, n_expression=n_expression,
                                landmark_embedding=assets["deca"])
    reference = smplx.FLAME(model_path=str(assets["folder"]), num_betas=n_shape,
                            num_expression_coeffs=n_expression, batch_size=B, use_face_contour=False)
    inputs = random_inputs(n_shape, n_expression, seed=n_shape + n_expression)
    with torch.no_grad():
        expected = reference(betas=inputs["shape"], expression=inputs["expression"],
                             global_orient=inputs["global_pose"], neck_pose=inputs["neck_pose"],
                             jaw_pose=inputs["jaw_pose"], leye_pose=inputs["eye_pose"][:, :3],
                             reye_pose=inputs["eye_pose"][:, 3:], transl=inputs["translation"])
        out = ours(**inputs)
    assert isinstance(out, FlameOutput)
    assert out.vertices.shape == (B, ours.n_vertices, 3) and out.vertices.dtype == torch.float32
    assert (out.vertices - expected.vertices).abs().max() < 1e-5
    assert (out.joints - expected.joints[:, :5]).abs().max() < 1e-5
    # smplx appends its 51 static landmarks after the 5 joints; ours are iBUG 17–67
    assert (out.landmarks[:, 17:] - expected.joints[:, 5:5 + 51]).abs().max() < 1e-5
    # the poses really are large: the mouth opened and the head turned
    assert (out.vertices - ours.v_template - inputs["translation"][:, None]).abs().max() > 0.02


def test_defaults_are_the_template_and_batch_comes_from_any_input(assets):
    model = FlameModel.from_file(assets["model"])
    rest = model()
    assert rest.vertices.shape == (1, model.n_vertices, 3) and rest.landmarks is None
    assert torch.allclose(rest.vertices[0], model.v_template, atol=1e-7)
    moved = model(translation=torch.tensor([[0.0, 0.0, 1.0]] * 3))
    assert moved.vertices.shape[0] == 3
    assert torch.allclose(moved.vertices - rest.vertices, torch.tensor([0.0, 0.0, 1.0]), atol=1e-6)
    assert model.faces.dtype == torch.int64 and model.faces.shape[1] == 3
    assert model.landmark_kind is None and model.landmark_indices is None


def test_mediapipe_landmarks_are_the_embedded_vertices(assets):
    model = FlameModel.from_file(assets["model"], landmark_embedding=assets["mediapipe"])
    assert model.landmark_kind == "mediapipe"
    assert model.landmark_indices.dtype == torch.int64 and model.landmark_indices.shape == (105,)
    with torch.no_grad():
        out = model(**random_inputs(100, 50, seed=3))
    # the synthetic mesh's vertex i is MediaPipe landmark i, and each point sits on its vertex
    assert torch.allclose(out.landmarks, out.vertices[:, model.landmark_indices], atol=1e-6)
    assert set(model.asset_hashes) == {"flame_model", "landmark_embedding"}
    assert all(len(value) == 64 for value in model.asset_hashes.values())


def yaw(degrees: float) -> torch.Tensor:
    return torch.tensor([[0.0, math.radians(degrees), 0.0]])


def test_flame68_contour_follows_yaw_left_and_right(assets):
    model = FlameModel.from_file(assets["model"], landmark_embedding=assets["deca"])
    assert model.landmark_kind == "flame68"
    with torch.no_grad():
        out = model(global_pose=torch.cat([yaw(0), yaw(30), yaw(-30), yaw(20), yaw(80)]),
                    neck_pose=torch.cat([yaw(0), yaw(0), yaw(0), yaw(15), yaw(0)]))
        rest = model()
    assert out.landmarks.shape == (5, 68, 3)

    def row(n: int) -> torch.Tensor:
        return barycentric_points(out.vertices, model.faces, model.contour_faces[n], model.contour_bary[n])

    # DECA's bins: +30° → row 30, −30° → row 39 + 30, global 20° + neck 15° → row 35, beyond 39° → 39
    for sample, expected_row in enumerate([0, 30, 69, 35, 39]):
        assert torch.allclose(out.landmarks[sample, :17], row(expected_row)[sample], atol=1e-7)
    # in the rest frame the two turns give mirrored contours: the far side slides towards the midline
    left = barycentric_points(rest.vertices, model.faces, model.contour_faces[30], model.contour_bary[30])[0]
    right = barycentric_points(rest.vertices, model.faces, model.contour_faces[69], model.contour_bary[69])[0]
    straight = rest.landmarks[0, :17]
    assert torch.all(left[9:, 0] < straight[9:, 0] - 1e-4) and torch.allclose(left[:8], straight[:8])
    assert torch.all(right[:8, 0] > straight[:8, 0] + 1e-4) and torch.allclose(right[9:], straight[9:])
    # the static 51 are the STATIC_68 vertices of the synthetic mesh
    assert torch.allclose(out.landmarks[:, 17:], out.vertices[:, list(STATIC_68)], atol=1e-6)
    full = model.full_landmarks(out.vertices)
    assert torch.allclose(full[0], out.landmarks[0], atol=1e-7)


def test_gradients_are_finite_at_the_neutral_pose(assets):
    model = FlameModel.from_file(assets["model"], landmark_embedding=assets["mediapipe"])
    inputs = {name: torch.zeros(2, width, requires_grad=True)
              for name, width in [("shape", 100), ("expression", 50), ("global_pose", 3), ("jaw_pose", 3)]}
    model(**inputs).landmarks.square().sum().backward()
    for name, tensor in inputs.items():
        assert torch.isfinite(tensor.grad).all(), name
        assert tensor.grad.abs().sum() > 0, name


def test_autocast_does_not_lower_the_geometry_precision(assets):
    model = FlameModel.from_file(assets["model"], landmark_embedding=assets["mediapipe"])
    inputs = random_inputs(100, 50, seed=5)
    with torch.no_grad():
        plain = model(**inputs)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            autocast = model(**{name: value.bfloat16() for name, value in inputs.items()})
    assert autocast.vertices.dtype == torch.float32
    # only the inputs' rounding to bfloat16 remains (well under a millimetre)
    assert (autocast.vertices - plain.vertices).abs().max() < 5e-4


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu(assets):
    model = FlameModel.from_file(assets["model"], landmark_embedding=assets["deca"])
    inputs = random_inputs(100, 50, seed=9)
    with torch.no_grad():
        cpu = model(**inputs)
        cuda = model.to("cuda")(**{name: value.cuda() for name, value in inputs.items()})
    assert (cuda.vertices.cpu() - cpu.vertices).abs().max() < 1e-5
    assert (cuda.landmarks.cpu() - cpu.landmarks).abs().max() < 1e-5


def test_model_moves_to_float64(assets):
    model = FlameModel.from_file(assets["model"], n_shape=10, n_expression=10).to(torch.float64)
    out = model(shape=torch.ones(1, 10, dtype=torch.float64))
    assert out.vertices.dtype == torch.float64


def test_asking_for_more_components_than_the_file_holds_names_the_file(assets):
    with pytest.raises(AssetError, match=r"FLAME_NEUTRAL\.pkl holds 300 shape components; n_shape=301"):
        FlameModel.from_file(assets["model"], n_shape=301)
    with pytest.raises(AssetError, match=r"100 expression components; n_expression=101"):
        FlameModel.from_file(assets["model"], n_expression=101)
    with pytest.raises(ValueError, match="n_shape must be a non-negative int"):
        FlameModel.from_file(assets["model"], n_shape=-1)


def test_bad_inputs_are_value_errors_naming_the_input(assets):
    model = FlameModel.from_file(assets["model"], n_shape=10, n_expression=5)
    with pytest.raises(ValueError, match=r"expression must have shape \(B, 5\), got \(2, 6\)"):
        model(expression=torch.zeros(2, 6))
    with pytest.raises(ValueError, match=r"eye_pose must have shape \(B, 6\)"):
        model(eye_pose=torch.zeros(2, 3))
    with pytest.raises(ValueError, match="disagree on the batch size: shape 2, jaw_pose 3"):
        model(shape=torch.zeros(2, 10), jaw_pose=torch.zeros(3, 3))


def test_embedding_for_another_mesh_is_refused_naming_both_files(assets, tmp_path):
    wrong = tmp_path / "mediapipe_landmark_embedding.npz"
    np.savez(wrong, lmk_face_idx=np.array([0, 50_000]), lmk_b_coords=np.full((2, 3), 1 / 3),
             landmark_indices=np.array([1, 2]))
    with pytest.raises(AssetError, match=r"refers to face 50000.*FLAME_NEUTRAL\.pkl has only \d+ faces"):
        FlameModel.from_file(assets["model"], landmark_embedding=wrong)
