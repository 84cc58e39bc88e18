"""Probe stage: what a source holds, checked before any decoding work is spent on it.

The width and height reported are those of the picture as displayed: rotated by the stream's
display rotation, and with non-square pixels made square. A stream whose sample aspect ratio
(SAR, from the container or else the bitstream, as FFmpeg's ``av_guess_sample_aspect_ratio``)
is not 1:1 keeps its height and has its width scaled by the SAR: 720x576 PAL widescreen with SAR
64:45 is displayed 1024x576, 1440x1080 HDV with SAR 4:3 is 1920x1080, 720x480 NTSC 4:3 with SAR
8:9 is 640x480. Frames are decoded to that size (:mod:`pseudo3d.pipelines.decode`), so landmarks,
crops and face sizes are all in display pixels.
"""

from __future__ import annotations

from fractions import Fraction

import av
import fsspec

from pseudo3d.config import DecodeConfig, LimitsConfig
from pseudo3d.errors import StageError
from pseudo3d.pipelines.decode import REORDER_DEPTH, first_frame_time
from pseudo3d.pipelines.media import describe_av_error, normalise_rotation, open_container
from pseudo3d.pipelines.sources import local_path
from pseudo3d.storage import protocol_of
from pseudo3d.schemas.records import ProbeInfo, Source

STAGE = "probe"


_PLAYLIST_MAGIC = (b"#EXTM3U", b"ffconcat")


class Prober:
    """Source → :class:`ProbeInfo`, or a ``StageError`` saying why the source cannot be used.

    Before FFmpeg sees the file: its protocol must be allowed (``limits.allowed_protocols``), it
    must not be empty, and it must not be a playlist (those make FFmpeg open the files they name).
    Then the first video frame is decoded, so a file whose header parses but whose video does not
    decode fails here, cheaply; and the declared size and length must be within ``limits``.
    """

    def __init__(self, config: DecodeConfig, limits: LimitsConfig | None = None):
        self.config = config
        self.limits = limits or LimitsConfig()

    def __call__(self, source: Source) -> ProbeInfo:
        protocol = protocol_of(source.uri)
        if protocol not in self.limits.allowed_protocols:
            raise StageError(STAGE, "protocol_refused",
                             f"protocol {protocol!r} is not in limits.allowed_protocols "
                             f"({', '.join(self.limits.allowed_protocols)})")
        local = local_path(source.uri)
        if local is not None and local.exists() and not local.is_file():
            # A FIFO or device would block the reader until the watchdog kills it; a directory is no video.
            kind = "directory" if local.is_dir() else "FIFO, socket or device"
            raise StageError(STAGE, "not_a_file", f"the path is a {kind}, not a regular file")
        try:
            fs, path = fsspec.core.url_to_fs(source.uri)
            size = int(fs.size(path))
            with fs.open(path, "rb") as handle:
                head = handle.read(16)
        except FileNotFoundError:
            raise StageError(STAGE, "missing", f"file not found: {source.uri}") from None
        except OSError as exc:
            raise StageError(STAGE, "unreadable", f"cannot read the file: {exc}") from None
        if size == 0:
            raise StageError(STAGE, "empty_file", "the file is empty (0 bytes)")
        if head.lstrip(b"\xef\xbb\xbf").startswith(_PLAYLIST_MAGIC):
            raise StageError(STAGE, "playlist_refused",
                             "the file is an HLS/concat playlist; playlists make FFmpeg open the files they "
                             "name, so pseudo3d refuses them")
        with open_container(source.uri, STAGE) as container:
            return self._inspect(container, size)

    def _check_limits(self, width: int, height: int, duration_s: float) -> None:
        """Refuse what would cost too much, from the declared size and length (nothing decoded yet)."""
        if width * height > self.limits.max_pixels:
            raise StageError(STAGE, "too_large", f"{width}x{height} frames exceed "
                                                 f"limits.max_pixels={self.limits.max_pixels}")
        if duration_s > self.limits.max_duration_s:
            raise StageError(STAGE, "too_long", f"{duration_s:.0f} s is longer than "
                                                f"limits.max_duration_s={self.limits.max_duration_s:g}")

    def _inspect(self, container, size: int) -> ProbeInfo:
        videos = list(container.streams.video)
        audios = list(container.streams.audio)
        if not videos:
            kinds = ", ".join(sorted({s.type for s in container.streams})) or "no streams"
            raise StageError(STAGE, "no_video_stream", f"the file has no video stream ({kinds})")
        video = videos[0]
        if container.duration is not None:
            duration = container.duration / av.time_base
        elif video.duration is not None and video.time_base is not None:
            duration = float(video.duration * video.time_base)
        else:
            duration = 0.0
        self._check_limits(video.codec_context.width, video.codec_context.height, duration)
        first, following = _first_frames(container, video)
        rotation = normalise_rotation(getattr(first, "rotation", 0))
        # The decoded size, should the header have understated it.
        self._check_limits(first.width, first.height, duration)
        width, height = display_size(first.width, first.height, video.sample_aspect_ratio)
        self._check_limits(width, height, duration)  # what the frames are scaled to
        if rotation in (90, 270):
            width, height = height, width
        rate = video.average_rate or video.guessed_rate or video.base_rate
        fps = float(rate) if rate else 0.0
        audio = audios[0] if audios else None
        if audio is None and self.config.require_audio:
            raise StageError(STAGE, "no_audio_stream",
                             "the file has no audio stream (set decode.require_audio: false to keep "
                             "videos without audio)")
        start_s, first_frame_s = first_frame_time(container, video, first, following)
        return ProbeInfo(
            container=container.format.name,
            size_bytes=size,
            duration_s=float(duration),
            video_codec=video.codec_context.name,
            width=int(width),
            height=int(height),
            fps=fps,
            rotation=rotation,
            n_video_streams=len(videos),
            n_audio_streams=len(audios),
            audio_codec=audio.codec_context.name if audio is not None else None,
            audio_sample_rate=int(audio.codec_context.sample_rate) if audio is not None else None,
            audio_channels=int(audio.codec_context.channels) if audio is not None else None,
            video_start_s=start_s,
            first_frame_s=first_frame_s,
            video_duration_s=(float(video.duration * video.time_base)
                              if video.duration is not None and video.time_base is not None else None),
        )


def display_size(width: int, height: int, sample_aspect_ratio: Fraction | None) -> tuple[int, int]:
    """(width, height) of a ``width`` x ``height`` picture of pixels ``sample_aspect_ratio``
    wide (width / height of one pixel; None or 0 means square): the height is kept and the width
    scaled, rounded to whole pixels."""
    if not sample_aspect_ratio or sample_aspect_ratio <= 0 or sample_aspect_ratio == 1:
        return width, height
    return max(1, round(width * sample_aspect_ratio)), height


def _first_frames(container, video) -> tuple[av.VideoFrame, list[av.VideoFrame]]:
    """The first decoded frame, and the frames after it up to the first one with a timestamp
    when it has none (at most :data:`REORDER_DEPTH`), to count its time back from."""
    first: av.VideoFrame | None = None
    following: list[av.VideoFrame] = []
    try:
        for frame in container.decode(video):
            if first is None:
                first = frame
            else:
                following.append(frame)
            if frame.time is not None or len(following) >= REORDER_DEPTH:
                break
    except av.error.FFmpegError as exc:
        if first is None:
            raise StageError(STAGE, "undecodable",
                             f"the video stream does not decode: {describe_av_error(exc)}") from None
    if first is None:
        raise StageError(STAGE, "no_frames", "the video stream holds no decodable frame")
    return first, following
