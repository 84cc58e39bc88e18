import numpy as np
import pytest

from pseudo3d.geometry.rotations import axis_angle_to_matrix, euler_yxz_to_matrix, matrix_to_euler_yxz
from pseudo3d.reconstruction.mediapipe_head import HEAD_TO_CAMERA, MediaPipeHead
from pseudo3d.reconstruction.template import OUTER_EYE_CORNERS, mediapipe_template
from pseudo3d.schemas.records import Clip, Source


@pytest.fixture(scope="module")
def backend():
    return MediaPipeHead()


def _clip(landmarks):
    n = landmarks.shape[0]
    return Clip(source=Source("/x.mp4", "x.mp4", "x-0"), clip_index=0, start_frame=0, fps=25.0,
                image_size=(640, 480), landmarks=landmarks.astype(np.float32),
                confidence=np.ones(n, np.float32), interpolated=np.zeros(n, bool),
                crop_transforms=np.zeros((n, 2, 3), np.float32), audio=np.zeros(640 * n, np.float32),
                sample_rate=16000)


def test_template_is_symmetric_and_upright():
    template = mediapipe_template()
    vertices = template.vertices
    assert vertices.shape == (478, 3)
    np.testing.assert_allclose(vertices[template.mirror] * [-1, 1, 1], vertices, atol=1e-9)
    left, right = OUTER_EYE_CORNERS[1], OUTER_EYE_CORNERS[0]
    assert vertices[left, 0] > vertices[right, 0]  # +x towards the subject's left
    assert vertices[10, 1] > vertices[152, 1]  # forehead above chin
    assert vertices[1, 2] > vertices[10, 2]  # nose tip towards the viewer
    rigid = template.rigid_weights > 0
    assert 100 < rigid.sum() < 400 and not rigid[[13, 14, 152]].any()  # lips and chin move


def test_recovers_known_pose_and_expression(backend):
    rng = np.random.default_rng(1)
    template = backend.template.vertices
    angles = np.stack([rng.uniform(-0.5, 0.5, 8), rng.uniform(-0.3, 0.3, 8), rng.uniform(-0.3, 0.3, 8)], 1)
    rotations = euler_yxz_to_matrix(angles)
    scale = rng.uniform(5, 20, 8)
    translation = rng.uniform(100, 400, (8, 3))
    expression = np.zeros_like(template)
    expression[14] = [0, -0.8, 0]  # lower lip drops 8 mm: must not change the pose
    landmarks = (scale[:, None, None] * np.einsum("tij,nj->tni", rotations @ HEAD_TO_CAMERA, template + expression)
                 + translation[:, None, :])
    out = backend.reconstruct_clip(_clip(landmarks))
    np.testing.assert_allclose(matrix_to_euler_yxz(axis_angle_to_matrix(out["head_rotation"])), angles, atol=1e-4)
    np.testing.assert_allclose(out["head_scale"], scale, rtol=1e-4)
    np.testing.assert_allclose(out["head_translation"], translation, rtol=1e-4)
    np.testing.assert_allclose(out["mesh"], np.broadcast_to(template + expression, out["mesh"].shape), atol=1e-3)


def test_yaw_sign_convention(backend):
    """Positive yaw turns the nose towards image left (the subject's right)."""
    template = backend.template.vertices
    rotation = euler_yxz_to_matrix(np.array([[0.3, 0.0, 0.0]]))[0]
    landmarks = 10 * (rotation @ HEAD_TO_CAMERA @ template.T).T + 300
    nose_x = landmarks[1, 0] - landmarks[:, 0].mean()
    assert nose_x < 0
    out = backend.reconstruct_clip(_clip(landmarks[None]))
    assert matrix_to_euler_yxz(axis_angle_to_matrix(out["head_rotation"]))[0, 0] == pytest.approx(0.3, abs=1e-5)
