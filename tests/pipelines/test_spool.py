"""Samples spooled to disk as a worker makes them (issue 14): a source that fails leaves no spool
behind. (The same bytes as in memory, and a small outcome: tests/pipelines/test_track.py.)"""

import pytest

from pseudo3d.config import BuildConfig
from pseudo3d.errors import StageError
from pseudo3d.logs import native_stderr_silenced
from pseudo3d.pipelines.process import SourcePipeline
from pseudo3d.pipelines.sources import resolve_sources
from pseudo3d.pipelines.spool import SPOOL_DIR

pytestmark = pytest.mark.slow


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
