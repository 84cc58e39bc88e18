"""Writing frames, sound and subtitles into any container PyAV can mux, reproducibly.

:mod:`pseudo3d.synth.mp4` writes the corpus's plain H.264 + AAC MP4s; the bad corpus also needs
other codecs, pixel formats, containers, irregular timestamps, display rotation, several audio
streams and subtitles, which :func:`write_media` covers. Reproducibility follows ``mp4.py``:
encoders run single-threaded (x264 also without macroblock-tree rate control), no creation time
is written, and the muxer runs bit-exact (Matroska would otherwise write random UIDs).

Subtitles are muxed as ready-made packets (``add_mux_stream``): PyAV cannot open FFmpeg's text
subtitle encoders without an ASS header it does not let one set. A ``mov_text`` packet is the
text's UTF-8 length as 2 big-endian bytes, then the text; a ``subrip`` packet is the bare text.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import cast

import av
import numpy as np
from numpy.typing import NDArray

from pseudo3d.synth.mp4 import output_container
from pseudo3d.synth.speech import SAMPLE_RATE

X264_OPTIONS = {"preset": "veryfast", "crf": "23", "x264-params": "threads=1:no-mbtree=1"}
# Realtime VP9 at the fastest setting: a few seconds of small video encode in well under 1 s.
VP9_OPTIONS = {"deadline": "realtime", "cpu-used": "8", "crf": "34", "row-mt": "0"}
# Audio goes to the encoder in chunks of this many samples; PyAV re-chunks them to each
# encoder's own frame size (1024 for AAC, 960 for Opus at 48 kHz, larger for FLAC).
_AUDIO_CHUNK = 1024
_SUBTITLE_TIME_BASE = Fraction(1, 1000)


@dataclass(frozen=True)
class VideoTrack:
    """A video stream: frames, when each is shown, and how to encode them.

    ``frames``: RGB uint8 ``(height, width, 3)`` arrays or ready :class:`av.VideoFrame` objects.
    ``times_s``: presentation time of each frame in seconds, stored as
    ``pts = round(t / time_base)``; ``time_base`` defaults to ``1 / fps``.
    ``rotation_deg``: display rotation written into the stream (``set_display_rotation``).
    ``sample_aspect_ratio``: the width / height of one stored pixel (e.g. 64/45 for anamorphic
    PAL), written into the bitstream and the container; None for square pixels.
    """

    frames: Iterable[NDArray[np.uint8] | av.VideoFrame]
    times_s: Sequence[float] | NDArray[np.floating]
    width: int
    height: int
    fps: Fraction
    codec: str = "libx264"
    pix_fmt: str = "yuv420p"
    options: Mapping[str, str] = field(default_factory=lambda: dict(X264_OPTIONS))
    time_base: Fraction | None = None
    rotation_deg: int = 0
    sample_aspect_ratio: Fraction | None = None


@dataclass(frozen=True)
class AudioTrack:
    """An audio stream: ``samples`` ``(channels, N)`` float32 in [-1, 1], 1 or 2 channels, at
    ``sample_rate``, the first sample presented at ``start_s`` seconds (the video's clock)."""

    samples: NDArray[np.float32]
    codec: str = "aac"
    sample_rate: int = SAMPLE_RATE
    title: str | None = None
    start_s: float = 0.0


@dataclass(frozen=True)
class SubtitleCue:
    """One subtitle line shown from ``start_s`` to ``end_s`` (seconds)."""

    start_s: float
    end_s: float
    text: str


def write_media(path: Path, container_format: str, video: VideoTrack | None = None,
                audio: Sequence[AudioTrack] = (), subtitles: Sequence[SubtitleCue] = (),
                subtitle_codec: str = "mov_text") -> Path:
    """Write the streams to ``path`` in ``container_format`` (an FFmpeg muxer name such as
    ``"mp4"``, ``"webm"``, ``"matroska"``, ``"mpegts"``); streams are numbered video, audio
    tracks in order, subtitles. The file appears under ``path`` only once complete."""
    with output_container(path, container_format, {"fflags": "+bitexact"}) as container:
        video_stream = None if video is None else _add_video(container, video)
        feeds = [_AudioFeed(container, track) for track in audio]
        captions = _Captions(container, subtitle_codec, subtitles) if subtitles else None
        if video is not None and video_stream is not None:
            _mux_video(container, video_stream, video, feeds, captions)
        for feed in feeds:
            feed.finish()
        if captions is not None:
            captions.feed_until(float("inf"))
    return Path(path)


def _add_video(container: av.container.OutputContainer, video: VideoTrack) -> av.VideoStream:
    # A video codec's name gives a video stream (PyAV types a codec chosen by name as any stream).
    stream = cast(av.VideoStream, container.add_stream(video.codec, rate=video.fps, options=dict(video.options)))
    stream.width, stream.height, stream.pix_fmt = video.width, video.height, video.pix_fmt
    stream.codec_context.thread_count = 1
    if video.time_base is not None:
        stream.codec_context.time_base = video.time_base
    if video.rotation_deg:
        stream.set_display_rotation(video.rotation_deg)
    if video.sample_aspect_ratio is not None:
        stream.codec_context.sample_aspect_ratio = video.sample_aspect_ratio
    return stream


def _mux_video(container: av.container.OutputContainer, stream: av.VideoStream, video: VideoTrack,
               feeds: list[_AudioFeed], captions: _Captions | None) -> None:
    """Encode every frame, handing the other streams their share after each (interleaving)."""
    time_base = video.time_base or Fraction(1) / video.fps
    times = list(video.times_s)
    for index, image in enumerate(video.frames):
        if isinstance(image, av.VideoFrame):
            frame = image
        else:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        frame.pts = int(round(times[index] / time_base))
        frame.time_base = time_base
        container.mux(stream.encode(frame))
        shown_until = times[index + 1] if index + 1 < len(times) else times[index] + float(time_base)
        for feed in feeds:
            feed.feed_until(shown_until)
        if captions is not None:
            captions.feed_until(shown_until)
    container.mux(stream.encode())


class _AudioFeed:
    """Hands one :class:`AudioTrack` to its encoder chunk by chunk, on demand."""

    def __init__(self, container: av.container.OutputContainer, track: AudioTrack):
        if track.samples.ndim != 2 or track.samples.shape[0] not in (1, 2):
            raise ValueError(f"audio must have shape (1 or 2, samples), got {track.samples.shape}")
        self._layout = "stereo" if track.samples.shape[0] == 2 else "mono"
        self._container = container
        self._stream = cast(av.AudioStream,  # an audio codec's name gives an audio stream
                            container.add_stream(track.codec, rate=track.sample_rate, layout=self._layout))
        self._stream.codec_context.thread_count = 1
        if track.title is not None:
            self._stream.metadata["title"] = track.title
        self._samples = np.ascontiguousarray(track.samples, dtype=np.float32)
        self._rate = track.sample_rate
        self._start = int(round(track.start_s * track.sample_rate))  # pts of the first sample
        self._next = 0

    def feed_until(self, time_s: float) -> None:
        end = min(int(round(time_s * self._rate)) - self._start, self._samples.shape[1])
        while self._next + _AUDIO_CHUNK <= end:
            self._encode(self._next + _AUDIO_CHUNK)

    def finish(self) -> None:
        while self._next < self._samples.shape[1]:
            self._encode(min(self._next + _AUDIO_CHUNK, self._samples.shape[1]))
        self._container.mux(self._stream.encode())

    def _encode(self, stop: int) -> None:
        chunk = np.ascontiguousarray(self._samples[:, self._next:stop])
        frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=self._layout)
        frame.sample_rate = self._rate
        frame.pts = self._start + self._next
        frame.time_base = Fraction(1, self._rate)
        self._container.mux(self._stream.encode(frame))
        self._next = stop


class _Captions:
    """Muxes subtitle cues as ready-made packets once the video has reached their start."""

    def __init__(self, container: av.container.OutputContainer, codec: str, cues: Sequence[SubtitleCue]):
        if codec not in ("mov_text", "subrip"):
            raise ValueError(f"subtitle_codec must be 'mov_text' or 'subrip', got {codec!r}")
        self._container = container
        self._codec = codec
        self._stream = container.add_mux_stream(codec)
        self._stream.time_base = _SUBTITLE_TIME_BASE
        self._pending = sorted(cues, key=lambda cue: cue.start_s)

    def feed_until(self, time_s: float) -> None:
        while self._pending and self._pending[0].start_s <= time_s:
            cue = self._pending.pop(0)
            text = cue.text.encode("utf-8")
            payload = len(text).to_bytes(2, "big") + text if self._codec == "mov_text" else text
            packet = av.Packet(payload)
            packet.stream = self._stream
            packet.time_base = _SUBTITLE_TIME_BASE
            packet.pts = packet.dts = int(round(cue.start_s / _SUBTITLE_TIME_BASE))
            packet.duration = int(round((cue.end_s - cue.start_s) / _SUBTITLE_TIME_BASE))
            self._container.mux(packet)
