"""Samples spooled to disk as a worker makes them (issue 14): the same shard bytes, a small
outcome through the pipe, and no spool left behind."""

import pickle

import pytest

from pseudo3d.config import BuildConfig
from pseudo3d.errors import StageError
from pseudo3d.logs import native_stderr_silenced
from pseudo3d.pipelines.process import SourcePipeline
from pseudo3d.pipelines.sources import resolve_sources
from pseudo3d.pipelines.spool import SPOOL_DIR, SpooledMembers, release

pytestmark = pytest.mark.slow


def test_a_spooled_outcome_carries_the_same_samples_and_pickles_small(synthetic_corpus, tmp_path):
    config = BuildConfig().with_overrides(track={"max_clip_s": 2.0, "min_clip_s": 1.0})
    source = resolve_sources([str(synthetic_corpus / "00_talk_25fps.mp4")])[0]
    with native_stderr_silenced():
        pipeline = SourcePipeline(config)
        in_memory = pipeline(source)
        pipeline.spool_dir = tmp_path / SPOOL_DIR
        spooled = pipeline(source)
    assert spooled.status == "ok" and len(spooled.samples) == len(in_memory.samples) >= 4
    assert all(isinstance(sample.members, SpooledMembers) for sample in spooled.samples)
    assert [dict(sample.members) for sample in spooled.samples] == [sample.members for sample in in_memory.samples]
    assert [sample.n_bytes for sample in spooled.samples] == [sample.n_bytes for sample in in_memory.samples]
    assert [sample.row for sample in spooled.samples] == [sample.row for sample in in_memory.samples]
    # What travels to the parent holds where the members lie, not the members.
    assert len(pickle.dumps(spooled)) < 0.05 * len(pickle.dumps(in_memory))
    [spool_file] = (tmp_path / SPOOL_DIR).iterdir()
    assert spool_file.stat().st_size == sum(sample.n_bytes for sample in in_memory.samples)
    release(spooled)
    assert not any((tmp_path / SPOOL_DIR).iterdir())


def test_a_source_failing_after_some_clips_leaves_no_samples_and_no_spool_file(synthetic_corpus, tmp_path):
    config = BuildConfig().with_overrides(track={"max_clip_s": 2.0, "min_clip_s": 1.0})
    source = resolve_sources([str(synthetic_corpus / "00_talk_25fps.mp4")])[0]
    with native_stderr_silenced():
        pipeline = SourcePipeline(config)
        pipeline.spool_dir = tmp_path / SPOOL_DIR
        track = pipeline.decode_track

        def breaks_after_two_clips(source, probe):  # the real tracking, until the file breaks
            for index, clip in enumerate(track(source, probe)):
                if index == 2:
                    raise StageError("decode", "decode_error", "the stream broke")
                yield clip

        pipeline.decode_track = breaks_after_two_clips
        outcome = pipeline(source)
    assert outcome.status == "failed" and not outcome.samples
    assert [(row.stage, row.error) for row in outcome.failures] == [("decode", "decode_error")]
    assert not any((tmp_path / SPOOL_DIR).iterdir())  # two samples were spooled, then discarded
