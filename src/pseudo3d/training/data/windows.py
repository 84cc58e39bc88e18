"""Cutting a clip into fixed-length training windows, motion and audio together (pure numpy).

A window is ``window_frames`` consecutive frames starting at frame ``start`` and the audio of
exactly those frames: samples ``round(start / fps · SR)`` to that plus
:func:`audio_window_length` ``= round(window_frames · SR / fps)``, relative to the clip's first
sample. Every window of a given (window_frames, fps) therefore has the same audio length L; a
window that reaches the clip's last sample is padded with zeros (by at most a couple of samples,
from rounding the clip's start and end to the sample grid).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

SAMPLE_RATE = 16_000
"""Audio rate of every window (Hz), mono float32."""


@dataclass(frozen=True)
class Window:
    """One training window. ``audio`` and ``target`` may be views into the clip's arrays."""

    key: str
    start_frame: int
    fps: float
    audio: np.ndarray
    """(L,) float32 at :data:`SAMPLE_RATE`."""
    target: np.ndarray
    """(window_frames, D) float32."""

    def to_dict(self) -> dict:
        """The dict the datasets yield: ``audio`` (L,) and ``target`` (T, D) float32 tensors,
        ``key``, ``start_frame``, ``fps``."""
        return {"audio": torch.from_numpy(np.ascontiguousarray(self.audio, np.float32)),
                "target": torch.from_numpy(np.ascontiguousarray(self.target, np.float32)),
                "key": self.key, "start_frame": int(self.start_frame), "fps": float(self.fps)}


def audio_window_length(window_frames: int, fps: float, sample_rate: int = SAMPLE_RATE) -> int:
    """L: audio samples per window of ``window_frames`` frames at ``fps``."""
    return int(round(window_frames * sample_rate / fps))


def audio_start(start_frame: int, fps: float, sample_rate: int = SAMPLE_RATE) -> int:
    """First audio sample of frame ``start_frame`` (relative to the clip)."""
    return int(round(start_frame / fps * sample_rate))


def window_starts(n_frames: int, window_frames: int, stride_frames: int) -> range:
    """Start frames of the windows of a clip of ``n_frames`` frames: 0, stride, 2·stride, ...
    while a whole window fits (empty when the clip is shorter than one window). Frames after
    the last whole window (fewer than ``stride_frames``) are not used."""
    if window_frames < 1 or stride_frames < 1:
        raise ValueError(f"window_frames and stride_frames must be >= 1, got {window_frames}, {stride_frames}")
    return range(0, max(n_frames - window_frames + 1, 0), stride_frames)


def check_clip_audio(n_samples: int, n_frames: int, fps: float, where: str,
                     sample_rate: int = SAMPLE_RATE) -> None:
    """Refuse a clip whose audio is more than one frame shorter than its motion."""
    expected = n_frames / fps * sample_rate
    if n_samples < expected - sample_rate / fps:
        raise ValueError(f"{where}: {n_samples} audio samples for {n_frames} frames at {fps:g} fps "
                         f"(expected about {expected:.0f}); the clip's audio and motion disagree")


def cut_window(audio: np.ndarray, target: np.ndarray, start_frame: int, window_frames: int, fps: float,
               sample_rate: int = SAMPLE_RATE) -> tuple[np.ndarray, np.ndarray]:
    """(audio (L,), target (window_frames, D)) of the window at ``start_frame``; views where
    possible, zero-padded audio at the clip's end."""
    length = audio_window_length(window_frames, fps, sample_rate)
    first = audio_start(start_frame, fps, sample_rate)
    piece = audio[first:first + length]
    if piece.shape[0] < length:
        piece = np.concatenate([piece, np.zeros(length - piece.shape[0], np.float32)])
    return piece, target[start_frame:start_frame + window_frames]


def clip_windows(key: str, audio: np.ndarray, target: np.ndarray, fps: float, window_frames: int,
                 stride_frames: int, sample_rate: int = SAMPLE_RATE) -> list[Window]:
    """Every window of one clip: audio (N,) at ``sample_rate``, target (T, D) at ``fps``."""
    windows = []
    for start in window_starts(target.shape[0], window_frames, stride_frames):
        piece, motion = cut_window(audio, target, start, window_frames, fps, sample_rate)
        windows.append(Window(key=key, start_frame=start, fps=fps, audio=piece, target=motion))
    return windows
