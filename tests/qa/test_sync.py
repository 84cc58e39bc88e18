import numpy as np
import pytest

from pseudo3d.qa.audio import audio_metrics, frame_envelope
from pseudo3d.qa.sync import av_sync, lagged_correlations


def _speechlike(rng, frames):
    t = np.arange(frames)
    return np.clip(np.sin(2 * np.pi * t / 9.0) + 0.4 * np.sin(2 * np.pi * t / 23.0 + 1) + 0.1 * rng.normal(size=frames), 0, None)


@pytest.mark.parametrize("shift", [-3, 0, 2, 5])
def test_offset_recovered_for_integer_shifts(shift):
    rng = np.random.default_rng(0)
    mouth = _speechlike(rng, 300)
    envelope = np.roll(mouth, shift) + 0.05 * rng.normal(size=300)  # audio later by `shift` frames
    result = av_sync(mouth, envelope, fps=25.0, max_lag_s=0.5)
    assert result["av_offset_frames"] == pytest.approx(shift, abs=0.3)
    assert result["av_offset_s"] == pytest.approx(shift / 25.0, abs=0.3 / 25)
    assert result["av_sync_strength"] > 0.8


def test_unrelated_audio_has_weak_sync():
    rng = np.random.default_rng(1)
    unrelated = np.convolve(np.random.default_rng(9).normal(size=320), np.ones(8) / 8, mode="valid")[:300]
    result = av_sync(_speechlike(rng, 300), unrelated, 25.0, 0.5)
    assert result["av_sync_strength"] < 0.35


def test_flat_series_give_nan():
    result = av_sync(np.ones(100), np.zeros(100), 25.0, 0.5)
    assert all(np.isnan(value) for value in result.values())
    assert np.isnan(lagged_correlations(np.ones(10), np.arange(10.0), 2)).all()


def test_envelope_is_centred_on_frame_instants():
    sample_rate, fps = 16000, 25.0
    audio = np.zeros(sample_rate, np.float32)
    audio[7680:8320] = 0.5  # 0.48 s .. 0.52 s: centred on frame 12's instant (0.48 s) + 0.02 s
    envelope = frame_envelope(audio, sample_rate, fps, 25)
    assert int(np.argmax(envelope)) == 12 or int(np.argmax(envelope)) == 13
    impulse = np.zeros(sample_rate, np.float32)
    impulse[round(0.4 * sample_rate)] = 1.0  # exactly at frame 10's instant
    assert int(np.argmax(frame_envelope(impulse, sample_rate, fps, 25))) == 10


def test_audio_metrics_levels():
    sample_rate = 16000
    tone = 0.1 * np.sin(2 * np.pi * 220 * np.arange(sample_rate) / sample_rate)
    audio = np.concatenate([tone, np.zeros(sample_rate)]).astype(np.float32)
    envelope = frame_envelope(audio, sample_rate, 25.0, 50)
    metrics = audio_metrics(audio, envelope)
    assert metrics["audio_peak_dbfs"] == pytest.approx(-20.0, abs=0.1)
    assert metrics["audio_loudness_dbfs"] == pytest.approx(20 * np.log10(0.1 / np.sqrt(2) / np.sqrt(2)), abs=0.2)
    assert metrics["silence_fraction"] == pytest.approx(0.5, abs=0.03)
    assert metrics["clipping_fraction"] == 0.0
    clipped = np.clip(30 * tone, -1, 1).astype(np.float32)
    assert audio_metrics(clipped, frame_envelope(clipped, sample_rate, 25.0, 25))["clipping_fraction"] > 0.2
