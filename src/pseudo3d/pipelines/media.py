"""Opening sources with PyAV, locally or through fsspec, and mapping PyAV errors to stage errors.

Inputs are untrusted, so FFmpeg is held to a policy whenever pseudo3d opens one:

* ``protocol_whitelist=file``: nothing inside a file can make FFmpeg open a network URL or
  another protocol (remote inputs reach FFmpeg only as a Python file object through fsspec,
  after their protocol passed ``limits.allowed_protocols``);
* ``format_whitelist`` = :data:`ALLOWED_DEMUXERS`: only ordinary media containers are parsed;
  playlist and concatenation demuxers (HLS, ffconcat), which open further files named inside the
  input, and image-sequence or device demuxers are never used. The container actually opened is
  checked against the list again.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import av
import fsspec
import numpy as np

from pseudo3d.errors import StageError
from pseudo3d.pipelines.sources import local_path


ALLOWED_DEMUXERS = ("mov", "matroska", "avi", "mpegts", "flv", "asf", "mpeg", "mxf", "ogg")
"""FFmpeg demuxers pseudo3d opens: MP4/MOV/M4V/3GP, Matroska/WebM, AVI, MPEG-TS, FLV, ASF/WMV,
MPEG-PS, MXF and Ogg."""
_FFMPEG_POLICY = {"protocol_whitelist": "file", "format_whitelist": ",".join(ALLOWED_DEMUXERS)}


@contextlib.contextmanager
def open_container(uri: str, stage: str) -> Iterator[av.container.InputContainer]:
    """Open ``uri`` for reading under the policy above; any failure to open becomes a
    ``StageError`` of ``stage``."""
    path = local_path(uri)
    with contextlib.ExitStack() as stack:
        try:
            if path is not None:
                container = av.open(str(path), mode="r", options=dict(_FFMPEG_POLICY))
            else:
                handle = stack.enter_context(fsspec.open(uri, "rb"))
                container = av.open(handle, mode="r", options=dict(_FFMPEG_POLICY))
        except FileNotFoundError:
            raise StageError(stage, "missing", f"file not found: {uri}") from None
        except av.error.FFmpegError as exc:
            raise StageError(stage, "not_a_video", "cannot open as a media file (not a video, or a truncated "
                                                    f"or corrupt one): {describe_av_error(exc)}") from None
        stack.callback(container.close)
        demuxer = set(container.format.name.split(","))
        if not demuxer & set(ALLOWED_DEMUXERS):
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


def normalise_rotation(degrees: float | int | None) -> int:
    """Round a display-matrix angle to 0/90/180/270."""
    if degrees is None:
        return 0
    return int(round(float(degrees) / 90.0)) % 4 * 90
