"""SyncNet in the build (``--sync-model`` / ``qa.sync_model``): the tracking stage cuts the
reference's crops, QA scores every clip, the filters act on LSE-C, and bad options or files stop
the command with a message naming them. Synthetic weights in VGG's file layout stand in for
``syncnet_v2.model`` (random weights: LSE-C is near 0, so the default filter rejects)."""

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

pytest.importorskip("torch")
pytest.importorskip("python_speech_features")

from pseudo3d.cli import main  # noqa: E402
from pseudo3d.config import BuildConfig, DecodeConfig, TrackConfig  # noqa: E402
from pseudo3d.errors import ConfigError  # noqa: E402
from pseudo3d.pipelines.decode import FrameDecoder  # noqa: E402
from pseudo3d.pipelines.probe import Prober  # noqa: E402
from pseudo3d.pipelines.sources import resolve_sources  # noqa: E402
from pseudo3d.pipelines.track import DecodeTrack  # noqa: E402
from pseudo3d.qa.syncnet import SyncNet, syncnet_scores  # noqa: E402
from pseudo3d.qa.syncnet_scoring import crop_track, landmark_face_boxes  # noqa: E402
from pseudo3d.schemas.shard_reader import iter_samples  # noqa: E402
from pseudo3d.testing.syncnet_assets import write_synthetic_syncnet_checkpoint  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def talking_video(tmp_path_factory):
    from pseudo3d.logs import native_stderr_silenced
    from pseudo3d.synth.corpus import make_corpus

    folder = tmp_path_factory.mktemp("syncnet_corpus")
    with native_stderr_silenced():
        make_corpus(folder, n_videos=1, seconds=3.0, seed=3)
    return next(folder.glob("00_*.mp4"))


@pytest.fixture(scope="module")
def sync_model(tmp_path_factory):
    return write_synthetic_syncnet_checkpoint(tmp_path_factory.mktemp("syncnet") / "syncnet_v2.model", seed=0)


def test_tracking_cuts_the_reference_crops_of_each_clip(talking_video):
    """The crops the tracking stage cuts in its second pass are those of the reference's crop
    rule applied to the decoded frames of the clip and its tracked face boxes."""
    [source] = resolve_sources([str(talking_video)])
    decode = DecodeConfig()
    probe = Prober(decode)(source)
    clips = list(DecodeTrack(decode, TrackConfig(min_clip_s=1.0), want_sync_crops=True)(source, probe))
    frames = [frame.image for frame in FrameDecoder(source, probe, decode)]
    assert clips
    for clip in clips:
        expected = crop_track(frames[clip.start_frame:clip.start_frame + clip.n_frames],
                              landmark_face_boxes(clip.landmarks))
        assert clip.sync_crops.shape == (clip.n_frames, 224, 224, 3) and clip.sync_crops.dtype == np.uint8
        assert np.array_equal(clip.sync_crops, expected)


def test_build_scores_every_clip_and_the_default_filter_rejects_unconfident_sync(talking_video, sync_model,
                                                                               tmp_path):
    out = tmp_path / "ds"
    assert main(["build", str(talking_video), "--out", str(out), "--sync-model", str(sync_model),
                 "--min-clip-s", "1", "--workers", "1", "-q"]) == 0
    [row] = [r for r in pq.read_table(out / "failures").to_pylist() if r["stage"] == "qa"]
    assert row["error"] == "lse_c" and "qa.min_lse_c = 3" in row["message"]
    card = json.loads((out / "dataset.json").read_text())
    from pseudo3d.files import file_sha256

    assert card["config"]["qa"]["sync_model"] == {"name": sync_model.name, "sha256": file_sha256(sync_model)}


def test_kept_clips_carry_syncnet_figures_equal_to_scoring_the_clip_directly(talking_video, sync_model, tmp_path):
    config = tmp_path / "build.yaml"
    config.write_text(f"qa:\n  sync_model: {sync_model.name}\n  min_lse_c: 0.0\n"
                      "  max_abs_syncnet_offset_frames: 15\ntrack:\n  min_clip_s: 1.0\n")
    sync_model_here = tmp_path / sync_model.name  # a relative path in the file resolves against the file
    sync_model_here.write_bytes(sync_model.read_bytes())
    out = tmp_path / "ds"
    assert main(["build", str(talking_video), "--out", str(out), "--config", str(config), "--workers", "1", "-q"]) == 0
    rows = pq.read_table(out / "manifest").to_pylist()
    assert rows
    # Score the same clips independently: a fresh tracking pass gives their crops and audio.
    [source] = resolve_sources([str(talking_video)])
    build = BuildConfig.from_yaml(config)
    probe = Prober(build.decode)(source)
    clips = list(DecodeTrack(build.decode, build.track, want_sync_crops=True)(source, probe))
    model = SyncNet.from_checkpoint(sync_model)
    samples = {sample["__key__"]: sample for sample in iter_samples(next((out / "shards").glob("*.tar")))}
    for row, clip in zip(rows, clips):
        assert row["key"] == clip.key
        expected = syncnet_scores(model, clip.sync_crops, clip.audio)
        for column in ("lse_d", "lse_c", "syncnet_offset_frames"):
            assert np.isfinite(row[column])
            assert row[column] == pytest.approx(expected[column], abs=1e-4)
        assert samples[clip.key]["meta.json"]["assets"]["syncnet_checkpoint"] == model.asset_hashes["syncnet_checkpoint"]


def test_sync_model_needs_25_fps_and_16_khz():
    with pytest.raises(ConfigError, match="qa.sync_model .* needs decode.fps: 25, got 30"):
        BuildConfig().with_overrides(decode={"fps": 30.0}, qa={"sync_model": "syncnet_v2.model"})
    with pytest.raises(ConfigError, match="needs decode.sample_rate: 16000, got 22050"):
        BuildConfig().with_overrides(decode={"sample_rate": 22050}, qa={"sync_model": "syncnet_v2.model"})


def test_a_missing_or_wrong_sync_model_stops_the_build_naming_the_file(talking_video, tmp_path, capsys):
    missing = tmp_path / "nowhere" / "syncnet_v2.model"
    assert main(["build", str(talking_video), "--out", str(tmp_path / "a"), "--sync-model", str(missing), "-q"]) == 2
    error = capsys.readouterr().err
    assert str(missing) in error and "Traceback" not in error
    wrong = tmp_path / "syncnet_v2.model"
    wrong.write_text("<html>not found</html>")
    assert main(["build", str(talking_video), "--out", str(tmp_path / "b"), "--sync-model", str(wrong), "-q"]) == 2
    error = capsys.readouterr().err
    assert str(wrong) in error and "not a PyTorch checkpoint" in error and "Traceback" not in error


@pytest.mark.parametrize("turns", [1, 2])
def test_a_face_turned_without_a_rotation_tag_gets_upright_crops(talking_video, tmp_path, turns):
    """SyncNet was trained on upright faces: the crops of a copy of the video whose frames are
    turned by quarter turns (no rotation tag) are those of the upright original."""
    from fractions import Fraction

    from pseudo3d.pipelines.decode import decode_audio
    from pseudo3d.synth.mp4 import write_mp4

    decode = DecodeConfig()
    [source] = resolve_sources([str(talking_video)])
    probe = Prober(decode)(source)
    frames = [np.rot90(frame.image, k=-turns) for frame in FrameDecoder(source, probe, decode)]  # clockwise
    audio = decode_audio(source, probe, 16000)
    turned = tmp_path / f"turned_{turns}.mp4"
    height, width = frames[0].shape[:2]
    write_mp4(turned, iter(frames), Fraction(25), width, height, audio[None], 16000)

    def crops_of(path):
        [item] = resolve_sources([str(path)])
        found = DecodeTrack(decode, TrackConfig(min_clip_s=1.0), want_sync_crops=True)(item, Prober(decode)(item))
        return np.concatenate([clip.sync_crops for clip in found]).astype(np.float64)

    upright, copy = crops_of(talking_video), crops_of(turned)
    assert upright.shape == copy.shape
    # Re-encoding and re-tracking move the crops by a pixel or so; an upside-down or sideways crop
    # differs from the upright one by tens of grey levels.
    assert np.mean(np.abs(upright - copy)) < 6.0
    assert np.mean(np.abs(upright - np.rot90(copy, k=turns, axes=(1, 2)))) > 15.0
