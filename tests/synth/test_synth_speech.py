import numpy as np
import pytest

from pseudo3d.synth import speech


def _plan(seed: int, duration_s: float = 20.0) -> speech.SpeechPlan:
    return speech.plan_speech(np.random.default_rng(seed), duration_s)


def _phrases(plan: speech.SpeechPlan) -> list[list[speech.Syllable]]:
    phrases: list[list[speech.Syllable]] = [[plan.syllables[0]]]
    for previous, syllable in zip(plan.syllables, plan.syllables[1:]):
        if syllable.start_s - previous.end_s >= 0.25:
            phrases.append([])
        phrases[-1].append(syllable)
    return phrases


def test_syllables_are_timed_like_speech():
    plan = _plan(seed=1)
    durations = np.array([s.duration_s for s in plan.syllables])
    assert durations.min() >= 0.12 and durations.max() <= 0.30
    gaps = np.array([b.start_s - a.end_s for a, b in zip(plan.syllables, plan.syllables[1:])])
    assert gaps.min() >= -1e-9, "syllables overlap"
    word_gaps = gaps[(gaps > 1e-9) & (gaps < 0.25)]
    pauses = gaps[gaps >= 0.25]
    assert len(word_gaps) > 5 and word_gaps.min() >= 0.03 - 1e-9 and word_gaps.max() <= 0.12 + 1e-9
    assert len(pauses) >= 3 and pauses.max() <= 0.70 + 1e-9
    assert plan.syllables[0].start_s > 0.1 and plan.syllables[-1].end_s <= plan.duration_s - 0.1


def test_pitch_stays_in_range_and_falls_through_each_phrase():
    plan = _plan(seed=2)
    f0 = np.array([s.f0_hz for s in plan.syllables])
    assert f0.min() >= 95.0 and f0.max() <= 225.0
    long_phrases = [p for p in _phrases(plan) if len(p) >= 3]
    assert long_phrases
    for phrase in long_phrases:
        assert phrase[0].f0_hz > phrase[-1].f0_hz


def test_mouth_is_closed_in_pauses_and_opens_in_syllables():
    plan = _plan(seed=3)
    times = np.arange(0.0, plan.duration_s, 0.005)
    mouth = speech.mouth_open_curve(plan, times)
    assert mouth.min() >= 0.0 and mouth.max() <= 1.0
    assert mouth.max() > 0.6
    pause_middles = [0.5 * (a.end_s + b.start_s) for a, b in zip(plan.syllables, plan.syllables[1:])
                     if b.start_s - a.end_s >= 0.25]
    assert np.all(speech.mouth_open_curve(plan, np.array(pause_middles)) < 1e-3)
    nucleus_middles = np.array([0.5 * (s.nucleus_start_s + s.end_s) for s in plan.syllables])
    assert np.median(speech.mouth_open_curve(plan, nucleus_middles)) > 0.2


def test_loudness_and_mouth_move_together_at_zero_lag():
    rng = np.random.default_rng(4)
    plan = speech.plan_speech(rng, 12.0)
    audio = speech.synthesize_speech(plan, rng)
    fps = 25.0
    times = np.arange(int(12.0 * fps)) / fps
    mouth = speech.mouth_open_curve(plan, times)
    loudness = speech.rms_envelope(audio, speech.SAMPLE_RATE, times, 1.0 / fps)

    def correlation(lag: int) -> float:
        if lag >= 0:
            return float(np.corrcoef(mouth[:len(mouth) - lag], loudness[lag:])[0, 1])
        return float(np.corrcoef(mouth[-lag:], loudness[:lag])[0, 1])

    at_zero = correlation(0)
    assert at_zero > 0.75
    assert at_zero > max(correlation(lag) for lag in (-3, -2, -1, 1, 2, 3))


def test_voiced_syllables_carry_the_planned_pitch():
    rng = np.random.default_rng(5)
    plan = speech.plan_speech(rng, 6.0)
    audio = speech.synthesize_speech(plan, rng).astype(np.float64)
    syllable = max(plan.syllables, key=lambda s: s.duration_s - s.consonant_s)
    middle = 0.5 * (syllable.nucleus_start_s + syllable.end_s)
    window = audio[int((middle - 0.03) * speech.SAMPLE_RATE):int((middle + 0.03) * speech.SAMPLE_RATE)]
    window = window - window.mean()
    autocorrelation = np.correlate(window, window, mode="full")[len(window) - 1:]
    shortest, longest = int(speech.SAMPLE_RATE / 260), int(speech.SAMPLE_RATE / 80)
    period = shortest + int(np.argmax(autocorrelation[shortest:longest]))
    assert speech.SAMPLE_RATE / period == pytest.approx(syllable.f0_hz, rel=0.15)


def test_audio_level_and_shape():
    rng = np.random.default_rng(6)
    plan = speech.plan_speech(rng, 5.0)
    audio = speech.synthesize_speech(plan, rng)
    assert audio.dtype == np.float32 and audio.shape == (5 * speech.SAMPLE_RATE,)
    assert np.max(np.abs(audio)) == pytest.approx(0.5, abs=1e-6)
    assert np.all(audio[:int(plan.syllables[0].start_s * speech.SAMPLE_RATE) - 1] == 0.0)


def test_same_seed_same_speech_other_seed_other_speech():
    def make(seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        return speech.synthesize_speech(speech.plan_speech(rng, 4.0), rng)

    assert np.array_equal(make(7), make(7))
    assert not np.array_equal(make(7), make(8))


def test_rms_envelope_of_a_sine():
    rate = 1000
    times_of_samples = np.arange(2 * rate) / rate
    sine = 0.8 * np.sin(2 * np.pi * 50 * times_of_samples)
    envelope = speech.rms_envelope(sine, rate, np.array([0.5, 1.0, 1.5, 5.0]), window_s=0.2)
    assert envelope[:3] == pytest.approx(0.8 / np.sqrt(2), rel=1e-3)
    assert envelope[3] == 0.0


# --- natural articulation ---------------------------------------------------------------------

def _natural(seed: int, duration_s: float = 20.0) -> tuple[speech.SpeechPlan, np.random.Generator]:
    rng = np.random.default_rng(seed)
    return speech.plan_speech(rng, duration_s, "natural"), rng


def test_natural_plans_lead_with_the_lips_most_at_utterance_onsets():
    plan, _ = _natural(10)
    assert plan.articulation == "natural"
    phrases = _phrases(plan)
    onsets = np.array([phrase[0].lip_lead_s for phrase in phrases])
    inside = np.array([s.lip_lead_s for phrase in phrases for s in phrase[1:]])
    assert onsets.min() >= 0.15 - 1e-9 and onsets.max() <= 0.25 + 1e-9
    assert inside.min() >= 0.05 - 1e-9 and inside.max() <= 0.25 + 1e-9 and np.median(inside) < np.median(onsets)
    # the lead varies from phrase to phrase
    assert np.std([np.mean([s.lip_lead_s for s in phrase[1:]]) for phrase in phrases if len(phrase) > 1]) > 0.01
    # the mouth is already opening before the first sound of each phrase (not after a bilabial)
    first = [phrase[0] for phrase in phrases if not phrase[0].bilabial]
    before = np.array([s.nucleus_start_s - 0.5 * s.lip_lead_s for s in first])
    assert np.median(speech.mouth_open_curve(plan, before)) > 0.05
    assert speech.plan_speech(np.random.default_rng(10), 20.0).articulation == "lockstep"


def test_lips_are_shut_while_a_voiced_bilabial_sounds():
    plan, rng = _natural(11)
    audio = speech.synthesize_speech(plan, rng).astype(np.float64)
    bilabials = [s for s in plan.syllables if s.bilabial and s.consonant_s >= 0.05]
    assert {s.consonant for s in plan.syllables if s.bilabial} == {"m", "b"} and len(bilabials) >= 3
    for syllable in bilabials:
        middle = syllable.start_s + 0.5 * syllable.consonant_s
        assert speech.mouth_open_curve(plan, np.array([middle]))[0] < 0.05
        window = audio[int((middle - 0.015) * speech.SAMPLE_RATE):int((middle + 0.015) * speech.SAMPLE_RATE)]
        spectrum = np.abs(np.fft.rfft(window * np.hanning(window.size))) ** 2
        frequencies = np.fft.rfftfreq(window.size, 1.0 / speech.SAMPLE_RATE)
        assert np.sqrt(np.mean(window ** 2)) > 0.005                       # it sounds ...
        assert spectrum[frequencies < 500].sum() > 0.8 * spectrum.sum()    # ... voiced, low (murmur, voice bar)


def test_opening_varies_at_equal_loudness():
    plan, _ = _natural(12)
    scales = np.array([s.opening_scale for s in plan.syllables])
    assert scales.min() >= 0.6 and scales.max() <= 1.3 and scales.std() > 0.1
    loudness = np.array([s.loudness for s in plan.syllables])
    assert abs(np.corrcoef(scales, loudness)[0, 1]) < 0.3


def test_natural_mouth_leads_the_loudness_by_one_to_three_frames():
    plan, rng = _natural(13, 12.0)
    audio = speech.synthesize_speech(plan, rng)
    fps = 25.0
    times = np.arange(int(12.0 * fps)) / fps
    mouth = speech.mouth_open_curve(plan, times)
    loudness = speech.rms_envelope(audio, speech.SAMPLE_RATE, times, 1.0 / fps)
    n = len(times)
    scores = {lag: np.corrcoef(mouth[:n - lag], loudness[lag:])[0, 1] for lag in range(0, 6)}
    scores.update({-lag: np.corrcoef(mouth[lag:], loudness[:n - lag])[0, 1] for lag in range(1, 6)})
    assert 1 <= max(scores, key=scores.get) <= 3
    assert max(scores.values()) > 0.5


def test_unknown_articulation_is_refused():
    with pytest.raises(ValueError, match="articulation must be one of"):
        speech.plan_speech(np.random.default_rng(0), 5.0, "mumbled")
