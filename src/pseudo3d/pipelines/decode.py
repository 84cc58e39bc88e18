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


class FrameDecoder:
    """Iterate the output-grid frames of one source.

    Iteration stops early, without raising, if the stream breaks after some frames were decoded
    (a truncated or corrupted file); ``error`` then holds the reason so the caller can keep the
    good part and still record a failure row. A stream that yields no frame at all raises.
    """

    def __init__(self, source: Source, probe: ProbeInfo, config: DecodeConfig):
        self.source = source
        self.probe = probe
        self.fps = config.fps
        self.error: StageError | None = None
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
            frames = container.decode(stream)
            while True:
                try:
                    frame = next(frames)
                except StopIteration:
                    break
                except av.error.FFmpegError as exc:
                    self.error = StageError(STAGE, "decode_error",
                                            f"video decoding stopped at {held_time:.2f} s: {describe_av_error(exc)}")
                    break
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
                    while index * step <= midpoint + 1e-9:
                        if held_image is None:
                            held_image = self._to_image(held, coded, rotation)
                        yield Frame(index, held_image, self.scale)
                        index += 1
                held, held_time, held_image = frame, time, None
            if held is None:
                raise self.error or StageError(STAGE, "no_frames", "the video stream yielded no frames")
            end = held_time + source_period
            while index * step < end - 1e-6:
                if held_image is None:
                    held_image = self._to_image(held, coded, rotation)
                yield Frame(index, held_image, self.scale)
                index += 1

    @staticmethod
    def _to_image(frame, coded: tuple[int, int], rotation: int) -> np.ndarray:
        image = frame.to_ndarray(format="rgb24", width=coded[0], height=coded[1])
        return rotate_image(image, rotation)


def decode_audio(source: Source, probe: ProbeInfo, sample_rate: int) -> np.ndarray:
    """The source's first audio stream as (n,) float32 mono at ``sample_rate``, sample 0 at the
    first video frame. Returns an empty array for a source without audio. Decoding errors after
    some audio was read keep what was read (the clip audio is zero-padded later)."""
    if not probe.has_audio:
        return np.zeros(0, np.float32)
    chunks: list[np.ndarray] = []
    first_time = None
    with open_container(source.uri, STAGE) as container:
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="fltp", rate=sample_rate)
        try:
            for frame in container.decode(stream):
                if first_time is None and frame.time is not None:
                    first_time = frame.time
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().mean(axis=0))
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().mean(axis=0))
        except av.error.FFmpegError as exc:
            if not chunks:
                raise StageError(STAGE, "audio_error", f"the audio stream does not decode: {describe_av_error(exc)}") from None
    audio = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    offset = round(((first_time or 0.0) - probe.video_start_s) * sample_rate)
    if offset > 0:
        audio = np.concatenate([np.zeros(offset, np.float32), audio])
    elif offset < 0:
        audio = audio[-offset:]
    return audio


def slice_audio(audio: np.ndarray, start_frame: int, n_frames: int, fps: float, sample_rate: int) -> np.ndarray:
    """Exactly the samples of frames ``[start_frame, start_frame + n_frames)``, zero-padded
    where the audio track is shorter than the video."""
    start = round(start_frame / fps * sample_rate)
    stop = round((start_frame + n_frames) / fps * sample_rate)
    piece = audio[start:stop]
    if piece.shape[0] < stop - start:
        piece = np.concatenate([piece, np.zeros(stop - start - piece.shape[0], np.float32)])
    return piece
