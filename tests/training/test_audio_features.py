"""Log-mel features: the HTK filterbank, frame count and timing, and what a tone lights up."""

from __future__ import annotations

import math

import pytest
import torch

from pseudo3d.training.audio import (
    LOG_FLOOR, LogMel, hz_to_mel, mel_centers_hz, mel_filterbank, mel_to_hz)


def test_htk_mel_scale_round_trips_and_puts_1000_hz_at_1000_mel():
    freqs = torch.tensor([0.0, 20.0, 440.0, 1000.0, 7600.0], dtype=torch.float64)
    assert torch.allclose(mel_to_hz(hz_to_mel(freqs)), freqs, atol=1e-9)
    assert hz_to_mel(torch.tensor(1000.0, dtype=torch.float64)).item() == pytest.approx(1000.0, abs=0.05)


def test_filterbank_triangles_peak_at_their_centres_and_sum_to_one_between_them():
    n_mels, f_min, f_max = 40, 20.0, 7600.0
    corners = mel_centers_hz(n_mels, f_min, f_max)
    # Evaluated exactly at the centres: filter m is 1 at its own centre, 0 at every other.
    at_centres = mel_filterbank(corners[1:-1], n_mels, f_min, f_max)
    assert torch.allclose(at_centres, torch.eye(n_mels, dtype=torch.float64), atol=1e-9)

    grid = torch.linspace(0.0, 8000.0, 16001, dtype=torch.float64)
    bank = mel_filterbank(grid, n_mels, f_min, f_max)
    assert bank.shape == (n_mels, grid.numel())
    assert bank.min() >= 0 and bank.max() <= 1 + 1e-12
    inside = (grid >= corners[1]) & (grid <= corners[-2])
    assert torch.allclose(bank[:, inside].sum(dim=0), torch.ones(int(inside.sum()), dtype=torch.float64), atol=1e-9)
    outside = (grid <= f_min) | (grid >= f_max)
    assert bank[:, outside].abs().max() == 0
    # Each triangle's maximum on the dense grid lies at its centre (to the grid step).
    peaks = grid[bank.argmax(dim=1)]
    assert torch.allclose(peaks, corners[1:-1], atol=0.5)
    # Centres are equally spaced in mel.
    spacing = torch.diff(hz_to_mel(corners))
    assert torch.allclose(spacing, spacing[0].expand_as(spacing), rtol=1e-9)


@pytest.mark.parametrize("n_samples", [0, 1, 159, 160, 161, 16000, 16001])
def test_frame_count_is_samples_over_hop_plus_one(n_samples):
    features = LogMel()(torch.zeros(2, n_samples))
    assert features.shape == (2, 80, n_samples // 160 + 1)
    assert torch.allclose(features, torch.full_like(features, math.log(LOG_FLOOR)))


def test_1khz_tone_lights_the_band_centred_nearest_1khz():
    log_mel = LogMel()
    t = torch.arange(16000, dtype=torch.float64) / 16000
    tone = (0.5 * torch.sin(2 * math.pi * 1000.0 * t)).float()[None]
    features = log_mel(tone)[0]                                   # (80, 101)
    profile = features[:, 5:-5].mean(dim=1)
    centres = mel_centers_hz(80, 20.0, 7600.0)[1:-1]
    assert int(profile.argmax()) == int((centres - 1000.0).abs().argmin())
    # The tone sits on rfft bin 25 (40 Hz bins): the Hann window puts power A^2 / 4 there and
    # A^2 / 16 on bins 24 and 26; the band reads those weighted by its triangle ...
    peak_band = int(profile.argmax())
    weights = mel_filterbank(torch.tensor([960.0, 1000.0, 1040.0]), 80, 20.0, 7600.0)[peak_band]
    power = 0.5**2 / 4 * weights[1] + 0.5**2 / 16 * (weights[0] + weights[2])
    assert profile[peak_band].item() == pytest.approx(math.log(power.item() + LOG_FLOOR), abs=1e-3)
    # ... and bands two octaves away see only window leakage, far below it.
    far = (centres < 250.0) | (centres > 4000.0)
    assert (profile[peak_band] - profile[far].max()).item() > 8.0  # natural log: > 35 dB


def test_frames_are_centred_on_multiples_of_the_hop():
    log_mel = LogMel()
    audio = torch.zeros(1, 16000)
    for frame in (10, 37, 80):
        audio.zero_()
        audio[0, frame * 160 - 8: frame * 160 + 8] = 1.0           # a 1 ms click at frame's centre
        energy = log_mel(audio)[0].exp().sum(dim=0)
        assert int(energy.argmax()) == frame


def test_batch_items_are_independent_and_repeatable():
    log_mel = LogMel()
    generator = torch.Generator().manual_seed(0)
    audio = 0.1 * torch.randn(3, 8000, generator=generator)
    together = log_mel(audio)
    assert torch.equal(together, log_mel(audio))
    assert torch.allclose(together[1], log_mel(audio[1:2])[0], atol=1e-5)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="n_mels"):
        LogMel(n_mels=200)                                        # filters narrower than a bin
    with pytest.raises(ValueError, match="f_max"):
        LogMel(f_max=9000.0)
    with pytest.raises(ValueError, match="hop_length"):
        LogMel(hop_length=0)
    with pytest.raises(ValueError, match="batch, samples"):
        LogMel()(torch.zeros(16000))
