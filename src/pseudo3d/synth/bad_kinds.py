"""One writer per kind of bad input; :mod:`pseudo3d.synth.bad_corpus` names, orders and runs them.

A writer is called as ``write(path, seed, key)``: it writes the file ``path`` (complete or not at
all), draws its randomness only from ``(seed, key)`` (see
:func:`~pseudo3d.synth.bad_render.streams_for`), and returns a :class:`FaceTruth` when the file
shows a watchable talking face, else ``None``.

Display rotation (checked against FFmpeg's own autorotation, as OpenCV's FFmpeg reader applies
it, and against :attr:`av.VideoFrame.rotation`): ``rotation_deg`` is the display matrix's angle
in FFmpeg's sense, counter-clockwise degrees, the value :meth:`av.VideoStream.set_display_rotation`
takes and ``VideoFrame.rotation`` reads back (in [-180, 180): 180 reads as -180, 270 as -90). A
player shows the stored image turned ``rotation_deg`` counter-clockwise, i.e.
``np.rot90(stored, k=rotation_deg // 90)``, so the stored image is the upright one turned as
far clockwise: ``np.rot90(upright, k=-rotation_deg // 90)``. The legacy MP4 ``rotate`` tag and
OpenCV's ``CAP_PROP_ORIENTATION_META`` count clockwise: ``rotation_90`` reads there as 270.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from numpy.typing import NDArray
from scipy.signal import resample_poly

from pseudo3d.synth.bad import TRUNCATE_FRACTION
from pseudo3d.synth.bad_render import (
    TalkingClip, quiet_music, render_distant_portrait, render_speech, render_talking_clip, render_two_faces,
    streams_for, uniform_times,
)
from pseudo3d.synth.bad_writer import VP9_OPTIONS, X264_OPTIONS, AudioTrack, SubtitleCue, VideoTrack, write_media
from pseudo3d.synth.speech import SAMPLE_RATE
from pseudo3d.synth.talking import TRUTH_SUFFIX, write_truth

BAD_TRUTH_SCHEMA = "pseudo3d.synth.bad_truth/1"
FPS = Fraction(25)
CLIP_S = 3.0
LONG_CLIP_S = 4.0               # short_audio: room for a long stretch without sound
CORRUPT_CLIP_S = 6.0            # corrupted_packets: a clip of at least 2 s either side of the damage
LANDSCAPE = (320, 240)          # width, height
PORTRAIT = (240, 320)
RANDOM_BYTES = 64 * 1024
# Frame intervals of the variable-frame-rate clip, seconds, on a millisecond grid (exact in the
# 90 kHz time base, which the MP4 muxer keeps; it would store 1/1000 as 1/16000).
VFR_INTERVAL_S = (1 / 40, 1 / 18)
VFR_TIME_BASE = Fraction(1, 90_000)
# tiny_48x48 is cut from a larger render: a square of this fraction of the render's height
# around its middle, where the face (about 0.4 of the height) fills most of it.
_TINY_SIDE = 48
_TINY_RENDER = 160
_TINY_CROP_FRACTION = 0.56
DISTANT_SIZE = (640, 480)
DISTANT_FACE_PX = 40.0
HUGE_SIZE = (7680, 4320)
# Fraction of the mdat payload overwritten in corrupted_packets, centred in it.
CORRUPT_FRACTION = 0.08
# anamorphic_sar: a 320 x 240 picture stored 240 x 240 with pixels 4/3 as wide as tall (as HDV
# stores 1920 x 1080 in 1440 x 1080).
ANAMORPHIC_STORED = (240, 240)
ANAMORPHIC_SAR = Fraction(4, 3)
# audio_format_change: the frame where the second recording (44.1 kHz stereo after 48 kHz mono) starts.
FORMAT_CHANGE_FRAME = 38
FORMAT_CHANGE_RATE = 44_100
# MPEG-TS kinds start at this time (3 frames), so that no stream's first timestamp (AAC's encoder priming
# reaches 1024 samples before the audio) is negative and the muxer shifts nothing.
TS_START_S = 0.12
_ROUND = 4
_TEXT = ("Minutes of the garden committee, spring meeting.\n\n"
         "The committee agreed to plant beans along the south fence and to move the compost bins\n"
         "behind the shed. Volunteers are needed on Saturday mornings. This is a plain text file,\n"
         "not a video, whatever its name says.\n")


@dataclass(frozen=True)
class FaceTruth:
    """What a bad file with a watchable face shows, written as its ``.truth.json`` sidecar."""

    clip: TalkingClip
    fps: float                                  # nominal frame rate, frames per second
    extra: Mapping[str, object] = field(default_factory=dict)   # kind-specific fields

    def to_json(self, kind: str) -> dict:
        """``kind``, ``fps``, ``n_frames``, per-frame ``times_s`` (seconds) and ``mouth_open`` (of
        the speaking, largest face, in [0, 1]), ``audio_s`` (speech length, seconds), then extras."""
        return {
            "schema": BAD_TRUTH_SCHEMA,
            "kind": kind,
            "fps": round(self.fps, _ROUND),
            "n_frames": len(self.clip.times_s),
            "times_s": [round(float(t), _ROUND) for t in self.clip.times_s],
            "mouth_open": [round(float(m), _ROUND) for m in self.clip.mouth_open],
            "audio_s": round(self.clip.audio.shape[1] / SAMPLE_RATE, _ROUND),
            **self.extra,
        }

    def write(self, media_path: Path, kind: str) -> Path:
        path = media_path.with_suffix(TRUTH_SUFFIX)
        write_truth(path, self.to_json(kind))
        return path


def write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a ``.partial`` file, so it appears only when complete."""
    partial = path.with_name(path.name + ".partial")
    try:
        partial.write_bytes(data)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(path)


def _video(clip: TalkingClip, times_s: NDArray[np.float64] | None = None, **settings) -> VideoTrack:
    times = clip.times_s if times_s is None else times_s
    return VideoTrack(clip.frames, times, clip.width, clip.height, FPS, **settings)


def _speech(clip: TalkingClip, **settings) -> AudioTrack:
    return AudioTrack(clip.audio, **settings)


def _talking(seed: int, key: int, size: tuple[int, int] = LANDSCAPE, seconds: float = CLIP_S,
             audio_s: float | None = None) -> TalkingClip:
    return render_talking_clip(seed, key, *size, uniform_times(float(FPS), seconds), audio_s=audio_s)


def _encoded(clip: TalkingClip) -> bytes:
    """The bytes of ``clip`` as a plain H.264 + AAC MP4."""
    with tempfile.TemporaryDirectory(prefix="pseudo3d-bad-") as scratch:
        return write_media(Path(scratch) / "clip.mp4", "mp4", _video(clip), [_speech(clip)]).read_bytes()


def write_zero_byte(path: Path, seed: int, key: int) -> None:
    write_bytes(path, b"")


def write_random_bytes(path: Path, seed: int, key: int) -> None:
    write_bytes(path, streams_for(seed, key)["layout"].bytes(RANDOM_BYTES))


def write_text_file(path: Path, seed: int, key: int) -> None:
    write_bytes(path, _TEXT.encode("utf-8"))


def write_truncated_moov(path: Path, seed: int, key: int) -> None:
    """The first :data:`~pseudo3d.synth.bad.TRUNCATE_FRACTION` of a talking MP4, whose index
    (``moov``) the muxer writes last."""
    whole = _encoded(_talking(seed, key))
    write_bytes(path, whole[:int(len(whole) * TRUNCATE_FRACTION)])


def write_hls_playlist(path: Path, seed: int, key: int, target: str) -> None:
    """An HLS media playlist whose one segment is the file ``target``, relative to ``path``."""
    write_bytes(path, ("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:4\n#EXT-X-MEDIA-SEQUENCE:0\n"
                       f"#EXTINF:{CLIP_S:.3f},\n{target}\n#EXT-X-ENDLIST\n").encode("utf-8"))


def write_concat_playlist(path: Path, seed: int, key: int, target: str) -> None:
    """An FFmpeg concat script naming the file ``target``, relative to ``path``."""
    write_bytes(path, f"ffconcat version 1.0\nfile '{target}'\n".encode("utf-8"))


def write_rotated(path: Path, seed: int, key: int, rotation_deg: int) -> FaceTruth:
    """A portrait clip stored turned ``rotation_deg`` clockwise, with that display rotation
    (counter-clockwise, see the module docstring) to set it upright again."""
    clip = _talking(seed, key, PORTRAIT)
    stored = np.ascontiguousarray(np.rot90(clip.frames, k=-rotation_deg // 90, axes=(1, 2)))
    height, width = stored.shape[1:3]
    video = VideoTrack(stored, clip.times_s, width, height, FPS, rotation_deg=rotation_deg)
    write_media(path, "mp4", video, [_speech(clip)])
    return FaceTruth(clip, float(FPS), {"rotation_deg": rotation_deg, "stored_size": [width, height],
                                        "display_size": [clip.width, clip.height]})


def vfr_times(rng: np.random.Generator, seconds: float) -> NDArray[np.float64]:
    """Frame times from 0 with intervals uniform in :data:`VFR_INTERVAL_S`, on a 1 ms grid."""
    intervals = rng.uniform(*VFR_INTERVAL_S, size=int(seconds / VFR_INTERVAL_S[0]))
    times = np.concatenate([[0.0], np.cumsum(intervals)])
    return np.round(times[times < seconds] * 1000.0) / 1000.0


def write_variable_frame_rate(path: Path, seed: int, key: int) -> FaceTruth:
    times = vfr_times(streams_for(seed, key)["layout"], CLIP_S)
    clip = render_talking_clip(seed, key, *LANDSCAPE, times)
    write_media(path, "mp4", _video(clip, time_base=VFR_TIME_BASE), [_speech(clip)])
    return FaceTruth(clip, (len(times) - 1) / float(times[-1]))


def write_pix_fmt(path: Path, seed: int, key: int, pix_fmt: str) -> FaceTruth:
    """H.264 in ``pix_fmt`` (libx264 encodes 10-bit as High 10, 4:4:4 as High 4:4:4)."""
    clip = _talking(seed, key)
    write_media(path, "mp4", _video(clip, pix_fmt=pix_fmt), [_speech(clip)])
    return FaceTruth(clip, float(FPS), {"pix_fmt": pix_fmt})


def write_tiny(path: Path, seed: int, key: int) -> FaceTruth:
    """48 x 48 frames cut around the face of a larger render."""
    clip = _talking(seed, key, (_TINY_RENDER, _TINY_RENDER))
    half = int(round(_TINY_CROP_FRACTION * _TINY_RENDER / 2))
    middle = _TINY_RENDER // 2
    crops = clip.frames[:, middle - half:middle + half, middle - half:middle + half]
    frames = np.stack([cv2.resize(c, (_TINY_SIDE, _TINY_SIDE), interpolation=cv2.INTER_AREA) for c in crops])
    tiny = TalkingClip(frames, clip.times_s, clip.audio, clip.mouth_open)
    write_media(path, "mp4", _video(tiny), [_speech(tiny)])
    return FaceTruth(tiny, float(FPS))


def write_declared_8k(path: Path, seed: int, key: int) -> None:
    """Two flat grey 7680 x 4320 frames: cheap to write, costly for a reader that trusts the size."""
    width, height = HUGE_SIZE
    grey = np.full((height * 3 // 2, width), 128, np.uint8)     # yuv420p planes stacked
    frames = [av.VideoFrame.from_ndarray(grey, format="yuv420p") for _ in range(2)]
    options = {**X264_OPTIONS, "preset": "ultrafast"}
    write_media(path, "mp4", VideoTrack(frames, [0.0, 1 / float(FPS)], width, height, FPS, options=options))


def write_multi_stream(path: Path, seed: int, key: int) -> FaceTruth:
    """Video, then speech (audio 0), quiet music (audio 1) and ``mov_text`` subtitles."""
    clip = _talking(seed, key)
    music = quiet_music(streams_for(seed, key)["layout"], CLIP_S)
    cues = [SubtitleCue(0.2, 1.4, "Good morning."), SubtitleCue(1.6, 2.8, "This file has two audio tracks.")]
    write_media(path, "mp4", _video(clip), [_speech(clip, title="speech"), AudioTrack(music, title="music")],
                subtitles=cues)
    return FaceTruth(clip, float(FPS), {"speech_audio_index": 0, "music_audio_index": 1,
                                        "speech_stream_index": 1})


def write_short_audio(path: Path, seed: int, key: int) -> FaceTruth:
    """4 s of video with 1 s of speech; the mouth stays closed after it."""
    clip = _talking(seed, key, seconds=LONG_CLIP_S, audio_s=1.0)
    write_media(path, "mp4", _video(clip), [_speech(clip)])
    return FaceTruth(clip, float(FPS))


def write_audio_only(path: Path, seed: int, key: int) -> None:
    write_media(path, "mp4", audio=[AudioTrack(render_speech(seed, key, CLIP_S))])


def write_single_frame(path: Path, seed: int, key: int) -> FaceTruth:
    """One frame, with one frame's worth (1/25 s) of speech."""
    clip = _talking(seed, key, seconds=1 / float(FPS))
    write_media(path, "mp4", _video(clip), [_speech(clip)])
    return FaceTruth(clip, float(FPS))


def write_two_faces(path: Path, seed: int, key: int) -> FaceTruth:
    clip = render_two_faces(seed, key, *LANDSCAPE, uniform_times(float(FPS), CLIP_S))
    write_media(path, "mp4", _video(clip), [_speech(clip)])
    return FaceTruth(clip, float(FPS), {"speaker": "left, the larger face"})


def write_tiny_face_full_body(path: Path, seed: int, key: int) -> FaceTruth:
    times = uniform_times(float(FPS), CLIP_S)
    clip = render_distant_portrait(seed, key, *DISTANT_SIZE, times, DISTANT_FACE_PX)
    write_media(path, "mp4", _video(clip), [_speech(clip)])
    return FaceTruth(clip, float(FPS), {"face_height_px": DISTANT_FACE_PX})


def mdat_payload(data: bytes) -> tuple[int, int]:
    """Byte offsets ``[start, end)`` of the payload of the first top-level ``mdat`` box of an MP4."""
    offset = 0
    while offset + 8 <= len(data):
        size, box, header = int.from_bytes(data[offset:offset + 4], "big"), data[offset + 4:offset + 8], 8
        if size == 1:                           # a 64-bit size follows the type
            size, header = int.from_bytes(data[offset + 8:offset + 16], "big"), 16
        elif size == 0:                         # the box runs to the end of the file
            size = len(data) - offset
        if box == b"mdat":
            return offset + header, offset + size
        offset += max(size, header)
    raise ValueError("no mdat box in the MP4 data")


def write_corrupted_packets(path: Path, seed: int, key: int) -> FaceTruth:
    """A 6 s talking MP4 whose media data has :data:`CORRUPT_FRACTION` overwritten with random
    bytes in its middle; the boxes around it (``ftyp``, ``moov``) are intact."""
    clip = _talking(seed, key, seconds=CORRUPT_CLIP_S)
    data = bytearray(_encoded(clip))
    start, end = mdat_payload(bytes(data))
    span = int((end - start) * CORRUPT_FRACTION)
    first = start + (end - start - span) // 2
    data[first:first + span] = streams_for(seed, key)["layout"].bytes(span)
    write_bytes(path, bytes(data))
    return FaceTruth(clip, float(FPS), {"corrupt_bytes": [first, first + span]})


def write_webm_vp9_opus(path: Path, seed: int, key: int) -> FaceTruth:
    clip = _talking(seed, key)
    video = _video(clip, codec="libvpx-vp9", options=dict(VP9_OPTIONS))
    # The speech is at 48 kHz already, a rate Opus takes.
    write_media(path, "webm", video, [_speech(clip, codec="libopus")])
    return FaceTruth(clip, float(FPS))


def write_mkv_h264(path: Path, seed: int, key: int) -> FaceTruth:
    clip = _talking(seed, key)
    write_media(path, "matroska", _video(clip), [_speech(clip)])
    return FaceTruth(clip, float(FPS))


def write_anamorphic_sar(path: Path, seed: int, key: int) -> FaceTruth:
    """A talking clip shown 320 x 240, stored squeezed to :data:`ANAMORPHIC_STORED` with a sample
    aspect ratio of :data:`ANAMORPHIC_SAR` in the H.264 bitstream and the MP4 (``pasp``)."""
    clip = _talking(seed, key)
    stored = np.stack([cv2.resize(frame, ANAMORPHIC_STORED, interpolation=cv2.INTER_AREA) for frame in clip.frames])
    video = VideoTrack(stored, clip.times_s, *ANAMORPHIC_STORED, FPS, sample_aspect_ratio=ANAMORPHIC_SAR)
    write_media(path, "mp4", video, [_speech(clip)])
    return FaceTruth(clip, float(FPS), {"sample_aspect_ratio": [ANAMORPHIC_SAR.numerator, ANAMORPHIC_SAR.denominator],
                                        "stored_size": list(ANAMORPHIC_STORED),
                                        "display_size": [clip.width, clip.height]})


def write_avi_b_frames(path: Path, seed: int, key: int) -> FaceTruth:
    """H.264 with B-frames and 16-bit PCM in AVI. AVI keeps no presentation times: FFmpeg dates
    each frame from the decoding order plus the B-frame delay, so the times it gives come out of
    order around B-frames, and the first frame one frame period late."""
    clip = _talking(seed, key)
    write_media(path, "avi", _video(clip), [_speech(clip, codec="pcm_s16le")])
    return FaceTruth(clip, float(FPS))


def write_missing_timestamps(path: Path, seed: int, key: int) -> FaceTruth:
    """H.264 + AAC in MPEG-TS whose video PES headers alternately carry no timestamp, starting
    with the first: half the frames, the first among them, decode with no time (legal: MPEG-TS
    needs a time at least every 0.7 s, not on every frame)."""
    clip = _talking(seed, key)
    with tempfile.TemporaryDirectory(prefix="pseudo3d-bad-") as scratch:
        whole = write_media(Path(scratch) / "clip.ts", "mpegts", _video(clip, times_s=clip.times_s + TS_START_S),
                            [_speech(clip, start_s=TS_START_S)]).read_bytes()
    data, stripped = strip_video_pes_timestamps(whole, every=2)
    write_bytes(path, data)
    return FaceTruth(clip, float(FPS), {"video_pes_without_timestamp": stripped})


def write_audio_format_change(path: Path, seed: int, key: int) -> FaceTruth:
    """Two MPEG-TS recordings of one talking clip, concatenated byte for byte (as a recorder that
    restarts does): up to frame :data:`FORMAT_CHANGE_FRAME` with 48 kHz mono AAC, then with
    :data:`FORMAT_CHANGE_RATE` Hz stereo AAC, the timestamps running on."""
    clip = _talking(seed, key)
    cut_s = FORMAT_CHANGE_FRAME / float(FPS)
    cut = int(round(cut_s * SAMPLE_RATE))
    second = resample_poly(clip.audio[:, cut:], FORMAT_CHANGE_RATE // 300, SAMPLE_RATE // 300, axis=1)
    parts = [
        (slice(0, FORMAT_CHANGE_FRAME), AudioTrack(clip.audio[:1, :cut], start_s=TS_START_S)),
        (slice(FORMAT_CHANGE_FRAME, None), AudioTrack(np.clip(second, -1, 1).astype(np.float32),
                                                      sample_rate=FORMAT_CHANGE_RATE, start_s=TS_START_S + cut_s)),
    ]
    data = b""
    with tempfile.TemporaryDirectory(prefix="pseudo3d-bad-") as scratch:
        for number, (frames, audio) in enumerate(parts):
            video = VideoTrack(clip.frames[frames], clip.times_s[frames] + TS_START_S, clip.width, clip.height, FPS)
            data += write_media(Path(scratch) / f"part{number}.ts", "mpegts", video, [audio]).read_bytes()
    write_bytes(path, data)
    return FaceTruth(clip, float(FPS), {"audio_formats": [[SAMPLE_RATE, "mono", 0.0],
                                                          [FORMAT_CHANGE_RATE, "stereo", round(cut_s, _ROUND)]]})


_TS_PACKET = 188


def strip_video_pes_timestamps(data: bytes, every: int) -> tuple[bytes, int]:
    """MPEG-TS ``data`` with the timestamps of every ``every``-th video PES packet (the first,
    then each ``every``-th after it) removed, and how many were. The PES header keeps its length:
    its ``PTS_DTS_flags`` are cleared, so readers skip the old timestamp bytes as header padding."""
    out = bytearray(data)
    seen = stripped = 0
    for offset in range(0, len(out) - _TS_PACKET + 1, _TS_PACKET):
        if out[offset] != 0x47 or not out[offset + 1] & 0x40:   # not a packet that starts a PES
            continue
        start = offset + 4
        if out[offset + 3] & 0x20:                             # an adaptation field comes first
            start += 1 + out[offset + 4]
        if out[start:start + 3] != b"\x00\x00\x01" or out[start + 3] & 0xF0 != 0xE0:  # not video
            continue
        if seen % every == 0 and out[start + 7] & 0xC0:
            out[start + 7] &= 0x3F
            stripped += 1
        seen += 1
    return bytes(out), stripped
