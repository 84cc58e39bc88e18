"""Decode stage: frames on a fixed output grid and mono audio, both aligned to the first frame.

Frames are chosen by timestamp, not by counting: output frame ``k`` (at ``k / fps`` seconds after
the first video frame) shows the source frame whose presentation time is nearest, so 29.97 fps,
variable frame rate and dropped frames all land on the same exact grid. The audio is resampled to
mono at the output sample rate and shifted so that sample 0 is the instant of the first video frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import av
import numpy as np

from pseudo3d.config import DecodeConfig
from pseudo3d.errors import StageError
from pseudo3d.pipelines.media import describe_av_error, open_container, rotate_image
from pseudo3d.schemas.records import ProbeInfo, Source

STAGE = "decode"


@dataclass
class Frame:
    """One output-grid frame."""

    index: int
    """Position on the output grid; the frame is at ``index / fps`` seconds."""
    image: np.ndarray
    """(H, W, 3) uint8 RGB, rotation applied, possibly downscaled (see ``scale``)."""
    scale: float
    """Working pixels per source pixel (1.0 unless the frame was downscaled)."""
    damaged: bool = False
    """The source frame for this time was lost to packets that did not decode; ``image`` is the
    last good frame, and tracking treats this frame as a gap."""


class FrameDecoder:
    """Iterate the output-grid frames of one source.

    Packets that do not decode (corrupted data mid-stream) are skipped: ``corrupt_packets``
    counts them, and output frames whose source frame they held come out ``damaged`` (counted in
    ``damaged_frames``). Iteration stops early, without raising, if the stream
    cannot be read further (a truncated file); ``error`` then holds the reason so the caller can
    keep the good part and still record a failure row. A stream that yields no frame at all raises.
    """

    def __init__(self, source: Source, probe: ProbeInfo, config: DecodeConfig):
        self.source = source
        self.probe = probe
        self.fps = config.fps
        self.error: StageError | None = None
        self.damaged_frames = 0
        self._decoding = _Decoding()
        longest = max(probe.width, probe.height)
        self.scale = min(1.0, config.max_side / longest) if longest else 1.0
        self.size = (max(2, round(probe.width * self.scale)), max(2, round(probe.height * self.scale)))

    def __iter__(self) -> Iterator[Frame]:
        rotation = self.probe.rotation
        # Reformatting happens before rotation, so a 90/270 rotation swaps the coded size.
        coded = self.size if rotation in (0, 180) else self.size[::-1]
        source_period = 1.0 / self.probe.fps if self.probe.fps > 0 else 1.0 / self.fps
        step = 1.0 / self.fps
        index = 0
        held, held_time, held_image = None, 0.0, None
        t0 = None
        with open_container(self.source.uri, STAGE) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            lost = (0.0, 0.0)  # the latest stretch of source time whose frames were lost
            for frame in _decode_skipping(container, stream, self._decoding):
                if frame.time is None:
                    time = (held_time + source_period) if held is not None else 0.0
                else:
                    if t0 is None:
                        t0 = frame.time
                    time = frame.time - t0
                if held is not None:
                    if time <= held_time:
                        continue  # out-of-order or duplicate timestamp: keep the earlier frame
                    midpoint = 0.5 * (held_time + time)
                    if self.corrupt_packets and time - held_time > _LOST_GAP * source_period:
                        # Packets were refused and frames are missing here: grid times inside
                        # the stretch show no real frame.
                        lost = (held_time + 0.5 * source_period, time - 0.5 * source_period)
                    while index * step <= midpoint + 1e-9:
                        if held_image is None:
                            held_image = self._to_image(held, coded, rotation)
                        yield self._frame(index, held_image, lost)
                        index += 1
                held, held_time, held_image = frame, time, None
            if self._decoding.read_error is not None:
                self.error = StageError(STAGE, "decode_error", f"the video stream cannot be read past {held_time:.2f} s: "
                                                               f"{describe_av_error(self._decoding.read_error)}")
            if held is None:
                raise self.error or StageError(STAGE, "no_frames", "the video stream yielded no frames")
            end = held_time + source_period
            while index * step < end - 1e-6:
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


def decode_audio(source: Source, probe: ProbeInfo, sample_rate: int) -> np.ndarray:
    """The source's first audio stream as (n,) float32 mono at ``sample_rate``, sample 0 at the
    first video frame. Returns an empty array for a source without audio.

    Audio is placed by timestamp: a stretch missing from the stream (packets that did not decode,
    or a gap in the timestamps) becomes silence of the same length, so what follows stays in
    sync. A stream that cannot be read further keeps what was read (the clip audio is
    zero-padded later)."""
    if not probe.has_audio:
        return np.zeros(0, np.float32)
    chunks: list[np.ndarray] = []
    first_time = None
    expected_time = None  # where the next decoded audio frame should start, seconds
    with open_container(source.uri, STAGE) as container:
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="fltp", rate=sample_rate)
        decoding = _Decoding()
        for frame in _decode_skipping(container, stream, decoding):
            if frame.time is not None:
                if first_time is None:
                    first_time = frame.time
                elif expected_time is not None and frame.time - expected_time > _AUDIO_GAP_S:
                    chunks.append(np.zeros(round((frame.time - expected_time) * sample_rate), np.float32))
                expected_time = frame.time + frame.samples / frame.sample_rate
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray().mean(axis=0))
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray().mean(axis=0))
    problem = decoding.read_error or decoding.first_refusal
    if problem is not None and not chunks:
        raise StageError(STAGE, "audio_error", f"the audio stream does not decode: {describe_av_error(problem)}")
    audio = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    offset = round(((first_time or 0.0) - probe.video_start_s) * sample_rate)
    if offset > 0:
        audio = np.concatenate([np.zeros(offset, np.float32), audio])
    elif offset < 0:
        audio = audio[-offset:]
    return audio


_LOST_GAP = 1.5
"""After refused packets, a jump between decoded frames of more than this many source frame
periods marks the frames in between as lost."""
_AUDIO_GAP_S = 0.02
"""A jump in audio timestamps larger than this is filled with silence."""


@dataclass
class _Decoding:
    """What :func:`_decode_skipping` met on the way."""

    refused: int = 0
    """Packets the decoder refused (corrupted data)."""
    first_refusal: Exception | None = None
    read_error: Exception | None = None
    """Why the stream could not be read further, if it ended early."""


def _decode_skipping(container, stream, decoding: _Decoding) -> Iterator[av.frame.Frame]:
    """Decoded frames of ``stream``. A packet the decoder refuses is skipped and counted; a
    stream that cannot be read further (a truncated file) ends the iteration. ``decoding``
    records both."""
    packets = container.demux(stream)
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            return
        except av.error.FFmpegError as exc:
            decoding.read_error = exc
            return
        try:
            frames = packet.decode()
        except av.error.FFmpegError as exc:  # the decoder refused this packet's data
            decoding.refused += 1
            decoding.first_refusal = decoding.first_refusal or exc
            continue
        yield from frames


def slice_audio(audio: np.ndarray, start_frame: int, n_frames: int, fps: float, sample_rate: int) -> np.ndarray:
    """Exactly the samples of frames ``[start_frame, start_frame + n_frames)``, zero-padded
    where the audio track is shorter than the video."""
    start = round(start_frame / fps * sample_rate)
    stop = round((start_frame + n_frames) / fps * sample_rate)
    piece = audio[start:stop]
    if piece.shape[0] < stop - start:
        piece = np.concatenate([piece, np.zeros(stop - start - piece.shape[0], np.float32)])
    return piece
