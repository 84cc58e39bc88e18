"""The stage chain's failure handling: one clip failing (in reconstruction, smoothing, QA or
encoding, on its own or inside a batch) costs that clip only; out of memory halves the batch."""

import dataclasses
import errno

import numpy as np
import pytest

from pseudo3d.config import BuildConfig
from pseudo3d.pipelines.process import TRACKING_SMOOTHED, InFlight, SourcePipeline
from pseudo3d.pipelines.smooth import Smooth
from pseudo3d.reconstruction.mediapipe_head import MediaPipeHead
from pseudo3d.reconstruction.template import mediapipe_template
from pseudo3d.schemas.records import Clip, Source, SourceOutcome


class RefusesSecondClip(MediaPipeHead):
    """The real mediapipe backend, except that clip 1 raises as a bug would, and a batch holding
    it fails as a whole (as a batched GPU backend's does)."""

    def reconstruct_batch(self, clips):
        if any(clip.clip_index == 1 for clip in clips):
            raise ValueError("a NaN slipped into the solver")
        return super().reconstruct_batch(clips)


def _clip(source, index, frames=30):
    rng = np.random.default_rng(index)
    template = mediapipe_template().vertices
    landmarks = (10 * template[None] * [1, -1, -1] + [320, 240, 0] + rng.normal(0, 0.3, (frames, 478, 3)))
    return Clip(source=source, clip_index=index, start_frame=index * frames, fps=25.0, image_size=(640, 480),
                landmarks=landmarks.astype(np.float32), confidence=np.ones(frames, np.float32),
                interpolated=np.zeros(frames, bool), crop_transforms=np.zeros((frames, 2, 3), np.float32),
                audio=np.zeros(frames * 640, np.float32), sample_rate=16000)


def _pipeline(backend=None, pipeline_type=SourcePipeline) -> SourcePipeline:
    config = BuildConfig().with_overrides(qa={"enabled": False})  # the clips here are silent stand-ins
    pipeline = pipeline_type(config, track=False)
    pipeline.backend = backend or RefusesSecondClip()
    pipeline.smooth = Smooth(config.smoothing, {**TRACKING_SMOOTHED, **pipeline.backend.smoothed})
    return pipeline


def test_a_clip_failing_inside_a_batch_becomes_its_row_and_its_batch_mates_are_kept():
    pipeline = _pipeline()
    first, second = Source("/v.mp4", "v.mp4", "v-00000000"), Source("/u.mp4", "u.mp4", "u-00000000")
    items = [InFlight(SourceOutcome(first, "failed"), clips=[_clip(first, i) for i in range(3)]),
             InFlight(SourceOutcome(second, "failed"), clips=[_clip(second, 0)])]
    pipeline.reconstruct(items)
    outcome, other = pipeline.finish(items[0]), pipeline.finish(items[1])
    assert outcome.status == "ok" and other.status == "ok"
    assert [sample.key for sample in outcome.samples] == ["v-00000000_000", "v-00000000_002"]
    assert [sample.key for sample in other.samples] == ["u-00000000_000"] and other.failures == []
    [failure] = outcome.failures
    assert (failure.stage, failure.error, failure.kind, failure.clip) == (
        "reconstruct", "internal_error", "permanent", "v-00000000_001")
    assert failure.message == "ValueError: a NaN slipped into the solver"


def test_every_clip_failing_fails_the_source():
    pipeline = _pipeline()
    source = Source("/w.mp4", "w.mp4", "w-00000000")
    item = InFlight(SourceOutcome(source, "failed"), clips=[_clip(source, 1)])
    pipeline.reconstruct([item])
    outcome = pipeline.finish(item)
    assert outcome.status == "failed" and outcome.samples == []
    assert outcome.reason == "every clip failed: reconstruct/internal_error (see the failure rows)"
    assert not outcome.transient


class MeasuringFails(SourcePipeline):
    """The real chain, except that measuring clip 1 raises (a bug in a metric)."""

    def measure_clip(self, clip, arrays):
        if clip.clip_index == 1:
            raise OSError(errno.EIO, "Input/output error")
        return super().measure_clip(clip, arrays)


class EncodingFails(SourcePipeline):
    """The real chain, except that clip 1's metadata cannot be encoded."""

    def clip_meta(self, clip):
        meta = super().clip_meta(clip)
        return {**meta, "bad": object()} if clip.clip_index == 1 else meta


@pytest.mark.parametrize("pipeline_type, stage, error, kind", [
    (MeasuringFails, "qa", "io_error", "transient"),
    (EncodingFails, "encode", "internal_error", "permanent"),
])
def test_a_clip_failing_after_reconstruction_costs_that_clip_in_its_stage(pipeline_type, stage, error, kind):
    pipeline = _pipeline(MediaPipeHead(), pipeline_type)
    source = Source("/v.mp4", "v.mp4", "v-00000000")
    item = InFlight(SourceOutcome(source, "failed"), clips=[_clip(source, i) for i in range(3)])
    pipeline.reconstruct([item])
    outcome = pipeline.finish(item)
    assert outcome.status == "ok"
    assert [sample.key for sample in outcome.samples] == ["v-00000000_000", "v-00000000_002"]
    [failure] = outcome.failures
    assert (failure.stage, failure.error, failure.kind, failure.clip) == (stage, error, kind, "v-00000000_001")


torch = pytest.importorskip("torch")


class OutOfMemoryAbove:
    """DECA's encoder, except that a batch of more than ``limit`` crops raises CUDA's
    out-of-memory error, as a GPU with too little memory for ``reconstruct.batch_size`` does."""

    def __init__(self, encoder, limit):
        self.encoder, self.limit, self.sizes = encoder, limit, []

    def raw_codes(self, images):
        self.sizes.append(images.shape[0])
        if images.shape[0] > self.limit:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self.encoder.raw_codes(images)

    def __getattr__(self, name):
        return getattr(self.encoder, name)


def _deca(flame_assets, batch_size):
    from pseudo3d.reconstruction import make_backend

    config = BuildConfig().with_overrides(backend="deca", reconstruct={
        "flame_model": str(flame_assets["flame_model"]), "landmark_embedding": str(flame_assets["mediapipe_embedding"]),
        "deca_checkpoint": str(flame_assets["deca_checkpoint"]), "device": "cpu", "batch_size": batch_size})
    return make_backend(config)


def _crop_clips(source, n_clips, frames):
    clips = []
    for index in range(n_clips):
        clip = _clip(source, index, frames)
        crops = np.random.default_rng(index).integers(0, 255, (frames, 224, 224, 3), dtype=np.uint8)
        transforms = np.tile(np.array([[1, 0, 0], [0, 1, 0]], np.float32), (frames, 1, 1))
        clips.append(dataclasses.replace(clip, crops=crops, crop_transforms=transforms))
    return clips


def test_out_of_memory_halves_the_batch_and_loses_nothing(flame_assets):
    backend = _deca(flame_assets, 16)
    backend.encoder = OutOfMemoryAbove(backend.encoder, limit=5)
    pipeline = _pipeline(backend)
    source = Source("/v.mp4", "v.mp4", "v-00000000")
    clips = _crop_clips(source, 3, 6)
    results = pipeline.reconstruct_clips(clips)
    assert backend.batch_size == 4  # 16 → 8 → 4: the first size that fits
    assert backend.encoder.sizes[:2] == [16, 8] and set(backend.encoder.sizes[2:]) == {4, 2}  # 18 frames: 4 × 4 + 2
    reference = _deca(flame_assets, 4).reconstruct_batch(clips)
    for result, expected in zip(results, reference):
        assert set(result) == set(expected)
        for name in expected:
            np.testing.assert_allclose(result[name], expected[name], rtol=1e-5, atol=1e-5)


def test_out_of_memory_on_a_single_frame_is_a_transient_row(flame_assets):
    backend = _deca(flame_assets, 4)
    backend.encoder = OutOfMemoryAbove(backend.encoder, limit=0)
    pipeline = _pipeline(backend)
    source = Source("/v.mp4", "v.mp4", "v-00000000")
    item = InFlight(SourceOutcome(source, "failed"), clips=_crop_clips(source, 2, 3))
    pipeline.reconstruct([item])
    outcome = pipeline.finish(item)
    assert backend.batch_size == 1
    assert [(f.stage, f.error, f.kind, f.clip) for f in outcome.failures] == [
        ("reconstruct", "out_of_memory", "transient", f"v-00000000_00{i}") for i in range(2)]
    assert outcome.status == "failed" and outcome.transient
