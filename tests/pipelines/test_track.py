import numpy as np
import pytest

from pseudo3d.config import BuildConfig
from pseudo3d.pipelines.process import SourcePipeline
from pseudo3d.pipelines.sources import resolve_sources
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
