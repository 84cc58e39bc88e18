"""The failure codes of the data contract, registered in one place.

Every failure row (the ``failures`` table) names a ``stage`` and an
``error`` code registered here, with what it means, what it does to its source and its *kind*:

* ``permanent``: the input is bad (or a threshold rejected it); building it again gives the same
  row, so neither a retry nor a resume touches it;
* ``transient``: the infrastructure failed (a worker killed by the OOM killer or the watchdog, an
  I/O error, out of memory); a build retries it ``limits.transient_retries`` times at once, and
  ``pseudo3d build --retry-failed`` builds it again later.

``docs/data-contract.md`` shows :func:`markdown_table`; a test keeps the two equal (regenerate
with ``python -m pseudo3d.schemas.failures``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

FailureKind = Literal["permanent", "transient"]

ANY_STAGE = "*"
"""A code that any stage may record."""
ANY_ERROR = "*"
"""A stage whose codes are open-ended: ``qa`` names the metric that rejected the clip."""


@dataclass(frozen=True)
class FailureCode:
    stage: str
    error: str
    kind: FailureKind
    source: str
    """What the row means for its source: ``failed``, or ``ok`` when other clips or frames remain."""
    meaning: str


_P: FailureKind = "permanent"
_T: FailureKind = "transient"
_FAILED, _PARTIAL = "failed", "ok if clips remain"

FAILURE_CODES: tuple[FailureCode, ...] = (
    FailureCode("probe", "missing", _P, _FAILED, "the file disappeared between listing and probing"),
    FailureCode("probe", "not_a_file", _P, _FAILED, "a FIFO, socket, device or directory named like a video; never opened"),
    FailureCode("probe", "unreadable", _T, _FAILED, "the file could not be read (an I/O or permission error)"),
    FailureCode("probe", "empty_file", _P, _FAILED, "0 bytes"),
    FailureCode("probe", "playlist_refused", _P, _FAILED, "an HLS or ffconcat playlist; refused before FFmpeg opens it"),
    FailureCode("probe", "protocol_refused", _P, _FAILED, "a URL whose protocol is not in `limits.allowed_protocols`"),
    FailureCode("probe", "refused_container", _P, _FAILED, "a container format outside the demuxer allow-list"),
    FailureCode("probe", "not_a_video", _P, _FAILED, "FFmpeg cannot open it (not a media file, or truncated/corrupt so its index is gone)"),
    FailureCode("probe", "no_video_stream", _P, _FAILED, "audio-only or data-only file"),
    FailureCode("probe", "undecodable", _P, _FAILED, "the video stream does not yield a frame"),
    FailureCode("probe", "no_frames", _P, _FAILED, "the video stream holds no decodable frame"),
    FailureCode("probe", "no_audio_stream", _P, _FAILED, "no audio and `decode.require_audio: true` (the default)"),
    FailureCode("probe", "too_large", _P, _FAILED, "declared frames larger than `limits.max_pixels`"),
    FailureCode("probe", "too_long", _P, _FAILED, "longer than `limits.max_duration_s`"),
    FailureCode("decode", "missing", _P, _FAILED, "the file disappeared between probing and decoding"),
    FailureCode("decode", "not_a_video", _P, _FAILED, "the file no longer opens as a video"),
    FailureCode("decode", "refused_container", _P, _FAILED, "the file no longer opens with an allowed demuxer"),
    FailureCode("decode", "too_long", _P, _FAILED, "a file without a declared length decoded past `limits.max_duration_s`"),
    FailureCode("decode", "decode_error", _P, _PARTIAL, "decoding broke mid-stream; the part before it is kept"),
    FailureCode("decode", "no_frames", _P, _FAILED, "the video stream yielded no frames"),
    FailureCode("decode", "corrupt_packets", _P, _PARTIAL, "packets did not decode; their frames are tracking gaps"),
    FailureCode("decode", "truncated", _P, _PARTIAL, "the frames end before the declared length (a partial download); what decoded is kept"),
    FailureCode("decode", "audio_error", _P, _FAILED, "the audio stream does not decode at all"),
    FailureCode("decode", "audio_short", _P, _PARTIAL, "the audio ends before the video; frames past it are not used"),
    FailureCode("track", "no_face", _P, _FAILED, "no face in any frame"),
    FailureCode("track", "face_orientation", _P, _PARTIAL, "landmarks disagreed with the detector's keypoints, or the face's way up was unclear; those frames are gaps"),
    FailureCode("track", "clip_too_short", _P, _PARTIAL, "a face track shorter than `track.min_clip_s` was dropped"),
    FailureCode("track", "no_usable_clip", _P, _FAILED, "face tracks were found, none long enough"),
    FailureCode("qa", ANY_ERROR, _P, _PARTIAL, "a QA filter rejected the clip; `error` is the manifest column of the first metric outside its threshold ([qa.md](qa.md))"),
    FailureCode("setup", "worker_setup_failed", _T, _FAILED, "a worker could not build its stages (reported per source instead of looping)"),
    FailureCode("worker", "crashed", _T, _FAILED, "the worker process died (a native crash, the OOM killer, a lost Ray node)"),
    FailureCode("worker", "timeout", _T, _FAILED, "the watchdog killed a worker that went past its deadline"),
    FailureCode(ANY_STAGE, "io_error", _T, "failed (per clip: ok if clips remain)", "an operating-system I/O error (a network filesystem, a full disk)"),
    FailureCode(ANY_STAGE, "out_of_memory", _T, "failed (per clip: ok if clips remain)", "out of memory (host or GPU); a GPU batch is halved down to one clip before this is recorded"),
    FailureCode(ANY_STAGE, "internal_error", _P, "failed (per clip: ok if clips remain)", "an unexpected exception (a bug or an unforeseen input); the traceback is in `logs/build.log`"),
)

_BY_KEY = {(code.stage, code.error): code for code in FAILURE_CODES}


def failure_code(stage: str, error: str) -> FailureCode:
    """The registered code of a failure row.

    Raises ``KeyError`` naming the pair when it is not registered (a bug: every code a stage
    records is registered above).
    """
    for key in ((stage, error), (ANY_STAGE, error), (stage, ANY_ERROR)):
        if key in _BY_KEY:
            return _BY_KEY[key]
    raise KeyError(f"failure code {stage}/{error} is not registered in pseudo3d.schemas.failures")


def failure_kind(stage: str, error: str) -> FailureKind:
    """``permanent`` or ``transient`` (see the module docstring)."""
    return failure_code(stage, error).kind


def markdown_table() -> str:
    """The registry as the Markdown table ``docs/data-contract.md`` shows."""
    lines = ["| stage | error | kind | source status | what happened |", "|---|---|---|---|---|"]
    for code in FAILURE_CODES:
        stage = "any" if code.stage == ANY_STAGE else code.stage
        error = "*metric*" if code.error == ANY_ERROR else f"`{code.error}`"
        lines.append(f"| {stage} | {error} | {code.kind} | {code.source} | {code.meaning} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown_table(), end="")
