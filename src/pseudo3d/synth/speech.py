"""Speech-like audio synthesised from scratch, and the mouth opening that goes with it.

One random *syllable plan* drives both: syllables of 120-300 ms grouped into words and phrases,
each with a vowel, an optional consonant before it, and a phrase loudness. The audio is a
glottal-pulse source (F0 100-220 Hz with jitter and a falling intonation per phrase) filtered
through the vowel's formant resonators, plus noise bursts for the voiceless consonants.

Two articulation modes (:data:`ARTICULATIONS`) decide how the mouth follows the plan:

``lockstep``
    The mouth opening is the vowel's openness times the same smooth syllable envelope that
    shapes the voiced sound, so mouth and loudness rise and fall together at zero lag. Only
    voiceless consonants.
``natural``
    As in recorded speech, the lips lead the sound: each syllable's opening gesture starts
    :attr:`Syllable.lip_lead_s` before its sound (drawn per phrase, 50-150 ms within a phrase
    and 150-250 ms at the phrase's first syllable, the utterance onset) and its closing
    starts a quarter of that lead before the sound ends. Voiced bilabials *m* and *b* join the
    consonants: the lips are closed while they sound (a nasal murmur, or a voice bar and a
    release burst) and open at the release. How far the lips open varies from syllable to
    syllable at equal loudness (:attr:`Syllable.opening_scale`, 0.6-1.3).

Times are seconds from the start of the plan (the sound's clock); audio is mono float32 at
:data:`SAMPLE_RATE`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray
from scipy.ndimage import gaussian_filter1d
from scipy.signal import butter, lfilter, sosfilt

SAMPLE_RATE = 48_000

# Vowel formants F1-F3 (Hz, adult averages after Peterson & Barney) and how far the jaw opens
# for each, in [0, 1].
VOWELS: dict[str, tuple[tuple[float, float, float], float]] = {
    "a": ((730.0, 1090.0, 2440.0), 1.0),
    "ae": ((660.0, 1720.0, 2410.0), 0.85),
    "o": ((570.0, 840.0, 2410.0), 0.7),
    "e": ((530.0, 1840.0, 2480.0), 0.6),
    "er": ((490.0, 1350.0, 1690.0), 0.5),
    "u": ((300.0, 870.0, 2240.0), 0.35),
    "i": ((270.0, 2290.0, 3010.0), 0.3),
}
FORMANT_BANDWIDTHS_HZ = (80.0, 100.0, 150.0)

# Voiceless consonants as (low, high) noise band in Hz and duration range in seconds.
CONSONANTS: dict[str, tuple[tuple[float, float], tuple[float, float]]] = {
    "s": ((4_000.0, 9_000.0), (0.05, 0.09)),
    "sh": ((2_000.0, 5_000.0), (0.05, 0.09)),
    "f": ((1_500.0, 8_000.0), (0.04, 0.07)),
    "t": ((3_000.0, 7_000.0), (0.015, 0.03)),
    "k": ((1_500.0, 3_500.0), (0.015, 0.03)),
}

# Voiced bilabials (natural articulation only): duration range in seconds. The lips are closed
# while they sound: "m" is a nasal murmur (a low resonance, about 250 Hz), "b" a short voice bar
# (about 150 Hz) ending in a release burst as the lips part.
VOICED_BILABIALS: dict[str, tuple[float, float]] = {"m": (0.06, 0.10), "b": (0.03, 0.06)}
_BILABIAL_CHANCE = 0.25
_NASAL_FORMANT_HZ, _NASAL_BANDWIDTH_HZ = 250.0, 100.0
_VOICE_BAR_HZ, _VOICE_BAR_BANDWIDTH_HZ = 150.0, 80.0
_BURST_S = 0.008

ARTICULATIONS = ("natural", "lockstep")
# Natural articulation: how long the lips start moving before the sound, seconds, drawn per
# phrase (utterance onsets lead most), and the spread of the lip opening at equal loudness.
_ONSET_LEAD_S = (0.15, 0.25)
_PHRASE_LEAD_S = (0.05, 0.15)
_OPENING_SCALE = (0.6, 1.3)
# The lips start closing this fraction of the lead before the syllable's sound ends.
_CLOSING_LEAD_FRACTION = 0.25

# Resolution of the mouth curve before it is sampled at video frame times.
_MOUTH_RATE = 1_000
# Articulator inertia and coarticulation: the jaw and lips cannot follow syllable envelopes
# instantly, so the mouth curve is smoothed by a Gaussian of this width (seconds). At 35 ms the
# curve keeps the syllable rhythm (gain 0.68 at 4 Hz) but not the edges (0.21 at 8 Hz), like
# recorded lip-aperture trajectories, and the mouth no longer snaps shut inside every word.
_MOUTH_SMOOTHING_S = 0.035
# Lips pressing together for a bilabial close faster than the jaw moves (natural articulation).
_CLOSURE_SMOOTHING_S = 0.01


@dataclass(frozen=True)
class Syllable:
    """One syllable: an optional consonant, then a vowel nucleus that fills the rest."""

    start_s: float
    duration_s: float
    vowel: str
    consonant: str | None
    consonant_s: float          # length of the consonant at the start, 0 without one
    loudness: float             # linear amplitude of the vowel, about 0.4-1
    stress: float               # extra jaw opening for accented syllables, 0.75-1
    f0_hz: float                # pitch at the middle of the syllable (intonation included)
    lip_lead_s: float = 0.0     # natural articulation: the lips start moving this long before the sound
    opening_scale: float = 1.0  # natural articulation: how far the lips open, relative to the vowel's norm

    @property
    def bilabial(self) -> bool:
        """A voiced bilabial (m, b): the lips are closed while the consonant sounds."""
        return self.consonant in VOICED_BILABIALS

    @property
    def nucleus_start_s(self) -> float:
        return self.start_s + self.consonant_s

    @property
    def end_s(self) -> float:
        return self.start_s + self.duration_s


@dataclass(frozen=True)
class SpeechPlan:
    """Syllables in time order, the plan's total length, and how the mouth articulates them."""

    syllables: tuple[Syllable, ...]
    duration_s: float
    articulation: str = "lockstep"


def plan_speech(rng: np.random.Generator, duration_s: float, articulation: str = "lockstep") -> SpeechPlan:
    """A random plan of phrases filling ``duration_s`` seconds, starting and ending in silence.

    Phrases of 2-6 words, words of 1-3 syllables back to back, 30-120 ms between words and
    250-700 ms of silence between phrases. ``articulation`` is one of :data:`ARTICULATIONS`;
    ``"lockstep"`` draws exactly the plans of earlier versions (same ``rng`` → same plan).
    """
    if articulation not in ARTICULATIONS:
        raise ValueError(f"articulation must be one of {ARTICULATIONS}, got {articulation!r}")
    natural = articulation == "natural"
    base_f0 = rng.uniform(110.0, 190.0)
    end_limit = duration_s - 0.15
    syllables: list[Syllable] = []
    t = rng.uniform(0.15, 0.45)
    while t < end_limit - 0.3:
        phrase = _plan_phrase(rng, t, end_limit, natural)
        if not phrase:
            break
        if natural:
            phrase = _articulate_phrase(rng, phrase)
        phrase_start, phrase_end = phrase[0].start_s, phrase[-1].end_s
        for syllable in phrase:
            # Declination: pitch falls through the phrase, stressed syllables a little higher.
            progress = (syllable.start_s + 0.5 * syllable.duration_s - phrase_start) / (phrase_end - phrase_start)
            f0 = base_f0 * (1.15 - 0.3 * progress) * (1.0 + 0.25 * (syllable.stress - 0.75))
            syllables.append(replace(syllable, f0_hz=float(np.clip(f0, 95.0, 225.0))))
        t = phrase_end + rng.uniform(0.25, 0.70)
    return SpeechPlan(tuple(syllables), float(duration_s), articulation)


def _articulate_phrase(rng: np.random.Generator, phrase: list[Syllable]) -> list[Syllable]:
    """Natural articulation of one phrase: the lips' lead (larger at the utterance onset) and how
    far they open, per syllable."""
    onset_lead = rng.uniform(*_ONSET_LEAD_S)
    phrase_lead = rng.uniform(*_PHRASE_LEAD_S)
    articulated = []
    for index, syllable in enumerate(phrase):
        lead = onset_lead if index == 0 else float(np.clip(phrase_lead * rng.uniform(0.8, 1.2), 0.05, 0.25))
        articulated.append(replace(syllable, lip_lead_s=float(lead),
                                   opening_scale=float(rng.uniform(*_OPENING_SCALE))))
    return articulated


def _plan_phrase(rng: np.random.Generator, start_s: float, end_limit_s: float, natural: bool = False) -> list[Syllable]:
    """Syllables of one phrase from ``start_s``, none ending after ``end_limit_s``; pitch not set.
    ``natural`` adds the voiced bilabials to the consonants (with their own draws, so that
    ``natural=False`` draws as before)."""
    vowels, consonants = list(VOWELS), list(CONSONANTS)
    phrase_loudness = rng.uniform(0.45, 1.0)
    syllables: list[Syllable] = []
    t = start_s
    for word in range(int(rng.integers(2, 7))):
        if word > 0:
            t += rng.uniform(0.03, 0.12)
        for _ in range(int(rng.integers(1, 4))):
            duration = rng.uniform(0.12, 0.30)
            if t + duration > end_limit_s:
                return syllables
            consonant = consonants[rng.integers(len(consonants))] if rng.random() < 0.45 else None
            if natural and rng.random() < _BILABIAL_CHANCE:
                consonant = "m" if rng.random() < 0.5 else "b"
            consonant_s = 0.0
            if consonant is not None:
                low, high = VOICED_BILABIALS[consonant] if consonant in VOICED_BILABIALS else CONSONANTS[consonant][1]
                consonant_s = min(rng.uniform(low, high), 0.35 * duration)
            vowel = vowels[rng.integers(len(vowels))]
            syllables.append(Syllable(t, duration, vowel, consonant, consonant_s,
                                      loudness=phrase_loudness * rng.uniform(0.8, 1.0),
                                      stress=rng.uniform(0.75, 1.0), f0_hz=0.0))
            t += duration
    return syllables


def _nucleus_envelope(times: NDArray[np.float64], syllable: Syllable) -> NDArray[np.float64]:
    """Smooth 0-1-0 envelope over the vowel nucleus: raised-cosine rise and fall, flat top."""
    start, end = syllable.nucleus_start_s, syllable.end_s
    ramp = 0.4 * (end - start)
    rise = np.clip((times - start) / ramp, 0.0, 1.0)
    fall = np.clip((end - times) / ramp, 0.0, 1.0)
    return 0.25 * (1.0 - np.cos(np.pi * rise)) * (1.0 - np.cos(np.pi * fall))


def _gesture_envelope(times: NDArray[np.float64], start: float, end: float) -> NDArray[np.float64]:
    """Smooth 0-1-0 envelope over [start, end]: raised-cosine rise and fall, flat top."""
    ramp = 0.4 * (end - start)
    rise = np.clip((times - start) / ramp, 0.0, 1.0)
    fall = np.clip((end - times) / ramp, 0.0, 1.0)
    return 0.25 * (1.0 - np.cos(np.pi * rise)) * (1.0 - np.cos(np.pi * fall))


def mouth_open_curve(plan: SpeechPlan, times_s: NDArray[np.float64]) -> NDArray[np.float64]:
    """Mouth opening in [0, 1] at ``times_s`` (seconds, any shape).

    Lockstep: openness x the syllable's sound envelope. Natural: openness x opening scale over a
    gesture that starts :attr:`Syllable.lip_lead_s` before the nucleus sounds (at the release,
    after a voiced bilabial) and ends a quarter of that before the sound does; overlapping
    gestures take the larger opening, and the lips are shut while a voiced bilabial sounds.
    """
    grid = np.arange(0.0, plan.duration_s + 1.0 / _MOUTH_RATE, 1.0 / _MOUTH_RATE)
    curve = np.zeros_like(grid)
    natural = plan.articulation == "natural"
    closed = np.zeros_like(grid, dtype=bool)
    for syllable in plan.syllables:
        openness = VOWELS[syllable.vowel][1] * syllable.stress
        if not natural:
            span = (grid >= syllable.nucleus_start_s) & (grid <= syllable.end_s)
            curve[span] = openness * _nucleus_envelope(grid[span], syllable)
            continue
        start = syllable.nucleus_start_s - (0.0 if syllable.bilabial else syllable.lip_lead_s)
        end = syllable.end_s - _CLOSING_LEAD_FRACTION * syllable.lip_lead_s
        span = (grid >= start) & (grid <= end)
        gesture = min(openness * syllable.opening_scale, 1.0) * _gesture_envelope(grid[span], start, end)
        curve[span] = np.maximum(curve[span], gesture)
        if syllable.bilabial:       # the lips shut a little before the murmur and part at the release
            closed |= (grid >= syllable.start_s - 0.5 * syllable.lip_lead_s) & (grid <= syllable.nucleus_start_s)
    curve[closed] = 0.0
    curve = gaussian_filter1d(curve, _MOUTH_SMOOTHING_S * _MOUTH_RATE, mode="nearest")
    if closed.any():    # lips pressed together are shut, however the jaw moves around them
        curve *= 1.0 - gaussian_filter1d(closed.astype(np.float64), _CLOSURE_SMOOTHING_S * _MOUTH_RATE, mode="nearest")
    return np.clip(np.interp(np.asarray(times_s, np.float64), grid, curve), 0.0, 1.0)


def _glottal_source(f0_hz: NDArray[np.float64], rng: np.random.Generator) -> NDArray[np.float64]:
    """Derivative of a Rosenberg glottal flow pulse train following ``f0_hz`` (one per sample)."""
    # Jitter: a slow random wobble of about 1 % on the instantaneous pitch.
    wobble = gaussian_filter1d(rng.standard_normal(f0_hz.size), 0.004 * SAMPLE_RATE)
    wobble *= 0.01 / max(float(np.std(wobble)), 1e-12)
    phase = np.cumsum(f0_hz * (1.0 + wobble) / SAMPLE_RATE) % 1.0
    opening, closing = 0.4, 0.16     # fractions of the period
    flow = np.where(
        phase < opening,
        0.5 * (1.0 - np.cos(np.pi * phase / opening)),
        np.where(phase < opening + closing, np.cos(0.5 * np.pi * (phase - opening) / closing), 0.0),
    )
    return np.diff(flow, prepend=0.0)


def _resonate(signal: NDArray[np.float64], formants: tuple[float, float, float]) -> NDArray[np.float64]:
    """Cascade of two-pole resonators, one per formant, each with unit gain at 0 Hz."""
    for frequency, bandwidth in zip(formants, FORMANT_BANDWIDTHS_HZ):
        radius = np.exp(-np.pi * bandwidth / SAMPLE_RATE)
        a = [1.0, -2.0 * radius * np.cos(2.0 * np.pi * frequency / SAMPLE_RATE), radius * radius]
        signal = lfilter([sum(a)], a, signal)
    return signal


def synthesize_speech(plan: SpeechPlan, rng: np.random.Generator) -> NDArray[np.float32]:
    """Mono speech for ``plan``, ``(round(duration_s * SAMPLE_RATE),)`` float32, peak 0.5."""
    n_samples = int(round(plan.duration_s * SAMPLE_RATE))
    times = np.arange(n_samples) / SAMPLE_RATE
    f0 = np.full(n_samples, 150.0)
    if plan.syllables:
        centres = np.array([s.start_s + 0.5 * s.duration_s for s in plan.syllables])
        f0 = np.interp(times, centres, [s.f0_hz for s in plan.syllables])
    source = _glottal_source(f0, rng)
    # Breathiness: a little noise rides on the voiced source.
    source += 0.02 * np.std(source) * rng.standard_normal(n_samples)

    audio = np.zeros(n_samples)
    settle = int(0.02 * SAMPLE_RATE)       # resonators start early so their onset is not heard
    for syllable in plan.syllables:
        first = max(int(syllable.nucleus_start_s * SAMPLE_RATE) - settle, 0)
        last = min(int(np.ceil(syllable.end_s * SAMPLE_RATE)) + 1, n_samples)
        if last - first <= settle:
            continue
        voiced = _resonate(source[first:last], VOWELS[syllable.vowel][0])
        envelope = _nucleus_envelope(times[first:last], syllable)
        level = np.sqrt(np.sum((voiced * envelope) ** 2) / max(np.sum(envelope ** 2), 1e-12))
        # Open vowels are intrinsically louder than close ones.
        gain = syllable.loudness * (0.5 + 0.5 * VOWELS[syllable.vowel][1])
        audio[first:last] += gain * envelope * voiced / max(level, 1e-12)
        if syllable.bilabial:
            first, voiced_consonant = _voiced_bilabial(syllable, source, n_samples, rng)
            audio[first:first + voiced_consonant.size] += voiced_consonant
        elif syllable.consonant is not None:
            first, burst = _consonant(syllable, n_samples, rng)
            audio[first:first + burst.size] += burst
    peak = float(np.max(np.abs(audio))) if n_samples else 0.0
    if peak > 0.0:
        audio *= 0.5 / peak
    return audio.astype(np.float32)


def _consonant(syllable: Syllable, n_samples: int, rng: np.random.Generator) -> tuple[int, NDArray[np.float64]]:
    """A band-limited noise burst at the start of ``syllable``: (first sample, samples)."""
    first = min(int(syllable.start_s * SAMPLE_RATE), n_samples)
    length = min(int(syllable.consonant_s * SAMPLE_RATE), n_samples - first)
    if length < 8 or syllable.consonant is None:
        return first, np.zeros(0)
    low, high = CONSONANTS[syllable.consonant][0]
    sos = butter(4, [low, min(high, 0.45 * SAMPLE_RATE)], btype="bandpass", fs=SAMPLE_RATE, output="sos")
    noise = sosfilt(sos, rng.standard_normal(length + 256))[256:]   # drop the filter's start-up
    noise /= max(float(np.std(noise)), 1e-12)
    shape = np.sin(np.pi * np.arange(length) / length) ** 0.5
    return first, 0.25 * syllable.loudness * shape * noise


def _voiced_bilabial(syllable: Syllable, source: NDArray[np.float64], n_samples: int,
                    rng: np.random.Generator) -> tuple[int, NDArray[np.float64]]:
    """The closed-lip sound of an *m* (nasal murmur) or a *b* (voice bar, then a release burst)
    at the start of ``syllable``: (first sample, samples). Voiced, so it follows the pitch."""
    first = min(int(syllable.start_s * SAMPLE_RATE), n_samples)
    length = min(int(syllable.consonant_s * SAMPLE_RATE), n_samples - first)
    if length < 8:
        return first, np.zeros(0)
    if syllable.consonant == "m":
        frequency, bandwidth, level = _NASAL_FORMANT_HZ, _NASAL_BANDWIDTH_HZ, 0.35
    else:
        frequency, bandwidth, level = _VOICE_BAR_HZ, _VOICE_BAR_BANDWIDTH_HZ, 0.15
    radius = np.exp(-np.pi * bandwidth / SAMPLE_RATE)
    a = [1.0, -2.0 * radius * np.cos(2.0 * np.pi * frequency / SAMPLE_RATE), radius * radius]
    voiced = lfilter([sum(a)], a, source[first:first + length])
    voiced /= max(float(np.std(voiced)), 1e-12)
    ramp = np.minimum(1.0, np.minimum(np.arange(length), np.arange(length)[::-1]) / (0.2 * length))
    sound = level * syllable.loudness * np.sin(0.5 * np.pi * ramp) * voiced
    if syllable.consonant == "b":   # the lips part with a short broadband burst
        burst = min(int(_BURST_S * SAMPLE_RATE), length)
        sound[length - burst:] += 0.2 * syllable.loudness * rng.standard_normal(burst) * np.hanning(burst)
    return first, sound


def rms_envelope(audio: NDArray[np.floating], sample_rate: int, times_s: NDArray[np.float64],
                 window_s: float) -> NDArray[np.float64]:
    """RMS of ``audio`` in windows of ``window_s`` seconds centred on ``times_s``; 0 past the ends."""
    squared = np.concatenate([[0.0], np.cumsum(np.asarray(audio, np.float64) ** 2)])
    half = 0.5 * window_s * sample_rate
    centres = np.asarray(times_s, np.float64) * sample_rate
    first = np.clip(np.round(centres - half).astype(np.int64), 0, len(audio))
    last = np.clip(np.round(centres + half).astype(np.int64), 0, len(audio))
    width = max(int(round(2 * half)), 1)
    return np.sqrt(np.maximum(squared[last] - squared[first], 0.0) / width)
