"""Writing H.264 + AAC MP4 files with PyAV, reproducibly.

x264 runs single-threaded (its output depends on the thread count) without macroblock-tree
rate control (see ``_X264_OPTIONS``), and no creation time is set, so the same frames and
samples give the same bytes on any machine with the same FFmpeg.

Audio alignment: FFmpeg's AAC encoder prepends 1024 priming samples and the MP4 muxer records
them in an edit list; decoders that honour it (FFmpeg, PyAV) return the first sample given here
at t = 0. The last AAC frame is padded, so a decoder may return up to 1023 samples of silence
after the end.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from numpy.typing import NDArray

AUDIO_FRAME_SAMPLES = 1024
# CRF 23 is x264's default quality, typical of footage found online. One thread, and no
# macroblock-tree rate control: with mbtree on, the same frames encoded twice in a busy process
# gave different bytes (seen with 480-pixel-wide noisy frames), so it stays off.
_X264_OPTIONS = {"preset": "veryfast", "crf": "23", "x264-params": "threads=1:no-mbtree=1"}


@contextlib.contextmanager
def output_container(path: Path, container_format: str,
                     options: dict[str, str] | None = None) -> Iterator[av.container.OutputContainer]:
    """A PyAV output container writing ``path.partial``, renamed to ``path`` once the block
    completes; on any error the partial file is removed and nothing appears under ``path``."""
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    container = av.open(str(partial), mode="w", format=container_format, options=options or {})
    try:
        yield container
    except BaseException:
        container.close()
        partial.unlink(missing_ok=True)
        raise
    container.close()
    os.replace(partial, path)


def write_mp4(path: Path, frames: Iterable[NDArray[np.uint8]], fps: Fraction, width: int, height: int,
              audio: NDArray[np.float32] | None = None, sample_rate: int = 48_000) -> None:
    """Encode RGB ``frames`` (each ``(height, width, 3)`` uint8) and optional ``audio``.

    ``audio``: ``(channels, samples)`` float32 in [-1, 1], 1 or 2 channels, or None for a file
    without an audio stream. The file appears under ``path`` only once complete.
    """
    with output_container(path, "mp4") as container:
        video = container.add_stream("libx264", rate=fps, options=dict(_X264_OPTIONS))
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.codec_context.thread_count = 1  # PyAV would otherwise open x264 with automatic threads
        sound = None if audio is None else _AudioFeed(container, audio, sample_rate)
        for index, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            frame.pts = index
            container.mux(video.encode(frame))
            if sound is not None:     # keep the streams interleaved in the file
                sound.feed_until(float((index + 1) / fps))
        container.mux(video.encode())
        if sound is not None:
            sound.finish()


class _AudioFeed:
    """Hands ``(channels, samples)`` audio to an AAC stream in 1024-sample frames, on demand."""

    def __init__(self, container: av.container.OutputContainer, audio: NDArray[np.float32], sample_rate: int):
        if audio.ndim != 2 or audio.shape[0] not in (1, 2):
            raise ValueError(f"audio must have shape (1 or 2, samples), got {audio.shape}")
        self._layout = "stereo" if audio.shape[0] == 2 else "mono"
        self._container = container
        self._stream = container.add_stream("aac", rate=sample_rate, layout=self._layout)
        self._stream.bit_rate = 128_000
        self._samples = np.ascontiguousarray(audio, dtype=np.float32)
        self._sample_rate = sample_rate
        self._next = 0

    def feed_until(self, time_s: float) -> None:
        end = min(int(round(time_s * self._sample_rate)), self._samples.shape[1])
        while self._next + AUDIO_FRAME_SAMPLES <= end:
            self._encode(self._next, self._next + AUDIO_FRAME_SAMPLES)

    def finish(self) -> None:
        while self._next < self._samples.shape[1]:
            self._encode(self._next, min(self._next + AUDIO_FRAME_SAMPLES, self._samples.shape[1]))
        self._container.mux(self._stream.encode())

    def _encode(self, start: int, stop: int) -> None:
        chunk = np.ascontiguousarray(self._samples[:, start:stop])
        frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=self._layout)
        frame.sample_rate = self._sample_rate
        frame.pts = start
        self._container.mux(self._stream.encode(frame))
        self._next = stop
