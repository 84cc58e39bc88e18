"""SPECTRE's encoders: checkpoint layouts and strict loading, the temporal head against SPECTRE's
demo procedure, and the backend's one row per frame."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from pseudo3d.config import BuildConfig  # noqa: E402
from pseudo3d.errors import AssetError  # noqa: E402
from pseudo3d.files import file_sha256  # noqa: E402
from pseudo3d.reconstruction.deca import split_codes  # noqa: E402
from pseudo3d.reconstruction.spectre import SpectreEncoder, load_spectre_state_dicts  # noqa: E402
from pseudo3d.reconstruction.spectre.mobilenet import MobileNetV2  # noqa: E402
from pseudo3d.schemas.records import Clip, Source  # noqa: E402

DEMO_CHUNK, DEMO_OVERLAP = 50, 4
"""SPECTRE's demo.py: chunks of 50 frames, each starting 46 after the previous one."""


@pytest.fixture(scope="module")
def written(spectre_encoder_files):
    """The synthetic encoder and its checkpoint in every layout."""
    return spectre_encoder_files


@pytest.fixture(scope="module")
def encoder(written):
    return SpectreEncoder.from_checkpoint(written[1]["trainer"], device="cpu")


def _frames(n: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, 12, 12, generator=generator)
    return torch.nn.functional.interpolate(coarse, size=(224, 224), mode="bilinear", align_corners=False)


def test_every_layout_loads_strictly_to_the_same_weights(written):
    saved, paths = written
    expected = saved.state_dict()
    for layout, path in paths.items():
        encoder = SpectreEncoder.from_checkpoint(path, device="cpu")
        loaded = encoder.state_dict()
        assert loaded.keys() == expected.keys(), layout
        assert all(torch.equal(loaded[key], expected[key]) for key in expected), layout
        assert encoder.asset_hashes == {"spectre_checkpoint": file_sha256(path)}
        assert not encoder.training and not any(p.requires_grad for p in encoder.parameters())


def test_mobilenet_has_torchvisions_key_names():
    keys = MobileNetV2().state_dict().keys()
    for key in ("features.0.0.weight", "features.0.1.running_mean", "features.1.conv.0.0.weight",
                "features.1.conv.1.weight", "features.2.conv.0.0.weight", "features.2.conv.3.bias",
                "features.17.conv.3.weight", "features.18.0.weight", "features.18.1.num_batches_tracked",
                "classifier.1.weight"):
        assert key in keys, key
    assert len([key for key in keys if key.endswith(".weight")]) == 105  # 52 convs, 52 batch norms, 1 linear


@pytest.mark.parametrize("change", ["missing", "extra", "shape", "no_expression"])
def test_a_checkpoint_that_does_not_match_is_refused_naming_the_file_and_key(written, tmp_path, change):
    states = load_spectre_state_dicts(written[1]["trainer"])
    expression = dict(states["E_expression"])
    if change == "missing":
        del expression["temporal.0.weight"]
        named = "missing keys: temporal.0.weight"
    elif change == "extra":
        expression["head.extra"] = torch.zeros(3)
        named = "unexpected keys: head.extra"
    elif change == "shape":
        expression["layers.0.weight"] = torch.zeros(50, 256)
        named = "layers.0.weight (50, 256) (expected (53, 256))"
    else:
        expression = {}
        named = "has no 'E_expression' entry"
    content = {"E_flame": states["E_flame"]} | ({"E_expression": expression} if expression else {})
    path = tmp_path / "broken.tar"
    torch.save(content, path)
    with pytest.raises(AssetError) as error:
        SpectreEncoder.from_checkpoint(path, device="cpu")
    assert named in str(error.value) and str(path) in str(error.value)


def test_a_pickled_object_is_refused_not_run(tmp_path):
    path = tmp_path / "spectre_model.tar"
    torch.save({"E_flame": {}, "E_expression": {}, "hook": np.dtype("float32")}, path)
    with pytest.raises(AssetError, match="refused for safety"):
        load_spectre_state_dicts(path)


def test_forward_adds_spectres_residuals_to_decas_codes(encoder):
    video = _frames(6, seed=1).reshape(2, 3, 3, 224, 224)
    with torch.no_grad():
        codes = encoder(video)
        deca = split_codes(encoder.E_flame.raw_codes(video.reshape(6, 3, 224, 224)))
        expression, jaw = encoder.E_expression(video)
    assert {name: tuple(value.shape) for name, value in codes.items()} == {
        "shape": (2, 3, 100), "tex": (2, 3, 50), "exp": (2, 3, 50), "pose": (2, 3, 6), "cam": (2, 3, 3),
        "light": (2, 3, 9, 3)}
    torch.testing.assert_close(codes["exp"], deca["exp"].reshape(2, 3, 50) + expression, atol=1e-5, rtol=0)
    torch.testing.assert_close(codes["pose"][..., 3:], deca["pose"][:, 3:].reshape(2, 3, 3) + jaw, atol=1e-5, rtol=0)
    torch.testing.assert_close(codes["pose"][..., :3], deca["pose"][:, :3].reshape(2, 3, 3), atol=1e-6, rtol=0)
    assert (jaw[..., 0] >= 0).all()  # the jaw never opens backwards


def _demo_chunks(features: torch.Tensor, head) -> tuple[torch.Tensor, torch.Tensor]:
    """SPECTRE demo.py's procedure on per-frame features (T, 1280): two repeated frames at each
    edge, chunks of 50 starting every 46 frames (a last chunk under 5 frames merged into the one
    before), each run on its own with a zero-padded temporal convolution, the two frames at each
    inner chunk edge dropped, then the padding."""
    padded = torch.cat([features[:1], features[:1], features, features[-1:], features[-1:]])
    indices = list(range(len(padded)))
    chunks = [indices[i:i + DEMO_CHUNK] for i in range(0, len(indices), DEMO_CHUNK - DEMO_OVERLAP)]
    if len(chunks[-1]) < 5:
        chunks[-2] = sorted(set(chunks[-2] + chunks[-1]))
        chunks = chunks[:-1]
    kept_expression, kept_jaw = [], []
    for number, chunk in enumerate(chunks):
        expression, jaw = head(padded[chunk][None], "zeros")
        first = 0 if number == 0 else 2
        last = len(chunk) if number == len(chunks) - 1 else len(chunk) - 2
        kept_expression.append(expression[0, first:last])
        kept_jaw.append(jaw[0, first:last])
    return torch.cat(kept_expression)[2:-2], torch.cat(kept_jaw)[2:-2]


@pytest.mark.parametrize("frames", [1, 2, 5, 46, 49, 50, 51, 92, 97, 200])
def test_whole_sequence_head_equals_the_demos_overlapping_chunks(encoder, frames):
    generator = torch.Generator().manual_seed(frames)
    features = torch.rand(frames, 1280, generator=generator) * 2.0
    with torch.no_grad():
        want_expression, want_jaw = _demo_chunks(features, encoder.E_expression.head)
        expression, jaw = encoder.E_expression.head(features[None], "repeat")
    assert expression.shape == (1, frames, 50) and jaw.shape == (1, frames, 3)
    torch.testing.assert_close(expression[0], want_expression, atol=1e-5, rtol=0)
    torch.testing.assert_close(jaw[0], want_jaw, atol=1e-5, rtol=0)


def test_the_backend_gives_one_row_per_frame_for_any_clip_length(written, flame_assets):
    from pseudo3d.reconstruction.spectre_backend import SpectreBackend

    _, paths = written
    config = BuildConfig().with_overrides(backend="spectre", reconstruct={
        "flame_model": str(flame_assets["flame_model"]), "spectre_checkpoint": str(paths["flat"]),
        "landmark_embedding": str(flame_assets["mediapipe_embedding"]), "device": "cpu", "batch_size": 4})
    backend = SpectreBackend(config)
    lengths = (1, 5, 7)  # batches of 4 frames span the clips
    frames = _frames(sum(lengths), seed=2)
    crops = (frames.permute(0, 2, 3, 1) * 255).round().to(torch.uint8).numpy()
    clips, start = [], 0
    for index, n in enumerate(lengths):
        landmarks = np.random.default_rng(index).uniform(50, 150, (n, 478, 3)).astype(np.float32)
        clips.append(Clip(source=Source("/s.mp4", "s.mp4", "s-0"), clip_index=index, start_frame=start, fps=25.0,
                          image_size=(224, 224), landmarks=landmarks, confidence=np.ones(n, np.float32),
                          interpolated=np.zeros(n, bool), crop_transforms=np.tile(np.eye(2, 3, dtype=np.float32), (n, 1, 1)),
                          audio=np.zeros(n * 640, np.float32), sample_rate=16000, crops=crops[start:start + n]))
        start += n
    results = backend.reconstruct_batch(clips)
    for clip, result in zip(clips, results):
        assert not isinstance(result, Exception)
        n = clip.n_frames
        assert result["flame_expression"].shape == (n, 50) and result["flame_jaw_pose"].shape == (n, 3)
        assert result["reprojection_error"].shape == (n,) and np.isfinite(result["reprojection_error"]).all()
        assert result["flame_shape_clip"].shape == (100,)
        with torch.no_grad():  # the clip alone, in one batch: the same codes
            alone = backend.encoder.encode_sequence(torch.from_numpy(clip.crops).permute(0, 3, 1, 2).float() / 255)
        np.testing.assert_allclose(result["flame_expression"], alone["exp"].numpy(), atol=1e-4)
        np.testing.assert_allclose(result["flame_jaw_pose"], alone["pose"][:, 3:].numpy(), atol=1e-4)
    assert backend.asset_hashes()["spectre_checkpoint"] == file_sha256(paths["flat"])
