"""Reading sound with PyAV: one audio stream → (N,) float32 mono at a chosen sample rate.

The one audio reader of pseudo3d. The decode stage uses it for a source video's first audio
stream, read as the video is decoded (:class:`pseudo3d.pipelines.decode.SourceAudio` aligns it to the
first video frame);
``pseudo3d animate`` and the finetune datasets use :func:`load_audio` for an audio file (WAV,
FLAC, MP3, AAC, M4A, Ogg/Opus, ...) or a video's first audio track. Whatever the file holds:

* any sample format (16-, 24- or 32-bit integers, float, planar or packed) becomes float in
  [-1, 1] at the same level: a −6 dBFS sine stays −6 dBFS;
* channels are averaged, so a mono voice recorded on two identical channels keeps its level;
* FFmpeg's resampler takes it to the output rate. A stream whose sample rate, channel layout or
  sample format changes part-way (a spliced broadcast, concatenated MPEG-TS recordings) gets a
  fresh resampler at each change, the previous one flushed first, so no sound is lost;
* sound is placed by timestamp: a jump forward in the stream's timestamps of more than
  :data:`AUDIO_GAP_S` (packets that did not decode, a hole in a recording) becomes silence of the
  same length, so what follows keeps its time; a step back of up to :data:`MAX_OVERLAP_S` (two
  recordings joined, the second starting with its encoder's priming before the first one's end)
  cuts what overlaps off the end of the sound so far. A larger step back is a clock reset: the
  sound goes on.

Files are opened under the FFmpeg input policy of :mod:`pseudo3d.pipelines.media`.
"""

from __future__ import annotations

import os
import wave
from dataclasses import dataclass, field
from typing import Iterator, cast

import av
import numpy as np

from pseudo3d.errors import Pseudo3DError, StageError
from pseudo3d.pipelines.media import Decoding, decode_skipping, describe_av_error, open_container
from pseudo3d.pipelines.sources import local_path

AUDIO_GAP_S = 0.02
"""A jump in audio timestamps larger than this many seconds is filled with silence."""
MAX_OVERLAP_S = 0.5
"""A step back in audio timestamps of more than :data:`AUDIO_GAP_S` and up to this many seconds
replaces the overlapping sound."""


@dataclass
class AudioRead:
    """One audio stream, read."""

    samples: np.ndarray
    """(N,) float32 mono at the requested rate, in [-1, 1] for ordinary (not clipped) sources."""
    start_s: float | None
    """Presentation time of ``samples[0]`` on the container's clock, seconds; None when the
    stream carries no timestamps."""
    decoding: Decoding = field(default_factory=Decoding)
    """Packets refused and why reading stopped, if it stopped early."""


def read_audio_stream(container, stream, sample_rate: int, stage: str, until_s: float | None = None) -> AudioRead:
    """Decode ``stream`` of the open ``container`` to mono float32 at ``sample_rate`` Hz.

    Packets that do not decode are skipped and a stream that cannot be read further keeps what was
    read (both recorded in :attr:`AudioRead.decoding`). With ``until_s`` (seconds on the
    container's clock), reading stops at that time: nothing after it is decoded, and neither a
    timestamp jump nor a stream without timestamps can make the sound longer than the time up to
    it (the input is untrusted; a forged jump must not allocate hours of silence). Raises
    ``StageError(stage, "audio_error")`` when nothing at all decodes, or when the resampler
    refuses the decoded sound.
    """
    reader = AudioStreamReader(container, stream, sample_rate, stage)
    pieces = reader.read_until(until_s) + reader.finish()
    samples = np.concatenate(pieces).astype(np.float32, copy=False) if pieces else np.zeros(0, np.float32)
    return AudioRead(samples, reader.first_time, reader.decoding)


class AudioStreamReader:
    """:func:`read_audio_stream` a piece at a time: :meth:`read_until` a later time, again and
    again, then :meth:`finish`. The pieces returned, joined, are what one call of
    :func:`read_audio_stream` returns; the last :data:`MAX_OVERLAP_S` of sound read is held back
    until the next call, as an overlap in the timestamps may still cut it."""

    def __init__(self, container, stream, sample_rate: int, stage: str):
        self.sample_rate = sample_rate
        self.stage = stage
        self.decoding = Decoding()
        self.first_time: float | None = None
        """Presentation time of the first sample, seconds on the container's clock (None until a
        frame with a timestamp is read)."""
        self.exhausted = False
        """The stream has ended (or cannot be read further)."""
        # an audio stream decodes to audio frames
        self._frames = cast("Iterator[av.AudioFrame]", decode_skipping(container, stream, self.decoding))
        self._waiting: av.AudioFrame | None = None  # read, but past the last until_s
        self._pieces: list[np.ndarray] = []  # read and not yet handed out
        self._held = 0  # samples in _pieces
        self._mixer = _Mixer(sample_rate)
        self._expected_time: float | None = None  # where the next decoded frame should start, seconds
        self._read_s = 0.0  # decoded and inserted sound so far, seconds
        self._released = False  # any sound handed out

    def read_until(self, until_s: float | None) -> list[np.ndarray]:
        """Read on up to ``until_s`` (seconds on the container's clock; None: to the end) and
        return the sound that can no longer change, in order."""
        try:
            while not self.exhausted:
                frame = self._waiting if self._waiting is not None else next(self._frames, None)
                self._waiting = None
                if frame is None:
                    self.exhausted = True
                    break
                if until_s is not None and _past(until_s, frame.time, self.first_time, self._read_s):
                    self._waiting = frame
                    break
                self._add(frame)
        except (ValueError, av.error.FFmpegError) as exc:  # a layout or format the resampler cannot take
            raise StageError(self.stage, "audio_error", f"the audio stream cannot be resampled: "
                                                        f"{describe_av_error(exc)}") from None
        return self._release(round(MAX_OVERLAP_S * self.sample_rate) + 1)

    def finish(self) -> list[np.ndarray]:
        """The sound still held. Raises ``StageError(stage, "audio_error")`` when nothing at all
        decoded."""
        try:
            self._append(self._mixer.flush())
        except (ValueError, av.error.FFmpegError) as exc:
            raise StageError(self.stage, "audio_error", f"the audio stream cannot be resampled: "
                                                        f"{describe_av_error(exc)}") from None
        pieces = self._release(0)
        problem = self.decoding.read_error or self.decoding.first_refusal
        if problem is not None and not self._released:
            raise StageError(self.stage, "audio_error", f"the audio stream does not decode: {describe_av_error(problem)}")
        return pieces

    def _add(self, frame: av.AudioFrame) -> None:
        rate = self.sample_rate
        if frame.time is not None:
            if self.first_time is None:
                self.first_time = frame.time
            elif self._expected_time is not None and frame.time - self._expected_time > AUDIO_GAP_S:
                self._append(self._mixer.flush())  # what was before the hole, then the hole
                self._append([np.zeros(round((frame.time - self._expected_time) * rate), np.float32)])
                self._read_s += frame.time - self._expected_time
            elif self._expected_time is not None and AUDIO_GAP_S < self._expected_time - frame.time <= MAX_OVERLAP_S:
                self._append(self._mixer.flush())
                self._pieces = _cut_end(self._pieces, round((self._expected_time - frame.time) * rate))
                self._held = sum(piece.size for piece in self._pieces)
            self._expected_time = frame.time + frame.samples / frame.sample_rate
        elif self._expected_time is not None:
            self._expected_time += frame.samples / frame.sample_rate
        self._read_s += frame.samples / frame.sample_rate
        self._append(self._mixer.add(frame))

    def _append(self, pieces: list[np.ndarray]) -> None:
        self._pieces.extend(pieces)
        self._held += sum(piece.size for piece in pieces)

    def _release(self, keep: int) -> list[np.ndarray]:
        """Hand out the held pieces but for the last ``keep`` samples or more."""
        out = []
        while self._pieces and self._held - self._pieces[0].size >= keep:
            piece = self._pieces.pop(0)
            self._held -= piece.size
            out.append(piece)
        self._released = self._released or any(piece.size for piece in out)
        return out


def _past(until_s: float, time: float | None, first_time: float | None, read_s: float) -> bool:
    """Whether a frame at ``time`` lies past ``until_s``, or (without a timestamp) the sound read
    so far already reaches past it."""
    if time is not None:
        return time >= until_s
    return read_s >= until_s - (first_time or 0.0)


class _Mixer:
    """Decoded audio frames → mono float32 pieces at one rate, whatever each frame's rate,
    layout and sample format (a new resampler whenever they change)."""

    def __init__(self, sample_rate: int):
        self.sample_rate = sample_rate
        self._resampler: av.AudioResampler | None = None
        self._setup: tuple | None = None

    def add(self, frame: av.AudioFrame) -> list[np.ndarray]:
        setup = (frame.format.name, frame.layout.name, len(frame.layout.channels), frame.sample_rate)
        pieces = []
        if self._resampler is None or setup != self._setup:  # (no resampler only while there is no setup)
            pieces = self.flush()
            self._resampler = av.AudioResampler(format="fltp", rate=self.sample_rate)
            self._setup = setup
        return pieces + [_mono(out) for out in self._resampler.resample(frame)]

    def flush(self) -> list[np.ndarray]:
        """What the resampler still holds; the next frame starts a new one."""
        if self._resampler is None:
            return []
        pieces = [_mono(out) for out in self._resampler.resample(None)]
        self._resampler, self._setup = None, None
        return pieces


def _cut_end(pieces: list[np.ndarray], n: int) -> list[np.ndarray]:
    """``pieces`` without their last ``n`` samples."""
    while n > 0 and pieces:
        last = pieces.pop()
        if last.size > n:
            pieces.append(last[:last.size - n])
        n -= last.size
    return pieces


def _mono(frame: av.AudioFrame) -> np.ndarray:
    return frame.to_ndarray().mean(axis=0, dtype=np.float32)


def load_audio(path: str | os.PathLike, sample_rate: int) -> np.ndarray:
    """(N,) float32 mono at ``sample_rate`` Hz: the first audio stream of an audio file or of a
    video, sample 0 being the stream's first sample.

    Raises :class:`~pseudo3d.errors.Pseudo3DError` naming the file when it is missing, is not
    an audio or video file the input policy allows, has no audio stream, decodes to no sound, or
    decodes to less sound than its header declares (a truncated WAV, FLAC, M4A, MKV ...).
    """
    uri = os.fspath(path)
    try:
        with open_container(uri, "audio", audio=True) as container:
            if not container.streams.audio:
                kinds = ", ".join(sorted({s.type for s in container.streams})) or "no streams"
                raise Pseudo3DError(f"{uri}: no audio stream in the file ({kinds})")
            read = read_audio_stream(container, container.streams.audio[0], sample_rate, "audio")
            declared = _declared_length_s(uri, container, container.streams.audio[0])
    except StageError as error:
        raise Pseudo3DError(f"{uri}: {error.message}") from None
    if not read.samples.size:
        raise Pseudo3DError(f"{uri}: the audio stream holds no sound (an empty or truncated file)")
    decoded = read.samples.size / sample_rate
    if declared is not None and declared - decoded > max(TRUNCATION_TOLERANCE_S, 0.02 * declared):
        raise Pseudo3DError(f"{uri}: the file declares {declared:.2f} s of sound but only {decoded:.2f} s decode "
                            "(a truncated file?)")
    return read.samples


TRUNCATION_TOLERANCE_S = 0.2
"""A file whose sound ends this much (or 2 % of its length, if more) before the length its header
declares is refused as truncated."""
_EXACT_LENGTH_FORMATS = {"wav", "w64", "aiff", "flac", "caf", "mov", "mp4", "m4a", "matroska", "webm"}
"""Containers whose header states the length exactly (not estimated from a bit rate, as FFmpeg
does for MP3 or raw AAC, where a truncation check would refuse good files)."""


def _declared_length_s(uri: str, container, stream) -> float | None:
    """The audio stream's length as the header declares it, seconds, where the format states it exactly."""
    formats = set(container.format.name.split(","))
    if "wav" in formats:
        return _wav_header_length_s(uri)
    if not formats & _EXACT_LENGTH_FORMATS:
        return None
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    return container.duration / av.time_base if container.duration is not None else None


def _wav_header_length_s(uri: str) -> float | None:
    """What a WAV file's data chunk declares, seconds. FFmpeg clamps a WAV's length to the bytes
    present, so the header is read with the standard library's reader; None where it cannot
    read it (float or extensible formats on older Pythons, a streamed WAV of unknown size)."""
    path = local_path(uri)
    if path is None:
        return None
    try:
        with wave.open(str(path), "rb") as header:
            frames, rate = header.getnframes(), header.getframerate()
            frame_bytes = max(1, header.getsampwidth() * header.getnchannels())
    except (wave.Error, EOFError, OSError):
        return None
    if rate <= 0 or frames >= 0xFFFFFFFF // frame_bytes:
        return None  # a writer that did not know the size wrote the largest value
    return frames / rate
