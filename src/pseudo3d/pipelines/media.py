"""Opening sources with PyAV, locally or through fsspec, and mapping PyAV errors to stage errors.

Inputs are untrusted, so FFmpeg is held to a policy whenever pseudo3d opens one:

* ``protocol_whitelist=file``: nothing inside a file can make FFmpeg open a network URL or
  another protocol (remote inputs reach FFmpeg only as a Python file object through fsspec,
  after their protocol passed ``limits.allowed_protocols``);
* ``format_whitelist`` = :data:`ALLOWED_DEMUXERS`: only ordinary media containers are parsed;
  playlist and concatenation demuxers (HLS, ffconcat), which open further files named inside the
  input, and image-sequence or device demuxers are never used. The container actually opened is
  checked against the list again. Audio files (``pseudo3d animate``, finetune recordings) may
  also use the plain audio demuxers of :data:`AUDIO_DEMUXERS`; a build never does.

:func:`decode_skipping` reads one stream's frames through packets that do not decode (skipped and
counted) and stops quietly where the file cannot be read further, for the video and audio readers.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator

import av
import fsspec
import numpy as np

from pseudo3d.errors import StageError
from pseudo3d.pipelines.sources import local_path


ALLOWED_DEMUXERS = ("mov", "matroska", "avi", "mpegts", "flv", "asf", "mpeg", "mxf", "ogg")
"""FFmpeg demuxers pseudo3d opens: MP4/MOV/M4V/3GP, Matroska/WebM, AVI, MPEG-TS, FLV, ASF/WMV,
MPEG-PS, MXF and Ogg."""
AUDIO_DEMUXERS = ("wav", "w64", "aiff", "flac", "mp3", "aac", "caf")
"""Demuxers allowed in addition when an audio file is read (``audio=True``): WAV/Wave64, AIFF,
FLAC, MP3, ADTS AAC and CAF. M4A/AAC-in-MP4 (``mov``), Opus/Vorbis (``ogg``) and MKA/WebM
(``matroska``) are in :data:`ALLOWED_DEMUXERS` already."""


def _policy(demuxers: tuple[str, ...]) -> dict[str, str]:
    return {"protocol_whitelist": "file", "format_whitelist": ",".join(demuxers)}


_decoder_threads = 0
"""FFmpeg decoder threads per stream; 0 lets FFmpeg choose (as many as the machine has cores)."""


def limit_threads(threads: int) -> None:
    """Cap this process's native thread pools at ``threads``: FFmpeg's decoders (every container
    opened afterwards), OpenCV's, and PyTorch's when it is loaded. A worker calls it once, with its
    share of the machine (``limits.threads_per_worker``), so 64 workers do not each start a
    thread per core. MediaPipe's graphs keep their own small pools. ``threads=0`` lifts the
    decoders' cap and leaves OpenCV and PyTorch as they are."""
    global _decoder_threads
    import sys

    import cv2

    _decoder_threads = threads
    if threads < 1:
        return
    cv2.setNumThreads(threads)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)


@contextlib.contextmanager
def open_container(uri: str, stage: str, *, audio: bool = False) -> Iterator[av.container.InputContainer]:
    """Open ``uri`` for reading under the policy above; any failure to open becomes a
    ``StageError`` of ``stage``. ``audio=True`` also allows :data:`AUDIO_DEMUXERS`."""
    demuxers = ALLOWED_DEMUXERS + AUDIO_DEMUXERS if audio else ALLOWED_DEMUXERS
    what = "an audio or video file" if audio else "a video"
    path = local_path(uri)
    with contextlib.ExitStack() as stack:
        try:
            if path is not None:
                container = av.open(str(path), mode="r", options=_policy(demuxers))
            else:
                handle = stack.enter_context(fsspec.open(uri, "rb"))
                container = av.open(handle, mode="r", options=_policy(demuxers))
        except FileNotFoundError:
            raise StageError(stage, "missing", f"file not found: {uri}") from None
        except IsADirectoryError:
            raise StageError(stage, "not_a_video", f"{uri} is a directory, not {what}") from None
        except av.error.FFmpegError as exc:
            raise StageError(stage, "not_a_video", f"cannot open as a media file (not {what}, a truncated "
                                                    f"or corrupt one, or a container outside pseudo3d's allow-list: "
                                                    f"{', '.join(demuxers)}): {describe_av_error(exc)}") from None
        stack.callback(container.close)
        if _decoder_threads:
            for stream in container.streams.video:
                stream.thread_count = _decoder_threads
        demuxer = set(container.format.name.split(","))
        if not demuxer & set(demuxers):
            raise StageError(stage, "refused_container", f"container format {container.format.name!r} is not "
                                                          "in pseudo3d's allow-list")
        yield container


def describe_av_error(exc: Exception) -> str:
    """FFmpeg's reason without PyAV's errno prefix and file name."""
    reason = getattr(exc, "strerror", None)
    return str(reason) if reason else (str(exc) or type(exc).__name__)


def rotate_image(image: np.ndarray, rotation: int) -> np.ndarray:
    """Apply a display rotation (degrees counter-clockwise, a multiple of 90) to an HxWxC image."""
    turns = (rotation // 90) % 4
    return np.ascontiguousarray(np.rot90(image, k=turns)) if turns else image


def rotate_points(points: np.ndarray, rotation: int, width: float, height: float) -> np.ndarray:
    """Where pixel positions ``(..., 2)`` (x right, y down, 0..width × 0..height) of a
    ``width`` × ``height`` image land in :func:`rotate_image` of it by ``rotation`` degrees
    counter-clockwise (a multiple of 90)."""
    points = np.array(points, np.float64, copy=True)
    for _ in range((rotation // 90) % 4):  # one counter-clockwise quarter turn: (x, y) → (y, width − x)
        points = np.stack([points[..., 1], width - points[..., 0]], axis=-1)
        width, height = height, width
    return points


def normalise_rotation(degrees: float | int | None) -> int:
    """Round a display-matrix angle to 0/90/180/270."""
    if degrees is None:
        return 0
    return int(round(float(degrees) / 90.0)) % 4 * 90


@dataclass
class Decoding:
    """What :func:`decode_skipping` met on the way."""

    refused: int = 0
    """Packets the decoder refused (corrupted data)."""
    first_refusal: Exception | None = None
    read_error: Exception | None = None
    """Why the stream could not be read further, if it ended early."""


def decode_skipping(container, stream, decoding: Decoding) -> Iterator[av.frame.Frame]:
    """Decoded frames of ``stream``, in the order the decoder returns them (presentation order).
    A packet the decoder refuses is skipped and counted; a stream that cannot be read further (a
    truncated file) ends the iteration. ``decoding`` records both."""
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
