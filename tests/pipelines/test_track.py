import json

import numpy as np
import pytest

from pseudo3d.config import BuildConfig, QAConfig
from pseudo3d.logs import native_stderr_silenced
from pseudo3d.pipelines.face_window import angle_between, landmark_angle
from pseudo3d.pipelines.probe import Prober
from pseudo3d.pipelines.process import SourcePipeline
from pseudo3d.pipelines.sources import resolve_sources
from pseudo3d.pipelines.track import DecodeTrack
from pseudo3d.qa.sync import mouth_opening
from pseudo3d.schemas.sample import decode_sample

pytestmark = pytest.mark.slow


def test_crops_follow_the_face_and_are_written_on_request(synthetic_corpus):
    config = BuildConfig().with_overrides(shards={"write_crops": True})
    pipeline = SourcePipeline(config)
    assert pipeline.decode_track.want_crops
    outcome = pipeline(resolve_sources([str(synthetic_corpus / "00_talk_25fps.mp4")])[0])
    assert outcome.status == "ok" and len(outcome.samples) == 1
    sample = decode_sample(outcome.samples[0].members)
    crops, transforms = sample["crops.npy"], sample["crop_transform.npy"]
    landmarks = sample["landmarks_2d_raw.npy"]
    assert crops.shape == (landmarks.shape[0], 224, 224, 3) and crops.dtype == np.uint8
    # Mapped by each frame's transform, the face from the brows down sits inside the crop (DECA's
    # box, like the 68-point one, leaves the top of the forehead out).
    mapped = np.einsum("tij,tnj->tni", transforms[:, :, :2], landmarks) + transforms[:, None, :, 2]
    brows_and_below = landmarks[:, :, 1] >= landmarks[:, [105, 334], 1].min(axis=1, keepdims=True)
    assert mapped[brows_and_below].min() > 0 and mapped[brows_and_below].max() < 223
    centre = mapped.mean(axis=1)
    np.testing.assert_allclose(centre, 111.5, atol=25)
    # A crop shows a face, not background: its centre is brighter and more varied than a flat backdrop.
    assert crops[:, 80:150, 80:150].std() > 20
    meta = sample["meta.json"]
    assert meta["crop"] == {"size": 224, "scale": 1.25, "convention": "deca"}


# --- framings real footage comes in (issue 13): tight crops, medium shots, untagged rotations ---

def _track_framing(corpus, name):
    config = BuildConfig()
    source = resolve_sources([str(corpus / f"framing_{name}.mp4")])[0]
    with native_stderr_silenced():
        probe = Prober(config.decode)(source)
        tracked = DecodeTrack(config.decode, config.track)(source, probe)
        clips = list(tracked)
    truth = json.loads((corpus / f"framing_{name}.truth.json").read_text())
    return tracked, clips, truth


def _truth_at(truth, clip, values):
    index = np.minimum(np.round((clip.start_frame + np.arange(len(clip.landmarks))) / clip.fps * truth["fps"]).astype(int),
                       truth["n_frames"] - 1)
    return np.asarray(values)[index]


@pytest.mark.parametrize("name", ["tight_224", "medium_1920x1080", "medium_720x1080", "roll_90", "roll_180"])
def test_each_framing_is_tracked_right_way_up_in_frame_pixels(framing_corpus, name):
    tracked, clips, truth = _track_framing(framing_corpus, name)
    assert [f.error for f in tracked.failures] == []
    assert len(clips) == 1
    (clip,) = clips
    assert len(clip.landmarks) >= tracked.n_frames - 2 and not clip.interpolated.any()
    # The mouth moves with the truth's.
    r = np.corrcoef(mouth_opening(clip.landmarks), _truth_at(truth, clip, truth["mouth_open"]))[0, 1]
    assert r > 0.9, f"{name}: mouth r = {r:.3f}"
    # Landmarks in the frame's pixels: their face centre is where the truth puts it...
    pose = truth["head_pose"]
    centre = np.stack([_truth_at(truth, clip, pose["tx_px"]), _truth_at(truth, clip, pose["ty_px"])], axis=1)
    eyes = clip.landmarks[:, [33, 263], :2].mean(axis=1)
    mouth = clip.landmarks[:, [13, 14], :2].mean(axis=1)
    face_px = np.linalg.norm(mouth - eyes, axis=1)
    assert np.all(np.linalg.norm((eyes + mouth) / 2 - centre, axis=1) < 0.25 * face_px)
    # ... and right way up: the eyes -> mouth direction follows the truth's roll (turn included).
    roll = _truth_at(truth, clip, pose["roll_rad"])
    errors = np.degrees([angle_between(landmark_angle(points), angle) for points, angle in zip(clip.landmarks, roll)])
    assert errors.max() < 15.0
    # A face-size-independent score: even the tight crop is well above the QA threshold.
    assert clip.confidence.mean() > QAConfig().min_confidence_mean + 0.2


@pytest.mark.parametrize("name", ["tight_224", "medium_720x1080"])
def test_tight_crops_and_medium_shots_pass_the_build(framing_corpus, name):
    with native_stderr_silenced():
        outcome = SourcePipeline(BuildConfig())(resolve_sources([str(framing_corpus / f"framing_{name}.mp4")])[0])
    assert outcome.status == "ok", [(f.stage, f.error, f.message) for f in outcome.failures]
    (sample,) = outcome.samples
    assert sample.row["confidence_mean"] > QAConfig().min_confidence_mean


# --- streaming (issue 14): clips come out as their face track ends ---

def test_clips_come_out_as_their_face_track_ends_and_a_long_track_is_cut_as_it_grows(synthetic_corpus):
    config = BuildConfig().with_overrides(track={"max_clip_s": 2.0, "min_clip_s": 1.0})
    source = resolve_sources([str(synthetic_corpus / "00_talk_25fps.mp4")])[0]
    decoded = []
    with native_stderr_silenced():
        stage = DecodeTrack(config.decode, config.track, want_crops=True, progress=lambda: decoded.append(1))
        tracked = stage(source, Prober(config.decode)(source))
        seen = [(clip.start_frame, clip.n_frames, len(decoded), clip.crops.shape[0]) for clip in tracked]
    # One unbroken face track, 50 frames of max_clip_s: a clip of 50 comes off the front each
    # time the track reaches 100 frames; what is left at the end is split in two equal parts.
    front, last_two = seen[:-2], seen[-2:]
    assert len(front) >= 2 and not tracked.failures
    for start, n_frames, decoded_then, n_crops in front:
        assert n_frames == n_crops == 50 and decoded_then == start + 100
    assert [decoded_then for _, _, decoded_then, _ in last_two] == [tracked.n_frames] * 2
    assert abs(last_two[0][1] - last_two[1][1]) <= 1 and 50 <= last_two[0][1] + last_two[1][1] <= 100
    edges = [(start, start + n_frames) for start, n_frames, _, _ in seen]
    assert edges[0][0] == 0 and edges[-1][1] == tracked.n_frames
    assert all(a[1] == b[0] for a, b in zip(edges, edges[1:]))


def test_the_whole_chain_clip_by_clip_equals_the_split_steps_and_spools_the_same_bytes(synthetic_corpus, tmp_path):
    """``SourcePipeline(source)`` streams clip by clip (here spooling samples to disk, as the
    local runner's workers do); ``track`` → ``reconstruct`` → ``finish`` (the split runners' way)
    holds every clip in memory: both give the same samples and rows, in order."""
    import pickle

    from pseudo3d.pipelines.spool import SPOOL_DIR, SpooledMembers, release

    config = BuildConfig().with_overrides(track={"max_clip_s": 2.0, "min_clip_s": 1.0})
    source = resolve_sources([str(synthetic_corpus / "03_talk_face_leaves.mp4")])[0]
    with native_stderr_silenced():
        pipeline = SourcePipeline(config)
        pipeline.spool_dir = tmp_path / SPOOL_DIR
        whole = pipeline(source)
        item = pipeline.track(source)
        pipeline.reconstruct([item])
        split = pipeline.finish(item)
    assert whole.status == split.status == "ok"
    assert len(whole.samples) >= 4 and any(row.error == "clip_too_short" for row in whole.failures)
    assert all(isinstance(sample.members, SpooledMembers) for sample in whole.samples)
    assert [sample.key for sample in whole.samples] == [sample.key for sample in split.samples]
    assert [dict(sample.members) for sample in whole.samples] == [sample.members for sample in split.samples]
    assert [sample.n_bytes for sample in whole.samples] == [sample.n_bytes for sample in split.samples]
    assert [sample.row for sample in whole.samples] == [sample.row for sample in split.samples]
    assert whole.failures == split.failures and whole.n_frames_decoded == split.n_frames_decoded
    # What travels to the parent holds where the members lie, not the members.
    assert len(pickle.dumps(whole)) < 0.05 * len(pickle.dumps(split))
    [spool_file] = (tmp_path / SPOOL_DIR).iterdir()
    assert spool_file.stat().st_size == sum(sample.n_bytes for sample in split.samples)
    release(whole)
    assert not any((tmp_path / SPOOL_DIR).iterdir())


def test_a_forged_audio_jump_is_never_read_past_the_video(synthetic_corpus, tmp_path):
    """Audio whose timestamps leap two hours ahead just after the video's end, in Matroska (which
    declares no stream lengths): the sound is read as the frames come, never more than 1 s past
    the frame being decoded (docs/hardening.md), so the leap is never filled with silence."""
    import tracemalloc
    from fractions import Fraction

    import av

    original, forged = synthetic_corpus / "00_talk_25fps.mp4", tmp_path / "leap.mkv"
    rate, leap = 16_000, 2 * 3600 * 16_000
    with av.open(str(original)) as source, av.open(str(forged), "w", format="matroska") as out:
        video = out.add_stream_from_template(source.streams.video[0])
        audio = out.add_stream("pcm_s16le", rate=rate, layout="mono")
        for packet in source.demux(source.streams.video[0]):
            if packet.dts is not None:
                packet.stream = video
                out.mux(packet)
        video_s = float(source.streams.video[0].duration * source.streams.video[0].time_base)
        for start in range(0, round((video_s + 1.5) * rate), 1600):
            frame = av.AudioFrame.from_ndarray(np.full((1, 1600), 0.1, np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.time_base = rate, Fraction(1, rate)
            frame.pts = start + (leap if start >= (video_s + 0.3) * rate else 0)
            out.mux(audio.encode(frame))
        out.mux(audio.encode())
    [source] = resolve_sources([str(forged)])
    config = BuildConfig()
    with native_stderr_silenced():
        probe = Prober(config.decode, config.limits)(source)
        assert probe.duration_s > 3600 and probe.video_duration_s is None
        stage = DecodeTrack(config.decode, config.track, max_duration_s=config.limits.max_duration_s)
        tracemalloc.start()
        clips = list(stage(source, probe))
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert clips and all(np.abs(clip.audio - 0.1).max() < 0.01 for clip in clips)  # the sound under the video
    # Two hours of silence would be 460 MB of float32; the video's 10 s of sound are 0.6 MB.
    assert peak < 50 * 2 ** 20
