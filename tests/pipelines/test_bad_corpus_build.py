"""The bad-input corpus through a real build: every kind's outcome, as docs/hardening.md states it."""

import json
import re
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from pseudo3d.pipelines.runners.local import build_local
from pseudo3d.pipelines.sources import resolve_sources
from pseudo3d.qa.sync import NATURAL_LEAD_S
from pseudo3d.schemas.shard_reader import iter_samples
from pseudo3d.synth.bad_corpus import BAD_KINDS, bad_file_name

pytestmark = pytest.mark.slow
DOCS = Path(__file__).resolve().parents[2] / "docs" / "hardening.md"

# kind → (source status, the failure rows' "stage/error" codes, in row order)
EXPECTED = {
    "zero_byte": ("failed", ["probe/empty_file"]),
    "truncated_moov": ("failed", ["probe/not_a_video"]),
    "random_bytes": ("failed", ["probe/not_a_video"]),
    "text_file": ("failed", ["probe/not_a_video"]),
    "hls_playlist": ("failed", ["probe/playlist_refused"]),
    "concat_playlist": ("failed", ["probe/playlist_refused"]),
    "rotation_90": ("ok", []),
    "rotation_180": ("ok", []),
    "rotation_270": ("ok", []),
    "variable_frame_rate": ("ok", []),
    "pix_fmt_yuv420p10le": ("ok", []),
    "pix_fmt_yuv444p": ("ok", []),
    "tiny_48x48": ("failed", ["qa/face_size_px"]),
    "declared_8k": ("failed", ["probe/too_large"]),
    "multi_stream": ("ok", []),
    "short_audio": ("failed", ["decode/audio_short"]),
    "audio_only": ("failed", ["probe/no_video_stream"]),
    "single_frame": ("failed", ["track/clip_too_short", "track/no_usable_clip"]),
    "two_faces": ("ok", []),
    "tiny_face_full_body": ("failed", ["qa/face_size_px"]),
    "corrupted_packets": ("ok", ["decode/corrupt_packets"]),
    "webm_vp9_opus": ("ok", []),
    "mkv_h264": ("ok", []),
    "anamorphic_sar": ("ok", []),
    "avi_b_frames": ("ok", []),
    "missing_timestamps": ("ok", []),
    "audio_format_change": ("ok", []),
}


@pytest.fixture(scope="module")
def built(bad_corpus, tmp_path_factory):
    corpus, _, _ = bad_corpus
    # A protocol the default limits refuse, named in a list file (untrusted data).
    listed = tmp_path_factory.mktemp("bad_list") / "list.txt"
    listed.write_text("memory://elsewhere/remote.mp4\n")
    out = tmp_path_factory.mktemp("bad_dataset") / "ds"
    report = build_local(resolve_sources([str(corpus)]) + resolve_sources([str(listed)]), out,
                         _config(), workers=2, progress=False, qa_report=False)
    return corpus, out, report


def _config():
    from pseudo3d.config import BuildConfig

    return BuildConfig()


def _rows(out):
    sources = pq.read_table(out / "sources").to_pylist()
    failures = pq.read_table(out / "failures").to_pylist()
    manifest = pq.read_table(out / "manifest").to_pylist()
    return sources, failures, manifest


def _kind(uri: str) -> str:
    return Path(uri).stem


def test_every_file_is_accounted_for(built):
    _, out, report = built
    sources, _, manifest = _rows(out)
    assert len(sources) == report.inputs == len(BAD_KINDS) + 1
    assert report.ok + report.failed == report.inputs
    assert sum(row["status"] == "ok" for row in sources) == report.ok
    assert len({row["key"] for row in manifest}) == len(manifest)


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_each_kind_has_its_documented_outcome(built, kind):
    _, out, _ = built
    sources, failures, manifest = _rows(out)
    row = next(row for row in sources if Path(row["source"]).name == bad_file_name(kind))
    status, codes = EXPECTED[kind]
    rows = [failure for failure in failures if failure["source"] == row["source"]]
    assert row["status"] == status, row["reason"]
    assert [f"{failure['stage']}/{failure['error']}" for failure in rows] == codes
    assert all(failure["message"] for failure in rows)
    clips = [clip for clip in manifest if clip["source_id"] == row["source_id"]]
    assert (len(clips) > 0) == (status == "ok")
    for failure in rows:  # a QA row carries each broken rule as data: the first is the row's error
        rejections = failure["rejections"]
        assert bool(rejections) == (failure["stage"] == "qa")
        if rejections:
            first = rejections[0]
            assert first["metric"] == failure["error"] and first["option"] == f"min_{first['metric']}"
            assert first["value"] < first["threshold"] == getattr(_config().qa, first["option"])
            assert f"{first['metric']} = {first['value']:.4g} is below qa.{first['option']}" in failure["message"]


def test_a_refused_protocol_in_a_list_file_becomes_a_row(built):
    _, out, _ = built
    _, failures, _ = _rows(out)
    row = next(failure for failure in failures if failure["source"].startswith("memory://"))
    assert (row["stage"], row["error"]) == ("probe", "protocol_refused")
    assert "limits.allowed_protocols" in row["message"]


def _samples_by_kind(out):
    samples = {}
    for shard in sorted((out / "shards").glob("*.tar")):
        for sample in iter_samples(shard):
            samples.setdefault(_kind(sample["meta.json"]["source"]), []).append(sample)
    return samples


def _truth_mouth(corpus, kind, meta):
    """The true mouth opening at each of the clip's output frames (nearest source frame by time)."""
    truth = json.loads((corpus / f"{kind}.truth.json").read_text())
    times = meta["start_s"] + np.arange(meta["n_frames"]) / meta["fps"]
    nearest = np.abs(np.asarray(truth["times_s"])[None, :] - times[:, None]).argmin(axis=1)
    return np.asarray(truth["mouth_open"])[nearest]


PROCESSED = [kind for kind, (status, _) in EXPECTED.items() if status == "ok"]


@pytest.mark.parametrize("kind", PROCESSED)
def test_processed_kinds_follow_the_speaking_mouth(built, kind):
    """Rotation applied, frame rate resampled, 10-bit converted, the right streams and the
    right face chosen: the tracked mouth follows the true one, and the eyes are above it."""
    corpus, out, _ = built
    for sample in _samples_by_kind(out)[kind]:
        truth = _truth_mouth(corpus, kind, sample["meta.json"])
        r = np.corrcoef(sample["mouth_open.npy"], truth)[0, 1]
        assert r > 0.8, f"{kind}: mouth r = {r:.3f}"
        landmarks = sample["landmarks_2d_raw.npy"]
        eyes_y = landmarks[:, [33, 263], 1].mean(axis=1)
        mouth_y = landmarks[:, [13, 14], 1].mean(axis=1)
        assert np.all(eyes_y < mouth_y), f"{kind}: the face is not upright in display coordinates"


def test_frames_that_did_not_decode_are_cropped_where_the_face_last_was(built):
    """Corrupt packets inside a face track: their frames repeat the last decoded picture and are
    gaps in the tracking, cropped with the last face box (never a blank crop or a NaN transform,
    which a temporal encoder such as SPECTRE's would spread to its neighbours)."""
    _, out, _ = built
    (sample,) = _samples_by_kind(out)["corrupted_packets"]
    gaps = sample["interpolated.npy"]
    transforms = sample["crop_transform.npy"]
    assert gaps.any() and np.isfinite(transforms).all()
    first = int(np.flatnonzero(gaps)[0])
    np.testing.assert_array_equal(transforms[first], transforms[first - 1])


@pytest.mark.parametrize("kind", ["rotation_90", "rotation_270"])
def test_quarter_turns_swap_the_displayed_size(built, kind):
    _, out, _ = built
    sources, _, _ = _rows(out)
    row = next(row for row in sources if _kind(row["source"]) == kind)
    stored = json.loads((built[0] / f"{kind}.truth.json").read_text())
    assert [row["width"], row["height"]] == stored["display_size"]


def test_variable_frame_rate_lands_on_the_output_grid(built):
    _, out, _ = built
    (sample,) = _samples_by_kind(out)["variable_frame_rate"]
    truth = json.loads((built[0] / "variable_frame_rate.truth.json").read_text())
    intervals = np.diff(truth["times_s"])
    assert intervals.max() > 1.5 * intervals.min()
    assert sample["meta.json"]["fps"] == 25.0
    assert abs(sample["mouth_open.npy"].shape[0] - 25.0 * (truth["times_s"][-1] + intervals.mean())) <= 2


def test_the_speech_stream_is_used_not_the_music(built):
    _, out, _ = built
    manifest = _rows(out)[2]
    (clip,) = [row for row in manifest if row["source"].endswith("multi_stream.mp4")]
    # The bad corpus's mouth moves in lockstep with the loudness, which the estimator (calibrated
    # on natural speech, where the lips lead) reads as the audio NATURAL_LEAD_S early.
    assert clip["av_sync_strength"] > 0.5 and abs(clip["av_offset_s"] + NATURAL_LEAD_S) * clip["fps"] < 1.0


def test_the_larger_of_two_faces_is_tracked(built):
    _, out, _ = built
    sources, _, manifest = _rows(out)
    (clip,) = [row for row in manifest if row["source"].endswith("two_faces.mp4")]
    width = next(row["width"] for row in sources if row["source"].endswith("two_faces.mp4"))
    (sample,) = _samples_by_kind(out)["two_faces"]
    centre_x = sample["landmarks_2d_raw.npy"][:, :, 0].mean()
    assert centre_x < 0.5 * width, "the tracked face should be the large one on the left"
    assert clip["face_size_px"] > 80


def test_damaged_frames_are_interpolated_gaps(built):
    _, out, _ = built
    manifest = _rows(out)[2]
    clips = [row for row in manifest if row["source"].endswith("corrupted_packets.mp4")]
    assert sum(clip["interpolated_fraction"] for clip in clips) > 0


def _face_width_over_height(sample) -> float:
    landmarks = sample["landmarks_2d_raw.npy"]
    extent = landmarks[:, :, :2].max(axis=1) - landmarks[:, :, :2].min(axis=1)
    return float(np.median(extent[:, 0] / extent[:, 1]))


def test_non_square_pixels_are_measured_in_display_pixels(built):
    corpus, out, _ = built
    truth = json.loads((corpus / "anamorphic_sar.truth.json").read_text())
    sources, _, _ = _rows(out)
    row = next(row for row in sources if _kind(row["source"]) == "anamorphic_sar")
    assert [row["width"], row["height"]] == truth["display_size"] == [320, 240] != truth["stored_size"]
    samples = _samples_by_kind(out)
    (sample,) = samples["anamorphic_sar"]
    # The face is near the middle of the displayed frame (x = 160, not the stored frame's 120) ...
    assert abs(sample["landmarks_2d_raw.npy"][:, :, 0].mean() - 160) < 20
    # ... and has the proportions of the same face drawn with square pixels (stored: 3/4 as wide).
    square = _face_width_over_height(samples["mkv_h264"][0])
    assert _face_width_over_height(sample) == pytest.approx(square, rel=0.05)


@pytest.mark.parametrize("kind", ["avi_b_frames", "missing_timestamps", "audio_format_change"])
def test_broken_timestamps_keep_sound_and_picture_in_sync(built, kind):
    """Every frame used once and the sound placed by its own time: the sync estimate is that of
    the same kind of clip in a well-formed file (the sound's start cut by AVI's B-frame delay, or
    sound out of place after the format change, would move it by about one frame)."""
    _, out, _ = built
    manifest = _rows(out)[2]
    (clip,) = [row for row in manifest if _kind(row["source"]) == kind]
    (control,) = [row for row in manifest if _kind(row["source"]) == "mkv_h264"]
    assert clip["av_sync_strength"] > 0.5
    assert abs(clip["av_offset_frames"] - control["av_offset_frames"]) < 0.5
    assert clip["n_frames"] >= 70  # of the 75 frames of the 3 s at 25 fps


def test_the_docs_table_lists_every_kind_with_its_outcome():
    text = DOCS.read_text()
    for kind, (status, codes) in EXPECTED.items():
        line = next((line for line in text.splitlines() if line.startswith(f"| `{kind}`")), None)
        assert line is not None, f"docs/hardening.md has no row for {kind}"
        documented = re.findall(r"`([a-z_]+/[a-z_]+)`", line)
        assert documented == codes, f"{kind}: docs say {documented}, the build gives {codes}"
        assert ("processed" in line) == (status == "ok"), kind
