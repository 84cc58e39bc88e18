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
    assert meta["crop"] == {"size": 224, "scale": 1.25}


# --- framings real footage comes in (issue 13): tight crops, medium shots, untagged rotations ---

def _track_framing(corpus, name):
    config = BuildConfig()
    source = resolve_sources([str(corpus / f"framing_{name}.mp4")])[0]
    with native_stderr_silenced():
        probe = Prober(config.decode)(source)
        tracked = DecodeTrack(config.decode, config.track)(source, probe)
    truth = json.loads((corpus / f"framing_{name}.truth.json").read_text())
    return tracked, truth


def _truth_at(truth, clip, values):
    index = np.minimum(np.round((clip.start_frame + np.arange(len(clip.landmarks))) / clip.fps * truth["fps"]).astype(int),
                       truth["n_frames"] - 1)
    return np.asarray(values)[index]


@pytest.mark.parametrize("name", ["tight_224", "medium_1920x1080", "medium_720x1080", "roll_90", "roll_180"])
def test_each_framing_is_tracked_right_way_up_in_frame_pixels(framing_corpus, name):
    tracked, truth = _track_framing(framing_corpus, name)
    assert [f.error for f in tracked.failures] == []
    assert len(tracked.clips) == 1
    (clip,) = tracked.clips
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
