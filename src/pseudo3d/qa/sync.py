"""Audio-visual synchrony: is the speech shifted against the mouth, and is it this mouth's speech?

The built-in estimator needs no weights. It correlates how fast the mouth moves with how fast the
speech's loudness changes, over lags of up to ``max_lag_s`` each way, and reports the best lag
with an uncertainty, so that the QA filter can reject only what it is confident about.

**Mouth signal** (from the tracked 2D landmarks, every backend has them): the rates of change of
four lip measurements, each over the inter-ocular distance (outer eye corners 33 and 263, median
over two seconds so that zooms are followed and jitter is not): the lower-lip drop (nose tip 1 to
lower lip 17), the jaw drop (nose tip 1 to chin 152), the outer-lip opening (mean of 0–17, 37–84,
267–314) and the rounding (that opening over the mouth width 61–291). Each rate is robustly
standardised (median and MAD, clipped at ±4) and the four are averaged. The inner-lip gap is
left out: on real footage teeth and smiles make it the least reliable of the lip measurements.

**Audio signal**: the rates of change of the log energy in three speech bands (800–4000,
800–1500 and 1500–3000 Hz; 25 ms Hann windows every 10 ms, averaged over each frame's span
centred on its instant), standardised and averaged in the same way. Rates of change, not levels:
onsets and releases are what lips and sound share; how wide a mouth opens at a given loudness is
not.

**Offset.** The overlap-normalised cross-correlation of the two signals, ``r(lag) =
mean_t m[t] a[t + lag]``, peaks at the raw lag (refined by a parabola; positive when the audio
comes later than the mouth). Natural speech is not in lockstep: the lips start to move before
the sound, by 100–300 ms at utterance onsets and less within phrases. Measured on in-sync real
talking-head clips this puts the peak at +36 ms (median of the 22 with a significant peak; 5–95 %:
−72 … +131 ms), so the reported offset is the raw lag minus :data:`NATURAL_LEAD_S`: about zero
for natural in-sync speech, and the injected shift for a clip whose audio was shifted.

**Interval.** A moving-block bootstrap (blocks of :data:`BLOCK_S`, :data:`BOOTSTRAP_DRAWS`
resamples, which keep the pairing of mouth and audio within a block) gives the spread of the
peak lag; its central :data:`CONFIDENCE` interval, shifted by the natural lead and widened on
each side by :data:`NATURAL_LEAD_ALLOWANCE_S` (how far natural speech's own lead varies from clip
to clip; more for clips under :data:`ALLOWANCE_REFERENCE_S`), is the offset's interval.

**Significance.** Against the null of unrelated audio: the largest correlation that an audio
signal independent of the mouth, with the same autocorrelation as this one, would reach anywhere
in the search window. Under that null the correlations at the searched lags are jointly Gaussian
with a covariance given by Bartlett's formula from the two signals' own autocorrelations
(tapered, up to 2 s); :data:`NULL_DRAWS` draws of that Gaussian give the null distribution of the
peak, and the p-value is the share at or above the observed peak. In clips of at least twice
:data:`DRIFT_WINDOW_S` the same test also runs in each window of about that length (the lag may
drift within a long recording), and ``av_sync_p_value`` is the smallest p-value times the number
of tests (Bonferroni). Circularly shifted or time-reversed audio from the same clip was tried
first as the null: its window maxima depend too much on each other in clips of a few seconds,
and unrelated audio came out at p ≤ 0.01 in 16 % of real dubbed pairs; with the Gaussian
null 5.1 % of 650 real dubbed pairs have p ≤ 0.05 (1.1 % p ≤ 0.01).

Everything is deterministic (fixed seeds), so rebuilds write identical manifests. See docs/qa.md
for what the estimator can and cannot detect.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy.ndimage import median_filter

UPPER_INNER_LIP, LOWER_INNER_LIP = 13, 14
OUTER_EYE_CORNERS = (33, 263)
NOSE_TIP, CHIN = 1, 152
OUTER_LIP_PAIRS = ((0, 17), (37, 84), (267, 314))
MOUTH_CORNERS = (61, 291)
LOWER_LIP = 17

SPEECH_BANDS_HZ = ((800.0, 4000.0), (800.0, 1500.0), (1500.0, 3000.0))
WINDOW_S, HOP_S = 0.025, 0.010
# Log energies are floored 50 dB below the clip's loud level, so that digital silence and faint
# noise are flat instead of a stream of huge random log ratios.
FLOOR_BELOW_LOUD_DB = 50.0
# Audio activity ("speech") for av_speech_s: a 25 ms window within this many dB of the clip's loud
# level (95th percentile of window levels) and above ACTIVE_MIN_DBFS.
ACTIVE_WITHIN_DB = 30.0
ACTIVE_MIN_DBFS = -55.0
SCALE_WINDOW_S = 2.0
CLIP_Z = 4.0

NATURAL_LEAD_S = 0.04
"""How much later than the mouth's motion the speech's loudness changes in natural in-sync
speech, as this estimator sees it (median over in-sync real clips); subtracted from the raw lag."""
NATURAL_LEAD_ALLOWANCE_S = 0.03
"""How far that natural lead varies between in-sync clips of :data:`ALLOWANCE_REFERENCE_S` or
more, added to each side of the interval: about two standard deviations of the clip-level lead of
8-10 s clips of the synthetic natural corpus (13 ms); with the 0.08 s tolerance it keeps every
in-sync real clip measured (docs/qa.md). A shorter clip averages fewer utterances, so its
allowance grows as ``sqrt(ALLOWANCE_REFERENCE_S / duration)``."""
ALLOWANCE_REFERENCE_S = 8.0
CONFIDENCE = 0.95
BLOCK_S = 0.5
BOOTSTRAP_DRAWS = 200
NULL_DRAWS = 2000
NULL_MAX_LAG_S = 2.0
MIN_FRAMES = 20
DRIFT_WINDOW_S = 10.0


@dataclass(frozen=True)
class SyncEstimate:
    """The built-in estimator's result for one clip (NaN where it could not be measured)."""

    av_offset_frames: float
    """Offset in the clip's frames; positive when the audio lags the picture."""
    av_offset_s: float
    """The same in seconds: the raw peak lag minus :data:`NATURAL_LEAD_S`."""
    av_offset_ci_low_s: float
    """Lower end of the offset's interval, seconds (the bootstrap interval widened by
    :func:`natural_lead_allowance_s`)."""
    av_offset_ci_high_s: float
    av_sync_strength: float
    """Peak correlation between the mouth-motion and speech-onset signals, −1..1."""
    av_sync_p_value: float
    """Chance that audio unrelated to this mouth peaks at least as high anywhere in the search
    window (in clips of 20 s or more: in the whole clip or any 10 s window, Bonferroni-corrected);
    small = a real audio-visual peak."""
    av_speech_s: float
    """Seconds of audio activity (within 30 dB of the clip's loud level, above −55 dBFS)."""
    av_mouth_motion: float
    """How far the lips move: the 5th-to-95th percentile range of the outer-lip opening, in
    inter-ocular distances."""

    def as_metrics(self) -> dict[str, float]:
        return {name: float(value) for name, value in asdict(self).items()}


def not_measured(speech_s: float = math.nan, mouth_motion: float = math.nan) -> SyncEstimate:
    """An estimate with nothing measured (no audio, silence, still lips, too short a clip)."""
    nan = math.nan
    return SyncEstimate(nan, nan, nan, nan, nan, nan, float(speech_s), float(mouth_motion))


# --- the mouth -------------------------------------------------------------------------------

def mouth_opening(landmarks: np.ndarray) -> np.ndarray:
    """(T,) float32 inner-lip gap / outer-eye-corner distance from (T, 478, 2+) landmarks
    (the sample's ``mouth_open`` member)."""
    gap = np.linalg.norm(landmarks[:, UPPER_INNER_LIP, :2] - landmarks[:, LOWER_INNER_LIP, :2], axis=-1)
    eyes = np.linalg.norm(landmarks[:, OUTER_EYE_CORNERS[0], :2] - landmarks[:, OUTER_EYE_CORNERS[1], :2], axis=-1)
    return (gap / np.maximum(eyes, 1e-6)).astype(np.float32)


def _face_scale(landmarks: np.ndarray, fps: float) -> np.ndarray:
    """(T,) inter-ocular distance in pixels, median-filtered over :data:`SCALE_WINDOW_S`."""
    eyes = np.linalg.norm(landmarks[:, OUTER_EYE_CORNERS[0], :2] - landmarks[:, OUTER_EYE_CORNERS[1], :2], axis=-1)
    size = max(1, int(round(SCALE_WINDOW_S * fps)) | 1)
    return np.maximum(median_filter(eyes.astype(np.float64), size=size, mode="nearest"), 1e-6)


def lip_measurements(landmarks: np.ndarray, fps: float) -> dict[str, np.ndarray]:
    """(T,) lip measurements in inter-ocular distances from (T, 478, 2+) pixel landmarks:
    ``lower_lip_drop``, ``jaw_drop``, ``outer_opening`` and ``rounding`` (outer opening over
    mouth width, unitless)."""
    points = np.asarray(landmarks, np.float64)[..., :2]
    scale = _face_scale(points, fps)

    def distance(a: int, b: int) -> np.ndarray:
        return np.linalg.norm(points[:, a] - points[:, b], axis=-1) / scale

    outer = np.mean([distance(a, b) for a, b in OUTER_LIP_PAIRS], axis=0)
    width = np.maximum(distance(*MOUTH_CORNERS), 1e-6)
    return {"lower_lip_drop": distance(NOSE_TIP, LOWER_LIP), "jaw_drop": distance(NOSE_TIP, CHIN),
            "outer_opening": outer, "rounding": outer / width}


def mouth_motion(landmarks: np.ndarray, fps: float) -> float:
    """The 5th-to-95th percentile range of the outer-lip opening, in inter-ocular distances:
    0.08–0.30 on the talking real clips measured, 0.13–0.19 on the synthetic talking face, and
    0.016–0.040 on a synthetic face that does not move its lips (tracker noise and head turns)."""
    outer = lip_measurements(landmarks, fps)["outer_opening"]
    low, high = np.percentile(outer, [5, 95])
    return float(high - low)


def _robust_standard(values: np.ndarray) -> np.ndarray | None:
    """Median/MAD standardised and clipped at ±:data:`CLIP_Z`; None for a flat series."""
    values = np.asarray(values, np.float64)
    centre = np.median(values)
    spread = 1.4826 * np.median(np.abs(values - centre))
    if not spread > 1e-12:
        spread = float(values.std())
    if not spread > 1e-12 or not np.isfinite(spread):
        return None
    return np.clip((values - centre) / spread, -CLIP_Z, CLIP_Z)


def _composite(series: list[np.ndarray]) -> np.ndarray | None:
    """Mean of the robustly standardised rates of change, standardised (mean 0, std 1)."""
    standardised = [_robust_standard(np.gradient(s)) for s in series if len(s) >= 2]
    rates = [r for r in standardised if r is not None]
    if not rates:
        return None
    mean = np.mean(rates, axis=0)
    mean = mean - mean.mean()
    spread = mean.std()
    return None if not spread > 1e-12 else mean / spread


def mouth_signal(landmarks: np.ndarray, fps: float) -> np.ndarray | None:
    """(T,) standardised mouth-motion signal (see the module docstring); None if the lips never move."""
    return _composite(list(lip_measurements(landmarks, fps).values()))


# --- the audio -------------------------------------------------------------------------------

def _windows(audio: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Power spectra (W, F) of 25 ms Hann windows every 10 ms, centred at ``w * hop``; their
    frequencies (F,) and the hop in seconds."""
    window = max(int(round(WINDOW_S * sample_rate)), 8)
    hop = max(int(round(HOP_S * sample_rate)), 1)
    padded = np.concatenate([np.zeros(window // 2), np.asarray(audio, np.float64), np.zeros(window - window // 2)])
    frames = sliding_window_view(padded, window)[::hop]
    spectra = np.abs(np.fft.rfft(frames * np.hanning(window), axis=1)) ** 2 / window
    return spectra, np.fft.rfftfreq(window, 1.0 / sample_rate), hop / sample_rate


def _per_frame(values: np.ndarray, hop_s: float, fps: float, n_frames: int) -> np.ndarray:
    """Mean of the 10 ms values whose centres lie within half a frame of each frame's instant."""
    centres = np.arange(len(values)) * hop_s
    instants = np.arange(n_frames) / fps
    first = np.clip(np.searchsorted(centres, instants - 0.5 / fps), 0, len(values) - 1)
    last = np.maximum(np.clip(np.searchsorted(centres, instants + 0.5 / fps), 1, len(values)), first + 1)
    sums = np.concatenate([[0.0], np.cumsum(values)])
    return (sums[last] - sums[first]) / (last - first)


def audio_activity_s(audio: np.ndarray, sample_rate: int) -> float:
    """Seconds of audio activity: 25 ms windows within :data:`ACTIVE_WITHIN_DB` dB of the clip's
    loud level (95th percentile) and above :data:`ACTIVE_MIN_DBFS` dBFS (speech, for speech clips)."""
    audio = np.asarray(audio, np.float64)
    if audio.size == 0:
        return 0.0
    window = max(int(round(WINDOW_S * sample_rate)), 8)
    hop = max(int(round(HOP_S * sample_rate)), 1)
    padded = np.concatenate([np.zeros(window // 2), audio, np.zeros(window - window // 2)])
    power = np.mean(sliding_window_view(padded, window)[::hop] ** 2, axis=1)
    level = 10.0 * np.log10(np.maximum(power, 1e-20))
    loud = np.percentile(level, 95)
    active = (level >= loud - ACTIVE_WITHIN_DB) & (level >= ACTIVE_MIN_DBFS)
    return float(np.count_nonzero(active) * hop / sample_rate)


def audio_signal(audio: np.ndarray, sample_rate: int, fps: float, n_frames: int) -> np.ndarray | None:
    """(n_frames,) standardised speech-onset signal (see the module docstring); None for silence."""
    audio = np.asarray(audio, np.float64)
    if audio.size == 0 or not np.any(audio):
        return None
    spectra, frequencies, hop_s = _windows(audio, sample_rate)
    bands = [spectra[:, (frequencies >= low) & (frequencies < high)].sum(axis=1) for low, high in SPEECH_BANDS_HZ]
    loud = max(float(np.percentile(spectra.sum(axis=1), 95)), 1e-20)
    floor = loud * 10.0 ** (-FLOOR_BELOW_LOUD_DB / 10.0)
    return _composite([_per_frame(np.log(band + floor), hop_s, fps, n_frames) for band in bands])


# --- lags, bootstrap, null ---------------------------------------------------------------------

def _lag_products(mouth: np.ndarray, audio: np.ndarray, max_lag: int) -> tuple[np.ndarray, np.ndarray]:
    """(2L+1, T) products mouth[t]·audio[t + lag] (0 where t + lag is outside) and their 0/1 counts."""
    n = len(mouth)
    products = np.zeros((2 * max_lag + 1, n))
    counts = np.zeros((2 * max_lag + 1, n))
    for index, lag in enumerate(range(-max_lag, max_lag + 1)):
        first, last = max(0, -lag), n - max(0, lag)
        products[index, first:last] = mouth[first:last] * audio[first + lag:last + lag]
        counts[index, first:last] = 1.0
    return products, counts


def _refined_peak(curve: np.ndarray) -> float:
    """Index of the curve's maximum, refined to a fraction by a parabola through its neighbours."""
    best = int(np.argmax(curve))
    if 0 < best < len(curve) - 1:
        left, centre, right = curve[best - 1:best + 2]
        curvature = left - 2.0 * centre + right
        if curvature < 0:
            return best + 0.5 * (left - right) / curvature
    return float(best)


def lagged_correlations(mouth: np.ndarray, audio: np.ndarray, max_lag: int) -> np.ndarray:
    """(2·max_lag + 1,) overlap-normalised ``mean_t mouth[t]·audio[t + lag]``, lag = −L..L, of two
    standardised (T,) series."""
    products, counts = _lag_products(np.asarray(mouth, np.float64), np.asarray(audio, np.float64), max_lag)
    return products.sum(axis=1) / np.maximum(counts.sum(axis=1), 1.0)


def bootstrap_lags(mouth: np.ndarray, audio: np.ndarray, max_lag: int, block: int,
                   draws: int = BOOTSTRAP_DRAWS, seed: int = 0) -> np.ndarray:
    """(draws,) refined peak lags (frames) of moving-block bootstrap resamples: the clip is cut
    into blocks of ``block`` frames, which are drawn with replacement; a product belongs to the
    block of its mouth frame, so mouth and audio stay paired within each block."""
    products, counts = _lag_products(mouth, audio, max_lag)
    n = len(mouth)
    n_blocks = max(1, int(round(n / max(block, 1))))
    edges = np.linspace(0, n, n_blocks + 1).round().astype(int)[:-1]
    block_products = np.add.reduceat(products, edges, axis=1)
    block_counts = np.add.reduceat(counts, edges, axis=1)
    weights = np.random.default_rng(seed).multinomial(n_blocks, np.full(n_blocks, 1.0 / n_blocks), size=draws)
    curves = (weights @ block_products.T) / np.maximum(weights @ block_counts.T, 1.0)
    return np.array([_refined_peak(curve) for curve in curves]) - max_lag


def _autocovariance(values: np.ndarray, max_lag: int) -> np.ndarray:
    """(2·max_lag + 1,) ``sum_t v[t] v[t + k] / T`` for k = −max_lag..max_lag."""
    n = len(values)
    size = 1 << int(np.ceil(np.log2(2 * n)))
    spectrum = np.fft.rfft(values, size)
    circular = np.fft.irfft(spectrum * np.conj(spectrum), size) / n
    return np.concatenate([circular[size - max_lag:], circular[:max_lag + 1]])


def null_peak_p_value(mouth: np.ndarray, audio: np.ndarray, max_lag: int, peak: float, null_max_lag: int,
                      draws: int = NULL_DRAWS, seed: int = 0) -> float:
    """P(max over lags of the correlation ≥ ``peak``) for audio independent of the mouth with this
    audio's autocorrelation: the correlations at lags −L..L are jointly Gaussian with covariance
    ``cov(l1, l2) = sum_k w(k) ρ_m(k) ρ_a(k + l1 − l2) / sqrt(n(l1) n(l2))`` (Bartlett; ``w`` a
    triangular taper over ``|k| ≤ null_max_lag``, ``n(l)`` the overlap at lag l)."""
    n = len(mouth)
    reach = min(null_max_lag, n - 1)
    span = reach + 2 * max_lag
    rho_m = _autocovariance(mouth, span)
    rho_a = _autocovariance(audio, span)
    ks = np.arange(-reach, reach + 1)
    taper = 1.0 - np.abs(ks) / (reach + 1)
    lags = np.arange(-max_lag, max_lag + 1)
    by_difference = {d: float(np.sum(taper * rho_m[span + ks] * rho_a[span + ks + d]))
                     for d in range(-2 * max_lag, 2 * max_lag + 1)}
    overlap = (n - np.abs(lags)).astype(np.float64)
    covariance = np.array([[by_difference[a - b] for b in lags] for a in lags]) / np.sqrt(np.outer(overlap, overlap))
    values, vectors = np.linalg.eigh(covariance)
    root = vectors * np.sqrt(np.clip(values, 0.0, None))
    maxima = (np.random.default_rng(seed).standard_normal((draws, len(lags))) @ root.T).max(axis=1)
    return float((1 + np.count_nonzero(maxima >= peak)) / (1 + draws))


def sync_p_value(mouth: np.ndarray, audio: np.ndarray, max_lag: int, null_max_lag: int, window: int) -> float:
    """``av_sync_p_value`` of two standardised (T,) series: the whole clip's peak p-value and, for
    ``T >= 2 * window``, that of each of ``T // window`` equal windows; the smallest times their
    number, at most 1."""
    curve = lagged_correlations(mouth, audio, max_lag)
    p_values = [null_peak_p_value(mouth, audio, max_lag, float(curve.max()), null_max_lag)]
    n = len(mouth)
    if window >= MIN_FRAMES and n >= 2 * window:
        edges = np.linspace(0, n, n // window + 1).round().astype(int)
        for first, last in zip(edges[:-1], edges[1:]):
            part = [values[first:last] - values[first:last].mean() for values in (mouth, audio)]
            if min(values.std() for values in part) <= 1e-12:
                continue
            part = [values / values.std() for values in part]
            lag = max(1, min(max_lag, (last - first) // 3))
            peak = float(lagged_correlations(part[0], part[1], lag).max())
            p_values.append(null_peak_p_value(part[0], part[1], lag, peak, null_max_lag))
    return float(min(1.0, len(p_values) * min(p_values)))


# --- the estimate --------------------------------------------------------------------------------

def natural_lead_allowance_s(duration_s: float) -> float:
    """The natural-lead allowance for a clip of ``duration_s`` seconds (see
    :data:`NATURAL_LEAD_ALLOWANCE_S`)."""
    return NATURAL_LEAD_ALLOWANCE_S * math.sqrt(max(1.0, ALLOWANCE_REFERENCE_S / max(duration_s, 1e-9)))


def estimate_sync(mouth: np.ndarray, audio: np.ndarray, fps: float, max_lag_s: float,
                  speech_s: float = math.nan, motion: float = math.nan) -> SyncEstimate:
    """The estimate from two (T,) signals sampled at ``fps`` (mouth motion, speech onsets; any
    scale: they are standardised here); positive offsets mean the audio lags.

    The search covers ``±max_lag_s`` seconds, at most a third of the clip each way.
    """
    mouth = np.asarray(mouth, np.float64)
    audio = np.asarray(audio, np.float64)
    if mouth.shape != audio.shape or mouth.ndim != 1:
        raise ValueError(f"mouth and audio must be (T,) series of one length, got {mouth.shape} and {audio.shape}")
    n = len(mouth)
    standard = []
    for values in (mouth, audio):
        values = values - values.mean()
        spread = values.std()
        standard.append(values / spread if spread > 1e-12 and np.isfinite(spread) else None)
    standard_mouth, standard_audio = standard
    if n < MIN_FRAMES or standard_mouth is None or standard_audio is None:
        return not_measured(speech_s, motion)
    mouth, audio = standard_mouth, standard_audio
    max_lag = max(1, min(int(round(max_lag_s * fps)), n // 3))
    curve = lagged_correlations(mouth, audio, max_lag)
    raw = _refined_peak(curve) - max_lag
    lags = bootstrap_lags(mouth, audio, max_lag, int(round(BLOCK_S * fps)))
    low, high = np.quantile(lags, [(1.0 - CONFIDENCE) / 2.0, (1.0 + CONFIDENCE) / 2.0])
    p_value = sync_p_value(mouth, audio, max_lag, int(round(NULL_MAX_LAG_S * fps)), int(round(DRIFT_WINDOW_S * fps)))
    offset_s = raw / fps - NATURAL_LEAD_S
    allowance = natural_lead_allowance_s(n / fps)
    return SyncEstimate(
        av_offset_frames=offset_s * fps, av_offset_s=offset_s,
        av_offset_ci_low_s=low / fps - NATURAL_LEAD_S - allowance,
        av_offset_ci_high_s=high / fps - NATURAL_LEAD_S + allowance,
        av_sync_strength=float(curve.max()), av_sync_p_value=p_value,
        av_speech_s=float(speech_s), av_mouth_motion=float(motion))


def av_sync(landmarks: np.ndarray, audio: np.ndarray, sample_rate: int, fps: float,
            max_lag_s: float) -> SyncEstimate:
    """The built-in estimate for one clip.

    Args:
        landmarks: (T, 478, 2+) tracked landmarks in pixels (NaN-free, e.g. ``landmarks_2d_raw``).
        audio: (S,) mono float samples in [−1, 1] covering the clip (``audio.flac``).
        sample_rate: of ``audio``, Hz.
        fps: frame rate of ``landmarks``.
        max_lag_s: search range each way, seconds.

    Returns:
        A :class:`SyncEstimate`; offset, interval, strength and p-value are NaN for silence, a
        face whose lips never move, or clips under :data:`MIN_FRAMES` frames.
    """
    landmarks = np.asarray(landmarks)
    n_frames = landmarks.shape[0]
    speech_s = audio_activity_s(audio, sample_rate)
    motion = mouth_motion(landmarks, fps) if n_frames else math.nan
    if n_frames < MIN_FRAMES:
        return not_measured(speech_s, motion)
    mouth = mouth_signal(landmarks, fps)
    onsets = audio_signal(audio, sample_rate, fps, n_frames)
    if mouth is None or onsets is None:
        return not_measured(speech_s, motion)
    return estimate_sync(mouth, onsets, fps, max_lag_s, speech_s, motion)
