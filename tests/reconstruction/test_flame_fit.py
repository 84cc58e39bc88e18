"""flame-fit: the landmark-restricted FLAME and recovery of known parameters."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from pseudo3d.config import BuildConfig  # noqa: E402
from pseudo3d.reconstruction.camera import crop_to_image, project_to_crop  # noqa: E402
from pseudo3d.reconstruction.fitting import LandmarkFlame  # noqa: E402
from pseudo3d.reconstruction.flame import FlameModel  # noqa: E402
from pseudo3d.reconstruction.flame_fit import FlameFitBackend  # noqa: E402
from pseudo3d.schemas.records import Clip, Source  # noqa: E402
from pseudo3d.testing.flame_assets import write_synthetic_flame_model, write_synthetic_mediapipe_embedding  # noqa: E402


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    folder = tmp_path_factory.mktemp("flame")
    return (write_synthetic_flame_model(folder / "generic_model.pkl"),
            write_synthetic_mediapipe_embedding(folder / "mediapipe_landmark_embedding.npz"))


def _smooth_series(rng, frames, amplitude, count):
    t = np.arange(frames)[:, None]
    phases = rng.uniform(0, 2 * np.pi, (3, count))
    freqs = rng.uniform(0.02, 0.12, (3, count))
    series = sum(np.sin(2 * np.pi * freqs[k] * t + phases[k]) for k in range(3)) / 3
    return amplitude * series


def test_landmark_subset_equals_full_model(assets):
    model = FlameModel.from_file(assets[0], landmark_embedding=assets[1])
    subset = LandmarkFlame(model)
    generator = torch.Generator().manual_seed(0)
    shape, expression = torch.randn(4, 100, generator=generator), torch.randn(4, 50, generator=generator)
    pose = 0.3 * torch.randn(4, 5, 3, generator=generator)
    full = model(shape=shape, expression=expression, global_pose=pose[:, 0], neck_pose=pose[:, 1],
                 jaw_pose=pose[:, 2], eye_pose=pose[:, 3:].flatten(1))
    restricted = subset(torch.cat([shape, expression], 1), pose)
    torch.testing.assert_close(restricted, full.landmarks, atol=1e-6, rtol=0)
    assert subset.v_template.shape[0] < model.n_vertices + 5


def _clip_from_parameters(model, rng, frames, n_active=6):
    """A clip whose landmarks come from known FLAME parameters (+ 0.5 px noise): (clip, expression,
    jaw, camera)."""
    shape = np.zeros((1, 100), np.float32)
    shape[0, :10] = rng.normal(0, 1, 10)
    expression = np.zeros((frames, 50), np.float32)
    expression[:, :n_active] = _smooth_series(rng, frames, 1.5, n_active)
    jaw = np.zeros((frames, 3), np.float32)
    jaw[:, 0] = 0.12 + _smooth_series(rng, frames, 0.1, 1)[:, 0]
    global_pose = _smooth_series(rng, frames, 0.15, 3).astype(np.float32)
    camera = np.stack([9 + _smooth_series(rng, frames, 0.4, 1)[:, 0], *(_smooth_series(rng, frames, 0.01, 2).T)], 1)
    with torch.no_grad():
        out = model(shape=torch.tensor(shape).expand(frames, -1), expression=torch.tensor(expression),
                    jaw_pose=torch.tensor(jaw), global_pose=torch.tensor(global_pose))
        vertices = out.vertices  # synthetic model: vertex i is MediaPipe landmark i
        crop = project_to_crop(vertices, torch.tensor(camera, dtype=torch.float32))
        # A crop of 300 image pixels starting at (170, 90): image = crop / factor + offset.
        factor = 223 / 300
        transforms = torch.tensor([[[factor, 0, -170 * factor], [0, factor, -90 * factor]]] * frames, dtype=torch.float32)
        image_xy = crop_to_image(crop, transforms)
        depth = -vertices[..., 2] * torch.tensor(camera[:, :1], dtype=torch.float32) * 112 / factor
    landmarks = np.concatenate([image_xy.numpy(), depth.numpy()[..., None] + 500], axis=2)
    landmarks[..., :2] += rng.normal(0, 0.5, landmarks[..., :2].shape)
    landmarks[..., 2] += rng.normal(0, 1.0, landmarks[..., 2].shape)
    clip = Clip(source=Source("/s.mp4", "s.mp4", "s-0"), clip_index=0, start_frame=0, fps=25.0,
                image_size=(640, 480), landmarks=landmarks.astype(np.float32),
                confidence=np.ones(frames, np.float32), interpolated=np.zeros(frames, bool),
                crop_transforms=transforms.numpy(), audio=np.zeros(frames * 640, np.float32), sample_rate=16000)
    return clip, expression, jaw, camera


def _backend(assets, **fit):
    return FlameFitBackend(BuildConfig().with_overrides(backend="flame-fit", reconstruct={
        "flame_model": str(assets[0]), "landmark_embedding": str(assets[1]), "device": "cpu", "fit": fit}))


def test_fit_recovers_known_expression_and_jaw(assets):
    """Landmarks made from known FLAME parameters (+ 0.5 px noise) → flame-fit → the parameters."""
    frames, n_active = 100, 6  # the synthetic basis's first six are the strong, face-like ones
    model = FlameModel.from_file(assets[0], landmark_embedding=assets[1])
    clip, expression, jaw, camera = _clip_from_parameters(model, np.random.default_rng(3), frames, n_active)
    result = _backend(assets).reconstruct_clip(clip)

    r_expression = [np.corrcoef(result["flame_expression"][:, k], expression[:, k])[0, 1] for k in range(n_active)]
    r_jaw = np.corrcoef(result["flame_jaw_pose"][:, 0], jaw[:, 0])[0, 1]
    error = result["reprojection_error"]
    print(f"expression r per component {np.round(r_expression, 3).tolist()}, jaw r {r_jaw:.3f}, "
          f"reprojection error mean {error.mean():.3f} px (noise 0.5 px per axis)")
    assert min(r_expression) >= 0.9 and r_jaw >= 0.9
    assert error.mean() < 1.0
    assert result["flame_shape_clip"].shape == (100,) and result["flame_camera"].shape == (frames, 3)
    np.testing.assert_allclose(result["flame_camera"][:, 0], camera[:, 0], rtol=0.05)


def test_clips_fitted_together_get_the_fit_each_gets_alone(assets):
    """One batched optimisation over several clips (the GPU's way) equals fitting each alone, within
    float32 rounding: a clip's parameters reach only its own loss term."""
    model = FlameModel.from_file(assets[0], landmark_embedding=assets[1])
    rng = np.random.default_rng(5)
    clips = [_clip_from_parameters(model, rng, frames)[0] for frames in (30, 2, 12)]
    backend = _backend(assets, iterations=150, rigid_iterations=20)  # the equality holds at any step count
    together = backend.reconstruct_batch(clips)
    for clip, batched in zip(clips, together):
        alone = backend.reconstruct_clip(clip)
        assert not isinstance(batched, Exception) and batched.keys() == alone.keys()
        assert batched["flame_expression"].shape == (clip.n_frames, 50)
        np.testing.assert_allclose(batched["reprojection_error"], alone["reprojection_error"], atol=1e-3)
        for name in ("flame_expression", "flame_jaw_pose", "flame_global_pose"):
            np.testing.assert_allclose(batched[name], alone[name], atol=1e-2, err_msg=name)
        np.testing.assert_allclose(batched["flame_shape_clip"], alone["flame_shape_clip"], atol=5e-2)
