"""Audio-visual synchrony: how far the speech envelope is shifted against the mouth's motion.

The mouth opening comes from the tracked 2D landmarks (every backend has them): the gap between
the inner lips (MediaPipe 13 and 14) over the outer eye-corner distance (33 and 263), so it does
not depend on face size. Both series are normalised and cross-correlated over lags of up to
``max_lag`` frames; the best lag, refined to a fraction of a frame by a parabola through the peak,
is the offset. Positive offsets mean the audio lags the picture (the envelope peaks later than the
mouth). The peak correlation is the sync strength: near zero for dubbed or unrelated audio.
"""

from __future__ import annotations

import numpy as np

UPPER_INNER_LIP, LOWER_INNER_LIP = 13, 14
OUTER_EYE_CORNERS = (33, 263)


def mouth_opening(landmarks: np.ndarray) -> np.ndarray:
    """(T,) float32 inner-lip gap / outer-eye-corner distance from (T, 478, 2+) landmarks."""
    gap = np.linalg.norm(landmarks[:, UPPER_INNER_LIP, :2] - landmarks[:, LOWER_INNER_LIP, :2], axis=-1)
    eyes = np.linalg.norm(landmarks[:, OUTER_EYE_CORNERS[0], :2] - landmarks[:, OUTER_EYE_CORNERS[1], :2], axis=-1)
    return (gap / np.maximum(eyes, 1e-6)).astype(np.float32)


def _standardise(values: np.ndarray) -> np.ndarray | None:
    values = np.asarray(values, np.float64)
    spread = values.std()
    return None if spread < 1e-9 or not np.isfinite(spread) else (values - values.mean()) / spread


def lagged_correlations(mouth: np.ndarray, envelope: np.ndarray, max_lag: int) -> np.ndarray:
    """(2·max_lag + 1,) Pearson correlations of mouth[t] with envelope[t + lag], lag = −max_lag..max_lag
    (NaN where the overlap is under two frames or a series is constant)."""
    correlations = np.full(2 * max_lag + 1, np.nan)
    for index, lag in enumerate(range(-max_lag, max_lag + 1)):
        a = mouth[max(0, -lag):len(mouth) - max(0, lag)]
        b = envelope[max(0, lag):len(envelope) - max(0, -lag)]
        a, b = _standardise(a), _standardise(b)
        if a is not None and b is not None and len(a) >= 2:
            correlations[index] = float(np.mean(a * b))
    return correlations


def av_sync(mouth: np.ndarray, envelope: np.ndarray, fps: float, max_lag_s: float) -> dict[str, float]:
    """``av_offset_frames`` (positive: audio lags), ``av_offset_s``, ``av_sync_strength`` (peak
    correlation) and ``av_sync_zero_lag`` (correlation without shifting); NaN when either series
    is flat (e.g. silence)."""
    max_lag = max(1, int(round(max_lag_s * fps)))
    correlations = lagged_correlations(mouth, envelope, min(max_lag, max(1, len(mouth) // 3)))
    nan = float("nan")
    if not np.isfinite(correlations).any():
        return {"av_offset_frames": nan, "av_offset_s": nan, "av_sync_strength": nan, "av_sync_zero_lag": nan}
    lags = len(correlations) // 2
    best = int(np.nanargmax(correlations))
    offset = float(best - lags)
    if 0 < best < len(correlations) - 1 and np.isfinite(correlations[best - 1:best + 2]).all():
        left, centre, right = correlations[best - 1:best + 2]
        curvature = left - 2 * centre + right
        if curvature < 0:
            offset += 0.5 * (left - right) / curvature
    return {"av_offset_frames": offset, "av_offset_s": offset / fps,
            "av_sync_strength": float(correlations[best]), "av_sync_zero_lag": float(correlations[lags])}
