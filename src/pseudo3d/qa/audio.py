"""Audio metrics of a clip (pure functions).

Levels are in dBFS: 20·log10 of the RMS (or peak) of samples in [−1, 1], so a full-scale square
wave is 0 dBFS. A frame is silent when the RMS of its samples is below ``SILENCE_DBFS``.
"""

from __future__ import annotations

import numpy as np

SILENCE_DBFS = -45.0
"""Frames quieter than this (RMS, dBFS) count as silence."""
CLIPPING_LEVEL = 0.999
"""Samples at or above this magnitude count as clipped."""
_FLOOR = 1e-10


def to_dbfs(rms: np.ndarray | float) -> np.ndarray | float:
    return 20.0 * np.log10(np.maximum(rms, _FLOOR))


def frame_envelope(audio: np.ndarray, sample_rate: int, fps: float, n_frames: int) -> np.ndarray:
    """(n_frames,) float32 RMS of the samples within half a frame of each frame's instant k/fps
    (centred, so the envelope is not half a frame late against the picture)."""
    edges = np.round((np.arange(n_frames + 1) - 0.5) / fps * sample_rate).astype(np.int64)
    edges = np.clip(edges, 0, audio.shape[0])
    squares = np.concatenate([[0.0], np.cumsum(np.asarray(audio, np.float64) ** 2)])
    counts = np.maximum(np.diff(edges), 1)
    return np.sqrt((squares[edges[1:]] - squares[edges[:-1]]) / counts).astype(np.float32)


def audio_metrics(audio: np.ndarray, envelope: np.ndarray) -> dict[str, float]:
    """Loudness (RMS over the clip, dBFS), peak (dBFS), the fraction of silent frames and the
    fraction of clipped samples."""
    audio = np.asarray(audio, np.float64)
    if audio.size == 0:
        return {"audio_loudness_dbfs": float("nan"), "audio_peak_dbfs": float("nan"),
                "silence_fraction": 1.0, "clipping_fraction": 0.0}
    return {
        "audio_loudness_dbfs": float(to_dbfs(np.sqrt(np.mean(audio ** 2)))),
        "audio_peak_dbfs": float(to_dbfs(np.max(np.abs(audio)))),
        "silence_fraction": float(np.mean(to_dbfs(envelope) < SILENCE_DBFS)),
        "clipping_fraction": float(np.mean(np.abs(audio) >= CLIPPING_LEVEL)),
    }
