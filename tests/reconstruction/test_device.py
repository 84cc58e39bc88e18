"""Device placement and batching helpers of the GPU backends."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")  # torch is an optional extra (pseudo3d[train])

from pseudo3d.errors import ConfigError  # noqa: E402
from pseudo3d.reconstruction.device import (  # noqa: E402
    concatenate_clips, inference_context, inference_precision, iter_batches, resolve_device, split_like,
    uint8_crops_to_device)

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the behaviour without CUDA")


def _crops(n=3, size=5, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, size, size + 1, 3), dtype=np.uint8)


def test_resolve_device_names():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device().type == ("cuda" if torch.cuda.is_available() else "cpu")
    for bad in ("gpu", "tpu", "meta", ""):
        with pytest.raises(ConfigError, match="reconstruct.device"):
            resolve_device(bad)


@no_cuda
def test_cuda_without_cuda_names_the_option():
    for name in ("cuda", "cuda:0"):
        with pytest.raises(ConfigError, match=r"reconstruct\.device is 'cuda.*CUDA is not available"):
            resolve_device(name)


def test_crops_to_cpu_are_float_nchw_in_unit_range():
    crops = _crops()
    images = uint8_crops_to_device(crops, "cpu")
    assert images.shape == (3, 3, 5, 6) and images.dtype == torch.float32 and images.device.type == "cpu"
    assert images.is_contiguous()
    np.testing.assert_array_equal(images.numpy(), crops.transpose(0, 3, 1, 2).astype(np.float32) / 255)
    assert images[1, 2, 4, 5].item() == pytest.approx(crops[1, 4, 5, 2] / 255)  # (n, c, y, x) ← (n, y, x, c)
    full_range = uint8_crops_to_device(np.array([0, 255], np.uint8).reshape(1, 1, 2, 1).repeat(3, 3), "cpu")
    assert full_range.min().item() == 0.0 and full_range.max().item() == 1.0


def test_crops_must_be_uint8_nhwc():
    with pytest.raises(ValueError, match="uint8 array of shape \\(N, H, W, 3\\), got a float32"):
        uint8_crops_to_device(_crops().astype(np.float32), "cpu")
    with pytest.raises(ValueError, match="shape \\(2, 4, 4\\)"):
        uint8_crops_to_device(np.zeros((2, 4, 4), np.uint8), "cpu")
    with pytest.raises(ValueError, match="got a list"):
        uint8_crops_to_device([[0]], "cpu")


def test_non_contiguous_crops_are_accepted():
    crops = _crops(n=4)[::2]
    np.testing.assert_array_equal(uint8_crops_to_device(crops, "cpu").numpy(),
                                  crops.transpose(0, 3, 1, 2) / np.float32(255))


def test_cpu_inference_context_is_float32_without_autograd():
    layer = torch.nn.Linear(4, 2)
    with inference_context("cpu"):
        assert torch.is_inference_mode_enabled()
        out = layer(torch.ones(3, 4))
    assert out.dtype == torch.float32
    assert not out.requires_grad
    assert not torch.is_inference_mode_enabled()


def test_the_cpu_runs_float32_whatever_the_precision_asked():
    layer = torch.nn.Linear(8, 4)
    with inference_context("cpu", "bf16"):
        assert layer(torch.ones(2, 8)).dtype == torch.float32
    assert inference_precision("cpu", "bf16") == "fp32"
    with pytest.raises(ValueError, match="precision must be one of fp32, bf16, got 'fp16'"):
        with inference_context("cpu", "fp16"):
            pass


def test_iter_batches_cover_every_item_once():
    batches = list(iter_batches(10, 4))
    assert [(part.start, part.stop) for part in batches] == [(0, 4), (4, 8), (8, 10)]
    assert list(iter_batches(0, 4)) == []
    assert [(part.start, part.stop) for part in iter_batches(8, 8)] == [(0, 8)]
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        list(iter_batches(3, 0))


def test_batches_span_clips_and_results_go_back_per_clip():
    clips = [np.full((n, 2), index, np.float32) for index, n in enumerate((3, 0, 5, 1))]
    frames = concatenate_clips(clips)
    assert frames.shape == (9, 2)
    outputs = np.concatenate([frames[part] * 10 for part in iter_batches(len(frames), 4)])
    per_clip = split_like(outputs, [len(clip) for clip in clips])
    assert [piece.shape for piece in per_clip] == [(3, 2), (0, 2), (5, 2), (1, 2)]
    for index, piece in enumerate(per_clip):
        np.testing.assert_array_equal(piece, np.full_like(piece, index * 10))


def test_split_like_handles_tensors_and_mappings():
    rows = {"exp": torch.arange(12.0).reshape(6, 2), "cam": np.arange(6)}
    per_clip = split_like(rows, [2, 4])
    assert [set(piece) for piece in per_clip] == [{"exp", "cam"}] * 2
    assert torch.equal(per_clip[1]["exp"], torch.arange(4.0, 12.0).reshape(4, 2))
    np.testing.assert_array_equal(per_clip[0]["cam"], [0, 1])
    with pytest.raises(ValueError, match="cannot split 6 rows into clips of lengths summing to 5"):
        split_like(np.zeros(6), [2, 3])


def test_concatenate_clips_refuses_mismatched_frames():
    with pytest.raises(ValueError, match="agree on every axis but the first"):
        concatenate_clips([np.zeros((2, 4, 4, 3)), np.zeros((2, 5, 4, 3))])
    with pytest.raises(ValueError, match="at least one clip"):
        concatenate_clips([])


@pytest.mark.gpu
@needs_cuda
def test_crops_to_cuda_match_cpu_and_are_channels_last():
    crops = _crops(n=4, size=224)[:, :, :224]
    images = uint8_crops_to_device(crops, "cuda")
    assert images.device.type == "cuda" and images.dtype == torch.float32 and images.shape == (4, 3, 224, 224)
    assert images.is_contiguous(memory_format=torch.channels_last)
    torch.cuda.synchronize()
    assert torch.equal(images.cpu(), uint8_crops_to_device(crops, "cpu"))


@pytest.mark.gpu
@needs_cuda
def test_cuda_bf16_autocasts_with_autotuned_kernels_and_restores_the_settings():
    layer = torch.nn.Linear(8, 4).cuda()
    before = (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic, torch.backends.cudnn.allow_tf32)
    with inference_context("cuda", "bf16"):
        out = layer(torch.ones(2, 8, device="cuda"))
        assert torch.backends.cudnn.benchmark and not torch.backends.cudnn.deterministic
    assert out.dtype == torch.bfloat16 and inference_precision("cuda", "bf16") == "bf16"
    assert not torch.is_autocast_enabled("cuda")
    assert (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic, torch.backends.cudnn.allow_tf32) == before


@pytest.mark.gpu
@needs_cuda
def test_cuda_fp32_is_ieee_float32_with_deterministic_kernels():
    layer = torch.nn.Linear(8, 4).cuda()
    with inference_context("cuda", "fp32"):
        out = layer(torch.ones(2, 8, device="cuda"))
        assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    assert out.dtype == torch.float32 and inference_precision("cuda") == "fp32"
