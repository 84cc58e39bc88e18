"""Reading a speech recording as 16 kHz mono float32, whatever its rate and channel count."""

from __future__ import annotations

from math import gcd
from pathlib import Path

import numpy as np
import soundfile
from scipy.signal import resample_poly

from pseudo3d.training.data.windows import SAMPLE_RATE


def read_audio_16k(path: str | Path) -> np.ndarray:
    """(N,) float32 at :data:`SAMPLE_RATE`: channels averaged, resampled with a polyphase
    filter (exact rational ratio, e.g. 320/441 from 22.05 kHz). Errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"audio file {path} does not exist")
    try:
        audio, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except RuntimeError as error:  # soundfile.LibsndfileError is one
        raise ValueError(f"audio file {path} cannot be read: {error}") from None
    mono = audio.mean(axis=1)
    if rate == SAMPLE_RATE:
        return np.ascontiguousarray(mono, np.float32)
    common = gcd(int(rate), SAMPLE_RATE)
    return resample_poly(mono, SAMPLE_RATE // common, int(rate) // common).astype(np.float32)
