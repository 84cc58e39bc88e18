"""Decode stage: frames on a fixed output grid and mono audio, both aligned to the first frame.

Frames are chosen by timestamp, not by counting: output frame ``k`` (at ``k / fps`` seconds after
the first video frame) shows the source frame whose presentation time is nearest, so 29.97 fps,
variable frame rate and dropped frames all land on the same exact grid. The audio is resampled to
mono at the output sample rate and shifted so that sample 0 is the instant of the first video frame.

Frames are in display geometry: rotation applied, and non-square pixels (a sample aspect ratio
other than 1:1, as in anamorphic DVD or HDV video) stretched to square ones, so a circle in the
picture stays a circle and landmarks are in display pixels (see :mod:`pseudo3d.pipelines.probe`).

Timestamps are not trusted to be in order. A decoder returns frames in display order, but the
times attached to them can be wrong: AVI stores no presentation times, so FFmpeg guesses them
from the decoding order and B-frames come out with times swapped; MPEG-TS may leave frames
without a time; broken muxers repeat times. Every decoded frame is therefore used, once, in the
order the decoder returns it: times are sorted within a window of frames (4, widened to
:data:`REORDER_DEPTH`, the deepest B-frame reordering H.264 allows, once a time comes out of order
or missing), a missing time is the previous one plus one source frame period, and so is a time
that is not later than the previous one. AVI's first frame is shown at the stream's start (see
:func:`first_frame_time`), so the B-frame delay FFmpeg adds does not cut the start of the sound.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Generator, Iterator

import av
import numpy as np

from pseudo3d.config import DecodeConfig
from pseudo3d.errors import StageError
from pseudo3d.pipelines.audio import AudioStreamReader
from pseudo3d.pipelines.media import Decoding, decode_skipping, describe_av_error, open_container, rotate_image
from pseudo3d.schemas.records import ProbeInfo, Source

STAGE = "decode"


@dataclass
class Frame:
    """One output-grid frame."""

    index: int
    """Position on the output grid; the frame is at ``index / fps`` seconds."""
    image: np.ndarray
    """(H, W, 3) uint8 RGB in display geometry (rotation applied, pixels square), possibly
    downscaled (see ``scale``)."""
    scale: float
    """Working pixels per display pixel (1.0 unless the frame was downscaled)."""
    damaged: bool = False
    """The source frame for this time was lost to packets that did not decode; ``image`` is the
    last good frame, and tracking treats this frame as a gap."""


class FrameDecoder:
    """Iterate the output-grid frames of one source.

    Frames are ``probe.width`` x ``probe.height`` display pixels (times ``scale`` when the longer
    side exceeds ``decode.max_side``). Packets that do not decode (corrupted data mid-stream) are
    skipped: ``corrupt_packets`` counts them, and output frames whose source frame they held come
    out ``damaged`` (counted in ``damaged_frames``). Iteration stops early, without raising, if
    the stream cannot be read further (a truncated file); ``error`` then holds the reason so the
    caller can keep the good part and still record a failure row. A stream that yields no frame
    at all raises.
    """

    def __init__(self, source: Source, probe: ProbeInfo, config: DecodeConfig, start_frame: int = 0,
                 stop_frame: int | None = None):
        self.source = source
        self.probe = probe
        self.fps = config.fps
        self.start_frame, self.stop_frame = start_frame, stop_frame
        """Output frames ``[start_frame, stop_frame)`` only (a chunk of a long source): decoding
        starts at the key frame before ``start_frame`` (a seek), and frame times stay on the whole
        video's grid, counted from the first frame's (``probe.first_frame_s``). None: to the end of
        the video."""
        self.error: StageError | None = None
        self.damaged_frames = 0
        self._decoding = Decoding()
        longest = max(probe.width, probe.height)
        self.scale = min(1.0, config.max_side / longest) if longest else 1.0
        self.size = (max(2, round(probe.width * self.scale)), max(2, round(probe.height * self.scale)))

    def __iter__(self) -> Generator[Frame, None, None]:  # a generator: SyncCropper closes it
        rotation = self.probe.rotation
        # Reformatting (which also makes the pixels square) happens before rotation, so a 90/270
        # rotation swaps the size asked of the scaler.
        coded = self.size if rotation in (0, 180) else self.size[::-1]
        source_period = 1.0 / self.probe.fps if self.probe.fps > 0 else 1.0 / self.fps
        step = 1.0 / self.fps
        index, stop = self.start_frame, math.inf if self.stop_frame is None else self.stop_frame
        held, held_time, held_image = None, 0.0, None
        t0 = None
        with open_container(self.source.uri, STAGE) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            if self.start_frame:  # frame times count from the first frame's, as a decode from the start has them
                t0 = self.probe.video_start_s if self.probe.first_frame_s is None else self.probe.first_frame_s
                _seek(container, stream, t0 + self.start_frame * step - SEEK_PREROLL_S)
            lost = (0.0, 0.0)  # the latest stretch of source time whose frames were lost
            clock = DisplayClock(source_period)
            for frame, time in clock.times(decode_skipping(container, stream, self._decoding)):
                if t0 is None:
                    t0 = time
                time -= t0
                if held is not None:
                    midpoint = 0.5 * (held_time + time)
                    if self.corrupt_packets and time - held_time > _LOST_GAP * source_period:
                        # Packets were refused and frames are missing here: grid times inside
                        # the stretch show no real frame.
                        lost = (held_time + 0.5 * source_period, time - 0.5 * source_period)
                    while index * step <= midpoint + 1e-9 and index < stop:
                        if held_image is None:
                            held_image = self._to_image(held, coded, rotation)
                        yield self._frame(index, held_image, lost)
                        index += 1
                    if index >= stop:
                        return
                held, held_time, held_image = frame, time, None
            if self._decoding.read_error is not None:
                self.error = StageError(STAGE, "decode_error", f"the video stream cannot be read past {held_time:.2f} s: "
                                                               f"{describe_av_error(self._decoding.read_error)}")
            end = held_time + source_period
            if self.start_frame and index == self.start_frame and (held is None or end <= index * step):
                raise self.error or StageError(
                    STAGE, "no_frames", f"the video stream has no frames from {index * step:.2f} s on, though the "
                                        f"file declares {self.probe.duration_s:.2f} s: the file is cut short")
            if held is None:
                raise self.error or StageError(STAGE, "no_frames", "the video stream yielded no frames")
            while index * step < end - 1e-6 and index < stop:
                if held_image is None:
                    held_image = self._to_image(held, coded, rotation)
                yield self._frame(index, held_image, lost)
                index += 1

    @property
    def corrupt_packets(self) -> int:
        """Packets of the video stream the decoder refused so far."""
        return self._decoding.refused

    def _frame(self, index: int, image: np.ndarray, lost: tuple[float, float]) -> Frame:
        damaged = lost[0] < index / self.fps < lost[1]
        self.damaged_frames += damaged
        return Frame(index, image, self.scale, damaged)

    @staticmethod
    def _to_image(frame, coded: tuple[int, int], rotation: int) -> np.ndarray:
        image = frame.to_ndarray(format="rgb24", width=coded[0], height=coded[1])
        return rotate_image(image, rotation)


SEEK_PREROLL_S = 0.5
"""A chunk's decoding seeks to the key frame at least this long before its first frame, so the
frame nearest its first grid time is decoded whatever the timestamps' rounding."""


AUDIO_PREROLL_S = 1.0
"""A chunk's sound is read from this long before its first frame: the decoder and the resampler
settle (an AAC frame needs the one before it) before the first sample a clip uses."""


def _seek(container, stream, seconds: float) -> None:
    """Move ``container`` to the key frame of ``stream`` at or before ``seconds`` (container clock)."""
    if seconds > 0 and stream.time_base:
        container.seek(int(seconds / stream.time_base), stream=stream, backward=True, any_frame=False)


REORDER_DEPTH = 16
"""Frames over which out-of-order timestamps are sorted: H.264 reorders at most 16 frames."""
_FIRST_DEPTH = 4
"""Frames held back while the timestamps have been in order (B-pyramids reorder up to 3); the
first time out of order, repeated or missing widens the window to :data:`REORDER_DEPTH`. A 1080p
frame held costs 3 MB, a 4K one 12 MB."""


class DisplayClock:
    """Presentation times, in seconds, for video frames taken in the order a decoder returns
    them (display order), whatever the timestamps attached to them say (see the module doc).

    :meth:`times` holds a few frames back (up to ``depth``) to see the timestamps that follow.
    The times it gives increase strictly; where the stream's timestamps are in order and present
    they are those timestamps, unchanged.
    """

    def __init__(self, period_s: float, depth: int = REORDER_DEPTH):
        self.period_s = period_s
        self.depth = depth
        self._window = min(_FIRST_DEPTH, depth)
        self._pending: deque[tuple[av.VideoFrame, bool]] = deque()  # (frame, has a timestamp)
        self._stamps: list[float] = []  # heap of the pending frames' timestamps
        self._last: float | None = None
        self._latest_stamp: float | None = None

    def times(self, frames) -> Iterator[tuple[av.VideoFrame, float]]:
        """``(frame, time_s)`` for each of ``frames``, in the same order."""
        for frame in frames:
            time = frame.time
            self._pending.append((frame, time is not None))
            if time is None or (self._latest_stamp is not None and time <= self._latest_stamp):
                self._window = self.depth
            if time is not None:
                heapq.heappush(self._stamps, float(time))
                self._latest_stamp = float(time)
            while len(self._pending) > self._window:
                yield self._next()
        while self._pending:
            yield self._next()

    def _next(self) -> tuple[av.VideoFrame, float]:
        frame, stamped = self._pending.popleft()
        if stamped:
            # The earliest pending timestamp belongs to the earliest pending frame, whichever
            # frame it came with.
            time = heapq.heappop(self._stamps)
            if self._last is not None and time <= self._last:
                time = self._last + self.period_s
        elif self._last is not None:
            time = self._last + self.period_s
        else:
            time = self._first_unstamped()
        self._last = time
        return frame, time

    def _first_unstamped(self) -> float:
        """The time of a first frame without a timestamp: counted back from the first
        timestamp that follows it, or 0 when none does."""
        if not self._stamps:
            return 0.0
        before = 1 + next(i for i, (_, stamped) in enumerate(self._pending) if stamped)
        return self._stamps[0] - before * self.period_s


def first_frame_time(container, stream, first: av.VideoFrame, following: list[av.VideoFrame]) -> tuple[float, float]:
    """Presentation times in seconds of the first frame a video stream shows: (time zero of the
    output timeline, to which the audio is aligned; the time the decoder gives that frame, from
    which :class:`FrameDecoder` counts frame times).

    ``first`` is the first decoded frame and ``following`` the frames decoded after it (a few are
    enough, to count back from when ``first`` has no timestamp). The two are equal except for AVI
    with B-frames: AVI stores no presentation times, its frames are shown one per period from the
    stream's start, but FFmpeg dates them from the decoding order plus the decoder's B-frame
    delay, which would cut that delay off the start of the sound; there the stream's start time
    is time zero when it is earlier.
    """
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    clock = DisplayClock(1.0 / float(rate) if rate else 1.0 / 25)
    decoded = next(iter(clock.times([first, *following])))[1]
    time = decoded
    avi = "avi" in container.format.name.split(",")
    if avi and stream.codec_context.has_b_frames and stream.start_time is not None and stream.time_base:
        time = min(time, float(stream.start_time * stream.time_base))
    return time, decoded


def decode_audio(source: Source, probe: ProbeInfo, sample_rate: int, max_s: float | None = None) -> np.ndarray:
    """The source's first audio stream as (n,) float32 mono at ``sample_rate``, sample 0 at the
    first video frame (``probe.video_start_s``): audio that starts later is preceded by silence,
    audio that starts earlier is cut. Returns an empty array for a source without audio. With
    ``max_s``, at most the first ``max_s`` seconds after the first video frame are read (later
    sound is never used). The whole of what :class:`SourceAudio` reads, at once."""
    audio = SourceAudio(source, probe, sample_rate)
    try:
        audio.read_to(math.inf if max_s is None else max_s)
        audio.finish()
        n_samples = audio.n_samples
        if isinstance(n_samples, float):  # no audio stream: endless silence, of which none is asked
            return np.zeros(0, np.float32)
        return audio.samples(0, n_samples)
    finally:
        audio.close()


class SourceAudio:
    """A source's first audio stream on the output timeline, read as far as asked
    (:meth:`read_to`; the last :data:`~pseudo3d.pipelines.audio.MAX_OVERLAP_S` read become
    available on the next read or at :meth:`finish`) and forgotten behind (:meth:`forget_before`),
    so what is held follows the clip being cut, not the video.

    Sample 0 is the instant of the first video frame (``probe.video_start_s``): sound that starts
    later is preceded by silence, sound that starts earlier is cut; without timestamps, the sound
    is taken to start with the picture. Read by
    :class:`pseudo3d.pipelines.audio.AudioStreamReader`: any sample format and layout at the right
    level, rate or layout changes mid-stream resampled through, and sound placed by timestamp: a
    stretch missing from the stream (packets that did not decode, or a gap in the timestamps)
    becomes silence of the same length, so what follows stays in sync. Reading stops at the time
    asked: a forged timestamp jump past it is never filled. A stream that cannot be read further
    keeps what was read (clip audio is zero-padded). A source without audio reads as endless
    silence. Raises ``StageError("decode", "audio_error")`` when the stream does not decode at all.
    """

    def __init__(self, source: Source, probe: ProbeInfo, sample_rate: int, start_s: float = 0.0):
        self.source, self.probe, self.sample_rate = source, probe, sample_rate
        self.start_s = start_s
        """Where reading starts, seconds on the output timeline (a chunk of a long source): the
        stream is sought to :data:`AUDIO_PREROLL_S` before it, and the sound before that is silence."""
        self._files = ExitStack()  # the open container, while reading
        self._reader: AudioStreamReader | None = None
        self._pieces: deque[np.ndarray] = deque()  # raw samples from _first on
        self._first = 0  # raw index of the first sample held
        self._read = 0  # raw samples read
        self._offset: int | None = None  # output-timeline index of raw sample 0
        self.exhausted = not probe.has_audio
        """The whole stream has been read."""

    def read_to(self, seconds: float) -> None:
        """Read on to ``seconds`` after the first video frame (no further)."""
        if self.exhausted:
            return
        if self._reader is None:
            container = self._files.enter_context(open_container(self.source.uri, STAGE))
            stream = container.streams.audio[0]
            if self.start_s:
                _seek(container, stream, self.probe.video_start_s + self.start_s - AUDIO_PREROLL_S)
            self._reader = AudioStreamReader(container, stream, self.sample_rate, STAGE)
        until = None if math.isinf(seconds) else self.probe.video_start_s + seconds
        self._keep(self._reader.read_until(until))
        if self._reader.exhausted:
            self.finish()

    def finish(self) -> None:
        """Stop reading: the sound read so far is all there is (the last :data:`MAX_OVERLAP_S`
        read, which a later overlap could still have cut, becomes final too)."""
        if self._reader is not None and not self.exhausted:
            self._keep(self._reader.finish())
        self.exhausted = True
        self.close()

    def _keep(self, pieces: list[np.ndarray]) -> None:
        for piece in pieces:
            self._pieces.append(piece)
            self._read += piece.size

    @property
    def n_samples(self) -> int | float:
        """Samples of sound on the output timeline so far (infinite without an audio stream; 0
        until the first sound is read)."""
        if not self.probe.has_audio:
            return math.inf
        if not self._read:
            return 0
        return max(0, self._read + self.offset)

    @property
    def length_s(self) -> float:
        return self.n_samples / self.sample_rate

    @property
    def offset(self) -> int:
        """Where raw sample 0 falls on the output timeline (fixed once some sound is read)."""
        if self._offset is None:
            first_time = self._reader.first_time if self._reader is not None else None
            start_s = self.probe.video_start_s if first_time is None else first_time
            self._offset = round((start_s - self.probe.video_start_s) * self.sample_rate)
        return self._offset

    def samples(self, start: int, stop: int) -> np.ndarray:
        """(stop - start,) float32: output-timeline samples ``[start, stop)``, zeros where there
        is no sound (before it starts, after it ends, or no audio stream). ``start`` must not be
        before what :meth:`forget_before` dropped."""
        out = np.zeros(stop - start, np.float32)
        if not self._read:
            return out
        if start - self.offset < self._first and self._first > 0:
            raise ValueError(f"samples from {start} on were already forgotten")
        raw_start, raw_stop = max(start - self.offset, self._first), min(stop - self.offset, self._read)
        position = self._first
        for piece in self._pieces:
            lo, hi = max(raw_start, position), min(raw_stop, position + piece.size)
            if lo < hi:
                out[lo + self.offset - start:hi + self.offset - start] = piece[lo - position:hi - position]
            position += piece.size
            if position >= raw_stop:
                break
        return out

    def clip(self, start_frame: int, n_frames: int, fps: float) -> np.ndarray:
        """Exactly the samples of frames ``[start_frame, start_frame + n_frames)`` at ``fps``,
        zero-padded where the sound is shorter (:func:`frame_samples`)."""
        return self.samples(*frame_samples(start_frame, n_frames, fps, self.sample_rate))

    def forget_before(self, sample: int) -> None:
        """Drop the sound before output-timeline sample ``sample``."""
        if not self._pieces:
            return
        raw = sample - self.offset
        while self._pieces and self._first + self._pieces[0].size <= raw:
            self._first += self._pieces.popleft().size

    def close(self) -> None:
        """Close the file (what was read stays readable)."""
        self._files.close()


_LOST_GAP = 1.5
"""After refused packets, a jump between decoded frames of more than this many source frame
periods marks the frames in between as lost."""


def frame_samples(start_frame: int, n_frames: int, fps: float, sample_rate: int) -> tuple[int, int]:
    """The half-open sample range of frames ``[start_frame, start_frame + n_frames)``."""
    return round(start_frame / fps * sample_rate), round((start_frame + n_frames) / fps * sample_rate)
