"""The stage chain's failure handling: one clip failing reconstruction costs that clip only."""

import numpy as np

from pseudo3d.config import BuildConfig
from pseudo3d.errors import StageError
from pseudo3d.pipelines.process import TRACKING_SMOOTHED, InFlight, SourcePipeline
from pseudo3d.pipelines.smooth import Smooth
from pseudo3d.reconstruction.mediapipe_head import MediaPipeHead
from pseudo3d.reconstruction.template import mediapipe_template
from pseudo3d.schemas.records import Clip, Source, SourceOutcome


class RefusesSecondClip(MediaPipeHead):
    """The real mediapipe backend, except that it rejects clip 1 as a backend would a bad clip."""

    def reconstruct_clip(self, clip):
        if clip.clip_index == 1:
            raise StageError("reconstruct", "fit_diverged", "the fit did not converge")
        return super().reconstruct_clip(clip)


def _clip(source, index, frames=30):
    rng = np.random.default_rng(index)
    template = mediapipe_template().vertices
    landmarks = (10 * template[None] * [1, -1, -1] + [320, 240, 0] + rng.normal(0, 0.3, (frames, 478, 3)))
    return Clip(source=source, clip_index=index, start_frame=index * frames, fps=25.0, image_size=(640, 480),
                landmarks=landmarks.astype(np.float32), confidence=np.ones(frames, np.float32),
                interpolated=np.zeros(frames, bool), crop_transforms=np.zeros((frames, 2, 3), np.float32),
                audio=np.zeros(frames * 640, np.float32), sample_rate=16000)


def _pipeline() -> SourcePipeline:
    config = BuildConfig().with_overrides(qa={"enabled": False})  # the clips here are silent stand-ins
    pipeline = SourcePipeline(config, track=False)
    pipeline.backend = RefusesSecondClip()
    pipeline.smooth = Smooth(config.smoothing, {**TRACKING_SMOOTHED, **pipeline.backend.smoothed})
    return pipeline


def test_a_failing_clip_becomes_a_row_and_the_rest_is_kept():
    pipeline = _pipeline()
    source = Source("/v.mp4", "v.mp4", "v-00000000")
    item = InFlight(SourceOutcome(source, "failed"), clips=[_clip(source, i) for i in range(3)])
    pipeline.reconstruct([item])
    outcome = pipeline.finish(item)
    assert outcome.status == "ok"
    assert [sample.key for sample in outcome.samples] == ["v-00000000_000", "v-00000000_002"]
    [failure] = outcome.failures
    assert (failure.stage, failure.error, failure.clip) == ("reconstruct", "fit_diverged", "v-00000000_001")


def test_every_clip_failing_fails_the_source():
    pipeline = _pipeline()
    source = Source("/w.mp4", "w.mp4", "w-00000000")
    item = InFlight(SourceOutcome(source, "failed"), clips=[_clip(source, 1)])
    pipeline.reconstruct([item])
    outcome = pipeline.finish(item)
    assert outcome.status == "failed" and outcome.samples == [] and "every clip" in outcome.reason
