"""Reading a speech recording as 16 kHz mono float32, whatever its format, rate and channels."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pseudo3d.pipelines.audio import load_audio
from pseudo3d.training.data.windows import SAMPLE_RATE


def read_audio_16k(path: str | Path) -> np.ndarray:
    """(N,) float32 at :data:`SAMPLE_RATE`: :func:`pseudo3d.pipelines.audio.load_audio` (channels
    averaged, resampled by FFmpeg). Errors name the file: ``FileNotFoundError`` when it does not
    exist, :class:`~pseudo3d.errors.Pseudo3DError` when it cannot be read as audio."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"audio file {path} does not exist")
    return load_audio(path, SAMPLE_RATE)
