"""DECA coarse encoder: strict loading of a synthetic checkpoint, code layout, determinism."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")  # torch is an optional extra (pseudo3d[train])

from pseudo3d.files import file_sha256  # noqa: E402
from pseudo3d.reconstruction.deca import (  # noqa: E402
    CODE_LAYOUT, CODE_SHAPES, N_CODES, DecaEncoder, load_deca_state_dict)
from pseudo3d.testing.deca_assets import write_synthetic_deca_checkpoint  # noqa: E402

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return write_synthetic_deca_checkpoint(tmp_path_factory.mktemp("deca") / "deca_model.tar", seed=0)


@pytest.fixture(scope="module")
def encoder(checkpoint):
    return DecaEncoder.from_checkpoint(checkpoint, device="cpu")


@pytest.fixture(scope="module")
def images():
    generator = torch.Generator().manual_seed(1)
    coarse = torch.rand(3, 3, 16, 16, generator=generator)
    return torch.nn.functional.interpolate(coarse, size=(224, 224), mode="bilinear", align_corners=False)


def test_code_layout_tiles_the_236_vector_in_deca_order():
    assert list(CODE_LAYOUT) == ["shape", "tex", "exp", "pose", "cam", "light"]
    stops = [0] + [part.stop for part in CODE_LAYOUT.values()]
    assert [part.start for part in CODE_LAYOUT.values()] == stops[:-1]
    assert stops[-1] == N_CODES == 236
    for name, part in CODE_LAYOUT.items():
        assert part.stop - part.start == torch.Size(CODE_SHAPES[name]).numel()


def test_checkpoint_loads_strictly_and_two_loads_agree(checkpoint, encoder, images):
    again = DecaEncoder.from_checkpoint(checkpoint, device="cpu")
    with torch.inference_mode():
        first, second = encoder(images), again(images)
    assert first.keys() == second.keys()
    for name in first:
        assert torch.equal(first[name], second[name]), name
    assert encoder.asset_hashes == {"deca_checkpoint": file_sha256(checkpoint)}
    assert not encoder.training
    assert not any(parameter.requires_grad for parameter in encoder.parameters())
    # Every stored tensor made it into the module, unchanged (strict load, nothing left at init).
    stored = load_deca_state_dict(checkpoint)
    loaded = encoder.state_dict()
    assert stored.keys() == loaded.keys()
    assert all(torch.equal(stored[key], loaded[key]) for key in stored)


def test_state_dict_uses_decas_key_names():
    keys = set(DecaEncoder().state_dict())
    for key in ("encoder.conv1.weight", "encoder.bn1.running_var", "encoder.layer1.0.downsample.0.weight",
                "encoder.layer1.0.downsample.1.bias", "encoder.layer3.5.conv3.weight",
                "encoder.layer4.2.bn3.num_batches_tracked", "layers.0.weight", "layers.0.bias",
                "layers.2.weight", "layers.2.bias"):
        assert key in keys, key
    assert not any(key.startswith("encoder.fc") for key in keys)
    projected = {key.split(".downsample.")[0] for key in keys if ".downsample." in key}
    assert projected == {f"encoder.layer{stage}.0" for stage in (1, 2, 3, 4)}
    assert sum(key.endswith("running_mean") for key in keys) == 53  # ResNet-50's batch norms
    assert DecaEncoder().layers[2].out_features == 236


def test_outputs_have_decas_shapes_and_order(encoder, images):
    with torch.inference_mode():
        raw = encoder.raw_codes(images)
        codes = encoder(images)
    batch = images.shape[0]
    assert raw.shape == (batch, 236)
    assert {name: tuple(value.shape) for name, value in codes.items()} == {
        "shape": (batch, 100), "tex": (batch, 50), "exp": (batch, 50), "pose": (batch, 6),
        "cam": (batch, 3), "light": (batch, 9, 3)}
    assert all(value.dtype == torch.float32 for value in codes.values())
    assert torch.equal(codes["exp"], raw[:, 150:200])
    assert torch.equal(codes["cam"], raw[:, 206:209])
    assert torch.equal(codes["light"][:, 2, 1], raw[:, 209 + 2 * 3 + 1])


def test_synthetic_codes_are_in_a_plausible_range(encoder, images):
    with torch.inference_mode():
        codes = encoder(images)
    assert torch.all((codes["cam"][:, 0] > 5) & (codes["cam"][:, 0] < 11))
    assert codes["cam"][:, 1:].abs().max() < 0.2
    assert codes["pose"].abs().max() < 0.5  # radians
    assert codes["exp"].abs().max() < 3
    assert codes["shape"].std() > 0.1  # the codes do vary
    assert not torch.allclose(codes["shape"][0], codes["shape"][1])  # ... and depend on the image


def test_synthetic_checkpoint_is_deterministic_for_a_seed(checkpoint, tmp_path):
    again = write_synthetic_deca_checkpoint(tmp_path / "again.tar", seed=0)
    first, second = load_deca_state_dict(checkpoint), load_deca_state_dict(again)
    assert all(torch.equal(first[key], second[key]) for key in first)
    assert set(torch.load(again, weights_only=True)) == {"E_flame", "E_detail"}


def test_bad_image_shapes_are_refused(encoder):
    with pytest.raises(ValueError, match=r"\(B, 3, 224, 224\).*\(2, 3, 112, 112\)"):
        encoder(torch.zeros(2, 3, 112, 112))
    with pytest.raises(ValueError, match="float"):
        encoder(torch.zeros(1, 3, 224, 224, dtype=torch.uint8))


def _cuda_codes(checkpoint, images, precision):
    from pseudo3d.reconstruction.device import inference_context

    on_gpu = DecaEncoder.from_checkpoint(checkpoint, device="cuda")
    assert on_gpu.encoder.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    with inference_context("cuda", precision):
        codes = on_gpu(images.cuda().contiguous(memory_format=torch.channels_last))
    return {name: value.cpu() for name, value in codes.items()}


@pytest.mark.gpu
@needs_cuda
def test_cuda_fp32_codes_match_cpu_float32(checkpoint, encoder, images):
    """IEEE float32 on both: only the order of additions differs (docs/reconstruction.md)."""
    gpu_codes = _cuda_codes(checkpoint, images, "fp32")
    with torch.inference_mode():
        cpu_codes = encoder(images)
    for name in ("shape", "exp", "pose", "cam"):
        assert gpu_codes[name].dtype == torch.float32
        error = (gpu_codes[name] - cpu_codes[name]).abs().max().item()
        assert error <= 1e-3 * cpu_codes[name].abs().max().item(), (name, error)


@pytest.mark.gpu
@needs_cuda
def test_cuda_fp32_codes_are_the_same_bytes_again(checkpoint, images):
    first, second = (_cuda_codes(checkpoint, images, "fp32") for _ in range(2))
    assert all(torch.equal(first[name], second[name]) for name in first)


@pytest.mark.gpu
@needs_cuda
def test_cuda_bf16_codes_are_float32_and_follow_the_camera(checkpoint, encoder, images):
    """bf16 is the fast, inexact option: through random weights its expression and pose codes drift
    far from float32 (docs/reconstruction.md gives the figures); the camera, the largest code, stays."""
    gpu_codes = _cuda_codes(checkpoint, images, "bf16")
    with torch.inference_mode():
        cpu_codes = encoder(images)
    for name, value in gpu_codes.items():
        assert value.dtype == torch.float32 and value.shape == cpu_codes[name].shape and value.isfinite().all()
    both = torch.stack([gpu_codes["cam"].flatten(), cpu_codes["cam"].flatten()])
    assert torch.corrcoef(both)[0, 1].item() > 0.99
