"""Time alignment and receptive fields: resampling to motion instants, each branch's reach measured
through gradients, and which audio an output frame depends on."""

from __future__ import annotations

import pytest
import torch

from pseudo3d.training.models import ModelConfig, build_model
from pseudo3d.training.models.blocks import normalise_log_mel
from pseudo3d.training.models.hierarchical import BRANCHES
from pseudo3d.training.models.resample import conv_receptive_field, resample_to_frames

SR = 16000


def noise(n_samples: int, seed: int = 0) -> torch.Tensor:
    return 0.1 * torch.randn(1, n_samples, generator=torch.Generator().manual_seed(seed))


def readout(features: torch.Tensor) -> torch.Tensor:
    """A fixed random mix of ``(hidden,)`` channels (their plain sum is 0 after a layer norm)."""
    weights = torch.randn(features.shape[-1], generator=torch.Generator().manual_seed(1))
    return (features * weights).sum()


# --- resampling ---------------------------------------------------------------------------------

@pytest.mark.parametrize("fps", [25.0, 29.97, 60.0, 100.0, 240.0])
def test_resampled_ramp_reads_the_frame_instants(fps):
    """A sequence whose value is its own time reads k / fps at output k (away from the ends)."""
    src_rate = 100.0
    ramp = (torch.arange(1000, dtype=torch.float64) / src_rate).expand(2, 3, -1)
    n_frames = int(9.0 * fps)
    out = resample_to_frames(ramp, src_rate, n_frames, fps)
    expected = torch.arange(n_frames, dtype=torch.float64) / fps
    interior = (expected > 0.1) & (expected < 9.0)
    assert out.shape == (2, 3, n_frames)
    assert torch.allclose(out[0, 0][interior], expected[interior], atol=1e-9)


def test_upsampling_is_linear_interpolation_and_downsampling_averages():
    x = torch.randn(1, 4, 50, dtype=torch.float64)
    up = resample_to_frames(x, 12.5, 200, 50.0)                    # 4 outputs per element
    assert torch.allclose(up[..., ::4], x, atol=1e-12)
    assert torch.allclose(up[..., 2:-4:4], 0.5 * (x[..., :-1] + x[..., 1:]), atol=1e-12)
    alternating = torch.tensor([1.0, -1.0], dtype=torch.float64).repeat(100)[None, None]
    assert resample_to_frames(alternating, 100.0, 50, 25.0)[..., 1:-1].abs().max() < 1e-9
    down = resample_to_frames(alternating, 100.0, 40, 20.0)        # Nyquist ripple is averaged out
    assert down[..., 1:-1].abs().max() < 0.05
    constant = torch.full((1, 1, 7), 3.0, dtype=torch.float64)
    held = resample_to_frames(constant, 100.0, 30, 25.0)            # instants past the end hold on
    assert torch.allclose(held, torch.full_like(held, 3.0))


def test_receptive_field_arithmetic():
    assert conv_receptive_field([3], [1], [1]) == 3
    assert conv_receptive_field([3, 3, 3, 3], [1, 1, 2, 4], [2, 1, 1, 1]) == 31
    assert conv_receptive_field([15, 3, 3, 3, 3], [1, 1, 2, 4, 8], [8, 1, 1, 1, 1]) == 255


# --- branch receptive fields --------------------------------------------------------------------

def _support_s(gradient: torch.Tensor) -> float:
    nonzero = (gradient != 0).nonzero().flatten()
    return (int(nonzero[-1]) - int(nonzero[0]) + 1) / SR


def test_each_branch_sees_the_documented_span_of_audio():
    torch.manual_seed(0)
    model = build_model(ModelConfig(output_dim=4)).eval()
    documented = model.encoder.receptive_fields_s()
    assert documented == pytest.approx({"fine": 0.045, "mid": 0.325, "long": 2.565})
    audio = noise(8 * SR).requires_grad_()
    outputs = model.encoder.branch_outputs(normalise_log_mel(model.log_mel(audio)))
    measured = {}
    for name in BRANCHES:
        out, rate = outputs[name]
        index = int(4.0 * rate)                                    # the element at t = 4 s
        (gradient,) = torch.autograd.grad(readout(out[0, :, index]), audio, retain_graph=True)
        measured[name] = _support_s(gradient[0])
        centre = (gradient[0] != 0).nonzero().float().mean().item() / SR
        assert centre == pytest.approx(4.0, abs=0.5 / SR + 1e-9), name
    # The periodic Hann window is exactly zero at its first sample, so one sample less shows.
    assert measured == pytest.approx({n: documented[n] - 1 / SR for n in BRANCHES}, abs=1e-9)
    assert measured["fine"] < 0.05 and 0.2 < measured["mid"] < 0.5 and 2.0 < measured["long"] < 4.0


# --- whole-model alignment ---------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["hierarchical", "convrnn"])
@pytest.mark.parametrize("fps", [25.0, 29.97, 60.0])
def test_output_frame_k_depends_most_on_audio_at_k_over_fps(kind, fps):
    torch.manual_seed(0)
    model = build_model(ModelConfig(output_dim=4, kind=kind)).eval()
    n_frames = int(8 * fps)
    audio = noise(round(n_frames * SR / fps)).requires_grad_()
    k = n_frames // 2 + 1
    (gradient,) = torch.autograd.grad(readout(model(audio, n_frames, fps)[0, k]), audio)
    power = gradient[0].square()
    times = torch.arange(power.numel()) / SR
    local = torch.nn.functional.avg_pool1d(power[None, None], 801, 1, 400)[0, 0]   # 50 ms windows
    assert times[local.argmax()].item() == pytest.approx(k / fps, abs=0.025)
    near = (times - k / fps).abs() < 0.1
    assert power[near].sum() > 0.4 * power.sum()


def test_hierarchical_output_reaches_seconds_but_no_further_than_its_bound():
    torch.manual_seed(0)
    config = ModelConfig(output_dim=4)
    model = build_model(config).eval()
    fps, n_frames = 25.0, 250
    audio = noise(n_frames * 640).requires_grad_()
    k = 125                                                          # t = 5 s
    (gradient,) = torch.autograd.grad(readout(model(audio, n_frames, fps)[0, k]), audio)
    offsets = (torch.arange(audio.shape[1]) / SR - k / fps).abs()
    reach = offsets[gradient[0] != 0].max().item()
    long_half = model.encoder.receptive_fields_s()["long"] / 2
    decoder_reach = config.decoder_layers * (model.decoder.context_frames(fps) + 2) / fps
    resample_reach = max(1 / fps, config.long_stride / 100)       # interpolation between elements
    bound = long_half + resample_reach + decoder_reach
    assert 2.0 < reach <= bound + 1e-6
    # Even with the decoder out of the way, the long branch alone reaches over a second.
    features = normalise_log_mel(model.log_mel(audio))
    long_out, rate = model.encoder.branch_outputs(features)["long"]
    (gradient,) = torch.autograd.grad(readout(long_out[0, :, int(5.0 * rate)]), audio)
    assert (gradient[0][offsets > 1.2] != 0).any()


def test_delaying_the_audio_delays_the_motion():
    """Time-shift equivariance: audio delayed by two motion frames (1280 samples, a whole number of
    steps of every branch) gives the same motion two frames later, away from the clip's ends."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(output_dim=4, decoder_context_s=0.4)).eval()
    fps, n_frames, shift = 25.0, 250, 2
    audio = noise(n_frames * 640)
    delayed = torch.cat([torch.zeros(1, shift * 640), audio[:, : -shift * 640]], dim=1)
    with torch.no_grad():
        out = model(audio, n_frames, fps)
        out_delayed = model(delayed, n_frames, fps)
    interior = slice(75, 175)
    assert torch.allclose(out_delayed[0, interior.start + shift: interior.stop + shift], out[0, interior], atol=1e-5)
