"""The built-in AV-sync estimator on constructed signals and on landmark arrays made from
synthetic natural speech (no video pipeline: tests/qa/test_sync_e2e.py builds videos)."""

import math

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter1d
from scipy.signal import resample_poly

from pseudo3d.config import QAConfig
from pseudo3d.qa import sync
from pseudo3d.qa.audio import audio_metrics, frame_envelope
from pseudo3d.qa.filters import check_clip
from pseudo3d.synth import speech

FPS = 25.0
RATE = 16_000


def _events(rng, frames, smooth=1.5):
    """A bursty, autocorrelated (T,) series: sparse random events, smoothed (speech-like rhythm)."""
    impulses = rng.normal(size=frames) * (rng.random(frames) < 0.3)
    return gaussian_filter1d(impulses, smooth)


def _shift(values, frames):
    """``values`` delayed by ``frames`` (positive: later), zeros shifted in."""
    out = np.zeros_like(values)
    if frames >= 0:
        out[frames:] = values[:len(values) - frames]
    else:
        out[:frames] = values[-frames:]
    return out


@pytest.mark.parametrize("lag", [-6, -3, 0, 2, 5])
def test_known_lag_is_recovered_within_a_frame_and_the_interval_covers_it(lag):
    rng = np.random.default_rng(abs(lag))
    mouth = _events(rng, 250)
    audio = _shift(mouth, lag) + 0.5 * mouth.std() * rng.normal(size=250)   # audio later by `lag` frames
    result = sync.estimate_sync(mouth, audio, FPS, max_lag_s=0.5)
    truth_s = lag / FPS - sync.NATURAL_LEAD_S       # the reported offset discounts the natural lead
    assert abs(result.av_offset_frames - truth_s * FPS) < 1.0
    assert result.av_offset_s == pytest.approx(result.av_offset_frames / FPS)
    assert result.av_offset_ci_low_s <= truth_s <= result.av_offset_ci_high_s
    assert result.av_sync_p_value < 0.01 and result.av_sync_strength > 0.5


def test_bootstrap_interval_covers_the_true_lag_in_most_draws():
    covered = 0
    for draw in range(40):
        rng = np.random.default_rng(100 + draw)
        mouth = _events(rng, 200)
        audio = _shift(mouth, 2) + 1.5 * mouth.std() * rng.normal(size=200)      # noisy: r about 0.5
        standard = [(v - v.mean()) / v.std() for v in (mouth, audio)]
        lags = sync.bootstrap_lags(*standard, max_lag=12, block=12, draws=200, seed=draw)
        low, high = np.quantile(lags, [0.025, 0.975])
        covered += low <= 2 <= high
    assert covered >= 34       # nominal 95 %: at least 85 % of 40


def test_unrelated_signals_are_significant_at_the_nominal_rate():
    p_values = []
    for draw in range(150):
        rng = np.random.default_rng(1000 + draw)
        result = sync.estimate_sync(_events(rng, 150, smooth=2.0), _events(rng, 150, smooth=1.0), FPS, 0.5)
        p_values.append(result.av_sync_p_value)
    p_values = np.array(p_values)
    assert 0.01 <= np.mean(p_values <= 0.05) <= 0.10
    assert 0.4 <= np.mean(p_values <= 0.5) <= 0.6
    assert np.all((p_values > 0) & (p_values <= 1))


def test_flat_or_short_series_are_not_measured():
    for mouth, audio in ((np.ones(100), np.arange(100.0)), (np.arange(100.0), np.zeros(100)),
                         (np.arange(10.0), np.arange(10.0))):
        result = sync.estimate_sync(mouth, audio, FPS, 0.5)
        assert math.isnan(result.av_offset_s) and math.isnan(result.av_sync_p_value)
    with pytest.raises(ValueError, match="one length"):
        sync.estimate_sync(np.zeros(50), np.zeros(40), FPS, 0.5)


# --- landmark arrays from synthetic natural speech --------------------------------------------

def _landmarks(mouth_open, rng, noise_px=0.3):
    """(T, 478, 2) pixel landmarks of a face 70 px between the outer eye corners whose jaw, lower
    lip and lip corners follow ``mouth_open`` in [0, 1], with tracker-like noise; only the points
    the estimator reads are placed (the rest stay at the face centre)."""
    n = len(mouth_open)
    points = np.tile(np.array([200.0, 200.0]), (n, 478, 1))
    drop = 30.0 * np.asarray(mouth_open)[:, None]                 # pixels the jaw and lower lip open by
    place = {33: (165, 170), 263: (235, 170), 1: (200, 205), 152: (200, 275), 13: (200, 232), 14: (200, 234),
             0: (200, 228), 37: (192, 229), 267: (208, 229), 17: (200, 242), 84: (193, 241), 314: (207, 241),
             61: (180, 235), 291: (220, 235)}
    for index, (x, y) in place.items():
        points[:, index] = (x, y)
    for index in (14, 17, 84, 314, 152):
        points[:, index, 1] += drop[:, 0]
    points[:, 61, 0] += 0.2 * drop[:, 0]          # the corners draw in as the mouth opens (rounding)
    points[:, 291, 0] -= 0.2 * drop[:, 0]
    return points + noise_px * rng.normal(size=points.shape)


def _natural_clip(seed, seconds, dubbed=False):
    """(landmarks, 16 kHz audio) of synthetic natural speech: lips lead the sound, close on voiced
    bilabials, open by varying amounts at equal loudness (pseudo3d.synth.speech)."""
    rng = np.random.default_rng(seed)
    plan = speech.plan_speech(rng, seconds, "natural")
    frames = int(round(seconds * FPS))
    mouth_open = speech.mouth_open_curve(plan, np.arange(frames) / FPS)
    sound_plan = speech.plan_speech(rng, seconds, "natural") if dubbed else plan
    audio = resample_poly(speech.synthesize_speech(sound_plan, rng).astype(np.float64), 1, speech.SAMPLE_RATE // RATE)
    return _landmarks(mouth_open, rng), audio[:int(round(frames / FPS * RATE))]


def _shift_audio(audio, seconds):
    n = int(round(abs(seconds) * RATE))
    return np.concatenate([np.zeros(n), audio[:len(audio) - n]]) if seconds > 0 else np.concatenate([audio[n:], np.zeros(n)])


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_natural_in_sync_speech_is_kept_and_a_four_frame_shift_moves_the_offset(seed):
    landmarks, audio = _natural_clip(seed, 10.0)
    base = sync.av_sync(landmarks, audio, RATE, FPS, 0.5)
    assert abs(base.av_offset_s) < 0.04 and base.av_offset_ci_low_s <= 0.0 <= base.av_offset_ci_high_s
    assert base.av_sync_p_value < 0.01
    assert check_clip(base.as_metrics(), QAConfig(), has_audio=True) == []
    for shift_s in (0.16, -0.16):
        shifted = sync.av_sync(landmarks, _shift_audio(audio, shift_s), RATE, FPS, 0.5)
        assert abs((shifted.av_offset_s - base.av_offset_s) - shift_s) * FPS < 1.0
        [rejection] = check_clip(shifted.as_metrics(), QAConfig(), has_audio=True)
        assert rejection.metric == "av_offset_s" and "qa.max_abs_av_offset_s" in rejection.describe()


@pytest.mark.slow   # synthesises 2 x 34 s of speech (about 6 s)
def test_dubbed_speech_is_rejected_once_there_is_enough_speech():
    landmarks, audio = _natural_clip(7, 34.0, dubbed=True)
    result = sync.av_sync(landmarks, audio, RATE, FPS, 0.5)
    assert result.av_speech_s >= QAConfig().min_av_speech_s and result.av_mouth_motion >= QAConfig().min_av_mouth_motion
    assert result.av_sync_p_value > QAConfig().max_av_sync_p_value
    [rejection] = check_clip(result.as_metrics(), QAConfig(), has_audio=True)
    assert rejection.metric == "av_sync_p_value" and "dubbed or unrelated" in rejection.describe()
    # the same mouth with its own sound is significant, and a short dubbed clip is kept (too little speech)
    own, own_audio = _natural_clip(7, 34.0)
    assert sync.av_sync(own, own_audio, RATE, FPS, 0.5).av_sync_p_value < 0.01
    short = sync.av_sync(landmarks[:150], audio[:6 * RATE], RATE, FPS, 0.5)
    assert short.av_speech_s < QAConfig().min_av_speech_s
    assert check_clip(short.as_metrics(), QAConfig(), has_audio=True) == []


def test_silence_and_a_still_face_are_not_measured_and_kept():
    landmarks, audio = _natural_clip(4, 6.0)
    silent = sync.av_sync(landmarks, np.zeros_like(audio), RATE, FPS, 0.5)
    assert math.isnan(silent.av_offset_s) and math.isnan(silent.av_sync_p_value) and silent.av_speech_s == 0.0
    assert check_clip(silent.as_metrics(), QAConfig(), has_audio=True) == []
    still = np.repeat(landmarks[:1], len(landmarks), axis=0)
    result = sync.av_sync(still, audio, RATE, FPS, 0.5)
    assert result.av_mouth_motion == 0.0 and math.isnan(result.av_offset_s)
    # a still face with tracker noise: unmeasurable motion, so never rejected as unrelated
    noisy = still + 0.3 * np.random.default_rng(0).normal(size=still.shape)
    result = sync.av_sync(noisy, audio, RATE, FPS, 0.5)
    assert result.av_mouth_motion < QAConfig().min_av_mouth_motion
    assert check_clip(result.as_metrics(), QAConfig(), has_audio=True) == []


def test_mouth_opening_member_is_the_inner_lip_gap_over_the_eye_distance():
    landmarks = _landmarks(np.array([0.0, 1.0]), np.random.default_rng(0), noise_px=0.0)
    assert sync.mouth_opening(landmarks) == pytest.approx([2.0 / 70.0, 32.0 / 70.0], rel=1e-6)


def test_audio_activity_counts_the_loud_windows():
    tone = 0.1 * np.sin(2 * np.pi * 220 * np.arange(RATE) / RATE)
    audio = np.concatenate([tone, np.zeros(RATE), 0.1 * tone])        # 1 s loud, 1 s silent, 1 s 20 dB down
    assert sync.audio_activity_s(audio, RATE) == pytest.approx(2.0, abs=0.05)
    assert sync.audio_activity_s(np.zeros(RATE), RATE) == 0.0


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
