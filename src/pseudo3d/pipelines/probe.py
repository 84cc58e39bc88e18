"""Probe stage: what a source holds, checked before any decoding work is spent on it."""

from __future__ import annotations

import av
import fsspec

from pseudo3d.config import DecodeConfig
from pseudo3d.errors import StageError
from pseudo3d.pipelines.media import describe_av_error, normalise_rotation, open_container
from pseudo3d.schemas.records import ProbeInfo, Source

STAGE = "probe"


class Prober:
    """Source → :class:`ProbeInfo`, or a ``StageError`` saying why the source cannot be used.

    The first video frame is decoded, so a file whose header parses but whose video does not
    decode fails here, cheaply, rather than in the decode stage.
    """

    def __init__(self, config: DecodeConfig):
        self.config = config

    def __call__(self, source: Source) -> ProbeInfo:
        try:
            fs, path = fsspec.core.url_to_fs(source.uri)
            size = int(fs.size(path))
        except FileNotFoundError:
            raise StageError(STAGE, "missing", f"file not found: {source.uri}") from None
        if size == 0:
            raise StageError(STAGE, "empty_file", "the file is empty (0 bytes)")
        with open_container(source.uri, STAGE) as container:
            return self._inspect(container, size)

    def _inspect(self, container, size: int) -> ProbeInfo:
        videos = list(container.streams.video)
        audios = list(container.streams.audio)
        if not videos:
            kinds = ", ".join(sorted({s.type for s in container.streams})) or "no streams"
            raise StageError(STAGE, "no_video_stream", f"the file has no video stream ({kinds})")
        video = videos[0]
        first = _first_frame(container, video)
        rotation = normalise_rotation(getattr(first, "rotation", 0))
        width, height = first.width, first.height
        if rotation in (90, 270):
            width, height = height, width
        rate = video.average_rate or video.guessed_rate or video.base_rate
        fps = float(rate) if rate else 0.0
        if container.duration is not None:
            duration = container.duration / av.time_base
        elif video.duration is not None and video.time_base is not None:
            duration = float(video.duration * video.time_base)
        else:
            duration = 0.0
        audio = audios[0] if audios else None
        if audio is None and self.config.require_audio:
            raise StageError(STAGE, "no_audio_stream",
                             "the file has no audio stream (set decode.require_audio: false to keep "
                             "videos without audio)")
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
            video_start_s=float(first.time or 0.0),
        )


def _first_frame(container, video):
    try:
        for frame in container.decode(video):
            return frame
    except av.error.FFmpegError as exc:
        raise StageError(STAGE, "undecodable", f"the video stream does not decode: {describe_av_error(exc)}") from None
    raise StageError(STAGE, "no_frames", "the video stream holds no decodable frame")
