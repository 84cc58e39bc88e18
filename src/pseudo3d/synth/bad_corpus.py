"""A reproducible corpus of bad inputs: one small file for each way a video can be hostile or odd.

:func:`make_bad_corpus` writes one file per kind of :data:`BAD_KINDS` (described in
:data:`BAD_KIND_DESCRIPTIONS`), named ``{kind}.mp4`` except ``webm_vp9_opus.webm``,
``mkv_h264.mkv``, ``avi_b_frames.avi``, ``missing_timestamps.ts`` and ``audio_format_change.ts``;
the playlists are text saved under a ``.mp4`` name. Clips are 3-4 s at 25 fps
with 48 kHz speech, 320 x 240 unless the kind is about size, so the whole corpus takes seconds.

Every file that shows a watchable talking face gets a truth sidecar ``{kind}.truth.json``
(:class:`~pseudo3d.synth.bad_kinds.FaceTruth`): ``kind``, the nominal ``fps``, per-frame
``times_s`` (seconds from the first frame) and ``mouth_open`` (of the speaking, largest face, in
[0, 1]), ``audio_s`` (seconds of speech), plus kind-specific fields such as ``rotation_deg`` or
``speech_audio_index``. Values are rounded to 4 decimals.

The display-rotation convention of ``rotation_*`` is in :mod:`pseudo3d.synth.bad_kinds`. The
playlists point at ``mkv_h264.mkv`` by a name relative to themselves (so the bytes do not depend
on the output directory, and FFmpeg's concat demuxer in its default safe mode would open it):
asking for either also writes ``mkv_h264``.

Files appear atomically (``.partial`` then rename), and the same seed gives byte-identical files.
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Callable, Collection
from functools import partial
from pathlib import Path

from pseudo3d.synth import bad_kinds
from pseudo3d.synth.bad_kinds import FaceTruth
from pseudo3d.synth.corpus import check_out_dir

ProgressCallback = Callable[[int, int, str], None]
# write(path, seed, key): the truth of a watchable face, or None (see pseudo3d.synth.bad_kinds).
KindWriter = Callable[[Path, int, int], FaceTruth | None]

BAD_KIND_DESCRIPTIONS: dict[str, str] = {
    "zero_byte": "An empty file.",
    "truncated_moov": "An H.264/AAC MP4 cut at 40 % of its bytes, so the moov index written at the end is missing.",
    "random_bytes": "64 KiB of seeded random bytes.",
    "text_file": "A few lines of English text.",
    "hls_playlist": "An #EXTM3U HLS media playlist whose one segment is the sibling file mkv_h264.mkv.",
    "concat_playlist": "An 'ffconcat version 1.0' script listing the sibling file mkv_h264.mkv.",
    "rotation_90": "A portrait H.264 MP4 stored turned 90 degrees clockwise, upright after its "
                   "display rotation of 90 degrees counter-clockwise.",
    "rotation_180": "A portrait H.264 MP4 stored upside down, upright after its display rotation of 180 degrees.",
    "rotation_270": "A portrait H.264 MP4 stored turned 270 degrees clockwise, upright after its "
                    "display rotation of 270 (read back as -90) degrees counter-clockwise.",
    "variable_frame_rate": "An H.264 MP4 with a 1/90000 s time base whose frame intervals vary at "
                           "random between 1/40 and 1/18 s (whole milliseconds).",
    "pix_fmt_yuv420p10le": "A 10-bit H.264 (High 10) MP4 in yuv420p10le.",
    "pix_fmt_yuv444p": "An H.264 (High 4:4:4) MP4 in yuv444p.",
    "tiny_48x48": "A 48 x 48 H.264 MP4 that the face nearly fills.",
    "declared_8k": "An H.264 MP4 of two flat grey frames declaring 7680 x 4320.",
    "multi_stream": "An H.264 MP4 with two AAC streams (speech first, quiet music second) and a mov_text "
                    "subtitle stream.",
    "short_audio": "A 4 s talking video whose speech audio lasts only 1 s.",
    "audio_only": "An MP4 with one AAC speech stream and no video.",
    "single_frame": "An H.264 MP4 with exactly one frame and 1/25 s of speech.",
    "two_faces": "Two talking faces: a large one on the left that speaks the audio, a half-size one on the right.",
    "tiny_face_full_body": "The whole astronaut portrait, face about 40 px tall, in a 640 x 480 scene.",
    "corrupted_packets": "A 6 s talking MP4 with 8 % of its media data overwritten by random bytes mid-file; "
                         "its ftyp and moov boxes are intact.",
    "webm_vp9_opus": "A WebM with VP9 video and 48 kHz Opus audio.",
    "mkv_h264": "A Matroska file with H.264 video and AAC audio.",
    "anamorphic_sar": "An H.264 MP4 stored 240 x 240 with a sample aspect ratio of 4:3: displayed 320 x 240.",
    "avi_b_frames": "H.264 with B-frames and 16-bit PCM in AVI: FFmpeg's frame times come out of order around "
                    "B-frames and one frame late at the start.",
    "missing_timestamps": "H.264 + AAC in MPEG-TS where every other video PES header, the first among them, "
                          "carries no timestamp.",
    "audio_format_change": "Two MPEG-TS recordings joined byte for byte: 48 kHz mono AAC up to frame 38, "
                           "44.1 kHz stereo AAC after it.",
}
BAD_KINDS: tuple[str, ...] = tuple(BAD_KIND_DESCRIPTIONS)

_PLAYLIST_TARGET = "mkv_h264"
_SUFFIXES = {"webm_vp9_opus": ".webm", "mkv_h264": ".mkv", "avi_b_frames": ".avi", "missing_timestamps": ".ts",
             "audio_format_change": ".ts"}


def bad_file_name(kind: str) -> str:
    """The file name of ``kind`` in the corpus."""
    return kind + _SUFFIXES.get(kind, ".mp4")


_WRITERS: dict[str, KindWriter] = {
    "zero_byte": bad_kinds.write_zero_byte,
    "truncated_moov": bad_kinds.write_truncated_moov,
    "random_bytes": bad_kinds.write_random_bytes,
    "text_file": bad_kinds.write_text_file,
    "hls_playlist": partial(bad_kinds.write_hls_playlist, target=bad_file_name(_PLAYLIST_TARGET)),
    "concat_playlist": partial(bad_kinds.write_concat_playlist, target=bad_file_name(_PLAYLIST_TARGET)),
    "rotation_90": partial(bad_kinds.write_rotated, rotation_deg=90),
    "rotation_180": partial(bad_kinds.write_rotated, rotation_deg=180),
    "rotation_270": partial(bad_kinds.write_rotated, rotation_deg=270),
    "variable_frame_rate": bad_kinds.write_variable_frame_rate,
    "pix_fmt_yuv420p10le": partial(bad_kinds.write_pix_fmt, pix_fmt="yuv420p10le"),
    "pix_fmt_yuv444p": partial(bad_kinds.write_pix_fmt, pix_fmt="yuv444p"),
    "tiny_48x48": bad_kinds.write_tiny,
    "declared_8k": bad_kinds.write_declared_8k,
    "multi_stream": bad_kinds.write_multi_stream,
    "short_audio": bad_kinds.write_short_audio,
    "audio_only": bad_kinds.write_audio_only,
    "single_frame": bad_kinds.write_single_frame,
    "two_faces": bad_kinds.write_two_faces,
    "tiny_face_full_body": bad_kinds.write_tiny_face_full_body,
    "corrupted_packets": bad_kinds.write_corrupted_packets,
    "webm_vp9_opus": bad_kinds.write_webm_vp9_opus,
    "mkv_h264": bad_kinds.write_mkv_h264,
    "anamorphic_sar": bad_kinds.write_anamorphic_sar,
    "avi_b_frames": bad_kinds.write_avi_b_frames,
    "missing_timestamps": bad_kinds.write_missing_timestamps,
    "audio_format_change": bad_kinds.write_audio_format_change,
}
# Kinds that refer to another kind's file, which is then written too, and first.
_NEEDS = {"hls_playlist": (_PLAYLIST_TARGET,), "concat_playlist": (_PLAYLIST_TARGET,)}
_NEEDED = frozenset(kind for needs in _NEEDS.values() for kind in needs)


def kind_key(kind: str) -> int:
    """The random-stream key of ``kind``: with the seed, what :mod:`pseudo3d.synth.bad_render`
    needs to render its clip again. Even, because ``render_two_faces`` also draws on key + 1."""
    return 2 * BAD_KINDS.index(kind)


def _check_arguments(out_dir, seed, kinds, progress) -> tuple[Path, tuple[str, ...]]:
    """The output directory and the kinds to write (with what they need), in :data:`BAD_KINDS` order."""
    out_dir = check_out_dir(out_dir)
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    if progress is not None and not callable(progress):
        raise ValueError(f"progress must be a callable (done, total, name) or None, got {progress!r}")
    if kinds is None:
        return out_dir, BAD_KINDS
    if isinstance(kinds, (str, bytes)) or not isinstance(kinds, Collection):
        raise ValueError(f"kinds must be a collection of kind names or None, got {kinds!r}")
    unknown = sorted({str(kind) for kind in kinds} - set(BAD_KINDS))
    if unknown:
        raise ValueError(f"unknown bad-input kinds {unknown}; known kinds: {', '.join(BAD_KINDS)}")
    wanted = set(kinds).union(*(_NEEDS.get(kind, ()) for kind in kinds))
    return out_dir, tuple(kind for kind in BAD_KINDS if kind in wanted)


def make_bad_corpus(out_dir: str | os.PathLike, seed: int = 0, kinds: Collection[str] | None = None,
                    progress: ProgressCallback | None = None) -> dict[str, Path]:
    """Write the bad-input corpus into ``out_dir`` (created if missing).

    Args:
        out_dir: output directory.
        seed: corpus seed, >= 0; the same seed gives byte-identical files.
        kinds: the kinds to write (names from :data:`BAD_KINDS`), or None for all. A playlist
            kind brings ``mkv_h264``, the file it points at.
        progress: called as ``progress(done, total, name)`` after each file is written.

    Returns:
        Kind -> path of its file, in :data:`BAD_KINDS` order (truth sidecars not included).
    """
    out_dir, todo = _check_arguments(out_dir, seed, kinds, progress)
    out_dir.mkdir(parents=True, exist_ok=True)
    # Files that others name come first, so a playlist never points at nothing.
    order = sorted(todo, key=lambda kind: kind not in _NEEDED)
    written: dict[str, Path] = {}
    for kind in order:
        path = out_dir / bad_file_name(kind)
        truth = _WRITERS[kind](path, int(seed), kind_key(kind))
        if truth is not None:
            truth.write(path, kind)
        written[kind] = path
        if progress is not None:
            progress(len(written), len(todo), path.name)
    return {kind: written[kind] for kind in todo}
