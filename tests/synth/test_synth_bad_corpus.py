import json
from fractions import Fraction

import av
import cv2
import numpy as np
import pytest

from pseudo3d.synth.bad_corpus import BAD_KIND_DESCRIPTIONS, BAD_KINDS, bad_file_name, kind_key, make_bad_corpus
from pseudo3d.synth.bad_kinds import CLIP_S, PORTRAIT, mdat_payload
from pseudo3d.synth.bad_render import render_talking_clip, uniform_times

SEED = 0  # the session bad corpus (conftest.bad_corpus) is written with seed 0
FACE_KINDS = {
    "rotation_90", "rotation_180", "rotation_270", "variable_frame_rate", "pix_fmt_yuv420p10le",
    "pix_fmt_yuv444p", "tiny_48x48", "multi_stream", "short_audio", "single_frame", "two_faces",
    "tiny_face_full_body", "corrupted_packets", "webm_vp9_opus", "mkv_h264",
    "anamorphic_sar", "avi_b_frames", "missing_timestamps", "audio_format_change",
}
# Kinds whose timestamps are broken on purpose: what PyAV reports is not the truth's times.
BROKEN_TIMES = {"corrupted_packets", "avi_b_frames", "missing_timestamps", "audio_format_change"}
UNOPENABLE = ("zero_byte", "truncated_moov", "random_bytes", "text_file", "hls_playlist")


@pytest.fixture(scope="module")
def corpus(bad_corpus):
    return bad_corpus


def truth(paths, kind):
    return json.loads(paths[kind].with_suffix(".truth.json").read_text())


def decoded_frames(path):
    """Every video frame that decodes, and how many packets the decoder refused."""
    frames, errors = [], 0
    with av.open(str(path)) as container:
        for packet in container.demux(video=0):
            try:
                frames.extend(packet.decode())
            except av.FFmpegError:
                errors += 1
    return frames, errors


def audio_seconds(path, index=0):
    with av.open(str(path)) as container:
        stream = container.streams.audio[index]
        return sum(frame.samples for frame in container.decode(stream)) / stream.sample_rate


@pytest.mark.slow
def test_every_kind_is_written_once_under_its_name(corpus):
    out_dir, _, printed = corpus  # written by `pseudo3d synth DIR --bad-corpus` (conftest.bad_corpus)
    assert "docs/hardening.md" in printed and f"wrote {len(BAD_KINDS)} broken, odd or hostile input(s)" in printed
    calls = []
    paths = make_bad_corpus(out_dir.with_name("again"), seed=SEED, kinds=["zero_byte", "text_file"],
                            progress=lambda done, total, name: calls.append((done, total, name)))
    assert [(done, total) for done, total, _ in calls] == [(1, 2), (2, 2)]
    assert sorted(name for _, _, name in calls) == sorted(path.name for path in paths.values())
    paths = {kind: out_dir / bad_file_name(kind) for kind in BAD_KINDS}
    assert sorted(path.name for path in out_dir.iterdir() if not path.name.endswith(".json")) == sorted(
        path.name for path in paths.values())
    assert list(paths) == list(BAD_KINDS) == list(BAD_KIND_DESCRIPTIONS)
    assert len(BAD_KINDS) == 27
    assert {kind: path.name for kind, path in paths.items()} == {kind: bad_file_name(kind) for kind in BAD_KINDS}
    assert paths["webm_vp9_opus"].name == "webm_vp9_opus.webm" and paths["mkv_h264"].name == "mkv_h264.mkv"
    assert paths["hls_playlist"].name == "hls_playlist.mp4" and paths["avi_b_frames"].name == "avi_b_frames.avi"
    assert paths["missing_timestamps"].name == "missing_timestamps.ts"
    assert not list(out_dir.glob("*.partial"))
    sidecars = {path.name.removesuffix(".truth.json") for path in out_dir.glob("*.truth.json")}
    assert sidecars == FACE_KINDS


@pytest.mark.slow
def test_truth_sidecars_match_their_videos(corpus):
    _, paths, _ = corpus
    for kind in sorted(FACE_KINDS - BROKEN_TIMES):
        record = truth(paths, kind)
        assert record["kind"] == kind
        assert len(record["times_s"]) == len(record["mouth_open"]) == record["n_frames"]
        assert all(0.0 <= m <= 1.0 for m in record["mouth_open"])
        frames, errors = decoded_frames(paths[kind])
        assert errors == 0 and len(frames) == record["n_frames"], kind
        assert np.allclose([frame.time for frame in frames], record["times_s"], atol=1e-3), kind
        assert record["audio_s"] == pytest.approx(audio_seconds(paths[kind]), abs=0.03), kind


@pytest.mark.slow
@pytest.mark.parametrize("kind", UNOPENABLE)
def test_files_that_are_not_media_do_not_open(corpus, kind):
    _, paths, _ = corpus
    with pytest.raises(av.FFmpegError):
        av.open(str(paths[kind]))


@pytest.mark.slow
def test_raw_files_hold_what_they_say(corpus):
    _, paths, _ = corpus
    assert paths["zero_byte"].stat().st_size == 0
    assert paths["random_bytes"].stat().st_size == 64 * 1024
    assert paths["text_file"].read_text(encoding="ascii").startswith("Minutes of the garden committee")
    data = paths["truncated_moov"].read_bytes()
    assert data[4:8] == b"ftyp" and b"mdat" in data[:64] and b"moov" not in data


@pytest.mark.slow
def test_playlists_name_the_sibling_video(corpus):
    out_dir, paths, _ = corpus
    hls = paths["hls_playlist"].read_text().splitlines()
    assert hls[0] == "#EXTM3U" and "mkv_h264.mkv" in hls and hls[-1] == "#EXT-X-ENDLIST"
    concat = paths["concat_playlist"].read_text().splitlines()
    assert concat == ["ffconcat version 1.0", "file 'mkv_h264.mkv'"]
    assert (out_dir / "mkv_h264.mkv").exists()
    # FFmpeg detects the concat script by its content, whatever the name, and reads the file it
    # lists: exactly what a hardened build must refuse.
    with av.open(str(paths["concat_playlist"])) as container:
        assert container.format.name == "concat"
        assert sum(1 for _ in container.decode(video=0)) == truth(paths, "mkv_h264")["n_frames"]


@pytest.mark.slow
@pytest.mark.parametrize("rotation_deg", [90, 180, 270])
def test_rotated_video_is_upright_after_its_display_rotation(corpus, rotation_deg):
    _, paths, _ = corpus
    kind = f"rotation_{rotation_deg}"
    record = truth(paths, kind)
    assert record["rotation_deg"] == rotation_deg
    upright = render_talking_clip(SEED, kind_key(kind), *PORTRAIT, uniform_times(25.0, CLIP_S)).frames
    with av.open(str(paths[kind])) as container:
        stream = container.streams.video[0]
        stored_size = (stream.codec_context.width, stream.codec_context.height)
        frame = next(container.decode(stream))
    assert frame.rotation == (rotation_deg + 180) % 360 - 180        # counter-clockwise, in [-180, 180)
    assert stored_size == (PORTRAIT if rotation_deg == 180 else PORTRAIT[::-1])
    stored = frame.to_ndarray(format="rgb24")
    shown = np.rot90(stored, k=rotation_deg // 90)                   # turned counter-clockwise
    assert np.abs(shown.astype(int) - upright[0]).mean() < 6.0
    assert np.abs(np.rot90(shown, 2).astype(int) - upright[0]).mean() > 20.0
    # OpenCV's FFmpeg reader applies the display matrix as FFmpeg's own tools do.
    capture = cv2.VideoCapture(str(paths[kind]))
    capture.set(cv2.CAP_PROP_ORIENTATION_AUTO, 1)
    ok, bgr = capture.read()
    capture.release()
    assert ok and bgr.shape == upright[0].shape
    assert np.abs(bgr[..., ::-1].astype(int) - upright[0]).mean() < 6.0


@pytest.mark.slow
def test_variable_frame_rate_has_irregular_intervals(corpus):
    _, paths, _ = corpus
    with av.open(str(paths["variable_frame_rate"])) as container:
        assert container.streams.video[0].time_base.denominator >= 1000
        times = np.array([frame.time for frame in container.decode(video=0)])
    intervals = np.diff(times)
    assert intervals.min() >= 1 / 40 - 1e-3 and intervals.max() <= 1 / 18 + 1e-3
    assert intervals.std() > 0.15 * intervals.mean()
    assert len(np.unique(np.round(intervals, 3))) > 10


@pytest.mark.slow
@pytest.mark.parametrize("kind, pix_fmt", [("pix_fmt_yuv420p10le", "yuv420p10le"), ("pix_fmt_yuv444p", "yuv444p")])
def test_pixel_formats(corpus, kind, pix_fmt):
    _, paths, _ = corpus
    with av.open(str(paths[kind])) as container:
        assert container.streams.video[0].codec_context.name == "h264"
        assert container.streams.video[0].codec_context.pix_fmt == pix_fmt
        assert next(container.decode(video=0)).format.name == pix_fmt


@pytest.mark.slow
@pytest.mark.parametrize("kind, size", [("tiny_48x48", (48, 48)), ("declared_8k", (7680, 4320)),
                                        ("tiny_face_full_body", (640, 480)), ("two_faces", (320, 240))])
def test_frame_sizes(corpus, kind, size):
    _, paths, _ = corpus
    with av.open(str(paths[kind])) as container:
        video = container.streams.video[0].codec_context
        assert (video.width, video.height) == size


@pytest.mark.slow
def test_multi_stream_has_speech_then_music_then_subtitles(corpus):
    _, paths, _ = corpus
    path = paths["multi_stream"]
    with av.open(str(path)) as container:
        assert [stream.type for stream in container.streams] == ["video", "audio", "audio", "subtitle"]
        # FFmpeg's MP4 muxer stores a stream's title as its track name.
        assert [stream.metadata.get("name") for stream in container.streams.audio] == ["speech", "music"]
        assert container.streams.subtitles[0].codec_context.name == "mov_text"
    record = truth(paths, "multi_stream")
    assert (record["speech_audio_index"], record["speech_stream_index"]) == (0, 1)
    # The speech's loudness follows the mouth; the music's does not.
    correlations = []
    for index in (0, 1):
        with av.open(str(path)) as container:
            sound = np.concatenate([f.to_ndarray() for f in container.decode(container.streams.audio[index])], axis=1)
        mono, rate = sound.mean(axis=0), 48_000
        loudness = [np.sqrt(np.mean(mono[int(t * rate):int((t + 0.04) * rate)] ** 2)) for t in record["times_s"]]
        correlations.append(np.corrcoef(loudness, record["mouth_open"])[0, 1])
    assert correlations[0] > 0.6 and correlations[0] > correlations[1] + 0.3


@pytest.mark.slow
def test_short_audio_and_audio_only_and_single_frame(corpus):
    _, paths, _ = corpus
    frames, _ = decoded_frames(paths["short_audio"])
    assert len(frames) == 100 and audio_seconds(paths["short_audio"]) == pytest.approx(1.0, abs=0.03)
    assert truth(paths, "short_audio")["audio_s"] == 1.0
    with av.open(str(paths["audio_only"])) as container:
        assert [stream.type for stream in container.streams] == ["audio"]
        assert container.streams.audio[0].codec_context.name == "aac"
    with av.open(str(paths["single_frame"])) as container:
        assert container.streams.video[0].frames == 1
    frames, _ = decoded_frames(paths["single_frame"])
    assert len(frames) == 1 and truth(paths, "single_frame")["n_frames"] == 1


@pytest.mark.slow
def test_corrupted_packets_open_but_do_not_decode_cleanly(corpus):
    _, paths, _ = corpus
    data = paths["corrupted_packets"].read_bytes()
    first, end = truth(paths, "corrupted_packets")["corrupt_bytes"]
    start, stop = mdat_payload(data)
    assert start < first < end < stop and data[4:8] == b"ftyp" and b"moov" in data[stop:stop + 8]
    with av.open(str(paths["corrupted_packets"])) as container:
        assert container.streams.video[0].frames == 150
    frames, errors = decoded_frames(paths["corrupted_packets"])
    assert errors > 0 or len(frames) < 150


@pytest.mark.slow
@pytest.mark.parametrize("kind, video_codec, audio_codec", [("webm_vp9_opus", "vp9", "opus"),
                                                             ("mkv_h264", "h264", "aac")])
def test_matroska_family(corpus, kind, video_codec, audio_codec):
    _, paths, _ = corpus
    with av.open(str(paths[kind])) as container:
        assert container.format.name == "matroska,webm"
        assert container.streams.video[0].codec_context.name == video_codec
        assert container.streams.audio[0].codec_context.name == audio_codec
        assert container.streams.audio[0].codec_context.sample_rate == 48_000


@pytest.mark.slow
def test_anamorphic_video_stores_squeezed_pixels(corpus):
    _, paths, _ = corpus
    record = truth(paths, "anamorphic_sar")
    assert record["stored_size"] == [240, 240] and record["display_size"] == [320, 240]
    with av.open(str(paths["anamorphic_sar"])) as container:
        stream = container.streams.video[0]
        assert stream.sample_aspect_ratio == Fraction(4, 3) == stream.codec_context.sample_aspect_ratio
        frame = next(container.decode(stream))
    assert (frame.width, frame.height) == (240, 240)
    upright = render_talking_clip(SEED, kind_key("anamorphic_sar"), 320, 240, uniform_times(25.0, CLIP_S)).frames[0]
    shown = frame.to_ndarray(format="rgb24", width=320, height=240)
    assert np.abs(shown.astype(int) - upright).mean() < 8.0


def _decoding_order_times(path):
    with av.open(str(path)) as container:
        return [frame.time for frame in container.decode(video=0)]


@pytest.mark.slow
def test_timestamp_kinds_reproduce_what_real_files_do(corpus):
    _, paths, _ = corpus
    times = _decoding_order_times(paths["avi_b_frames"])
    assert len(times) == 75 and times[0] == pytest.approx(0.04)                 # one frame late
    assert sum(later <= earlier for earlier, later in zip(times, times[1:])) > 5  # out of order
    with av.open(str(paths["avi_b_frames"])) as container:
        assert container.format.name == "avi"
        assert container.streams.audio[0].codec_context.name == "pcm_s16le"
    times = _decoding_order_times(paths["missing_timestamps"])
    record = truth(paths, "missing_timestamps")
    assert len(times) == 75 and times[0] is None
    assert sum(t is None for t in times) >= record["video_pes_without_timestamp"] - 2 >= 30
    with av.open(str(paths["audio_format_change"])) as container:
        formats = []
        for frame in container.decode(audio=0):
            if not formats or formats[-1][:2] != (frame.sample_rate, frame.layout.name):
                formats.append((frame.sample_rate, frame.layout.name, frame.time))
    assert [f[:2] for f in formats] == [(48_000, "mono"), (44_100, "stereo")]
    # The second recording's sound (priming included) starts with frame 38, 0.12 s on the clock.
    assert formats[1][2] == pytest.approx(0.12 + 38 / 25, abs=0.03)
    assert truth(paths, "audio_format_change")["audio_formats"][1] == [44_100, "stereo", 1.52]


@pytest.mark.slow
def test_same_seed_gives_the_same_bytes(corpus, tmp_path):
    _, paths, _ = corpus
    kinds = ["random_bytes", "variable_frame_rate", "multi_stream", "corrupted_packets", "webm_vp9_opus",
             "avi_b_frames", "audio_format_change"]
    again = make_bad_corpus(tmp_path / "again", seed=SEED, kinds=kinds)
    assert list(again) == kinds
    for kind in kinds:
        assert again[kind].read_bytes() == paths[kind].read_bytes(), kind
    assert (again["multi_stream"].with_suffix(".truth.json").read_bytes()
            == paths["multi_stream"].with_suffix(".truth.json").read_bytes())
    other = make_bad_corpus(tmp_path / "other", seed=SEED + 1, kinds=["random_bytes"])
    assert other["random_bytes"].read_bytes() != paths["random_bytes"].read_bytes()


@pytest.mark.slow
def test_a_playlist_brings_the_file_it_names(tmp_path):
    paths = make_bad_corpus(tmp_path, kinds=["concat_playlist", "zero_byte"])
    assert list(paths) == ["zero_byte", "concat_playlist", "mkv_h264"]
    assert all(path.exists() for path in paths.values())


def test_bad_arguments_are_named(tmp_path):
    with pytest.raises(ValueError, match=r"unknown bad-input kinds \['nope', 'zero_bytes'\]"):
        make_bad_corpus(tmp_path, kinds=["zero_byte", "zero_bytes", "nope"])
    with pytest.raises(ValueError, match="kinds must be a collection"):
        make_bad_corpus(tmp_path, kinds="zero_byte")
    with pytest.raises(ValueError, match="seed"):
        make_bad_corpus(tmp_path, seed=-1)
    with pytest.raises(ValueError, match="progress"):
        make_bad_corpus(tmp_path, progress="yes")
    assert not list(tmp_path.iterdir())
