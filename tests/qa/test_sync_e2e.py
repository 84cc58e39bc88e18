"""Acceptance of the AV-sync filter on synthetic natural speech, end to end (render, decode, track,
measure, filter) with the default configuration: an in-sync video is kept; audio shifted by 4
frames either way is rejected for its offset; dubbed audio (another speech plan, 32 s so that
there is enough speech to judge) is rejected as unrelated."""

from fractions import Fraction

import pyarrow.parquet as pq
import pytest

from pseudo3d.config import BuildConfig
from pseudo3d.logs import native_stderr_silenced
from pseudo3d.pipelines.runners.local import build_local
from pseudo3d.pipelines.sources import resolve_sources
from pseudo3d.synth.corpus import render_videos
from pseudo3d.synth.talking import VideoSpec

pytestmark = pytest.mark.slow

SEED = 1


def _spec(name: str, index: int, seconds: float, **options) -> VideoSpec:
    return VideoSpec(name, "talk_25fps", SEED, index, Fraction(25), 480, 360, seconds, **options)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    corpus = tmp_path_factory.mktemp("sync_corpus")
    specs = [_spec("in_sync", 0, 10.0), _spec("audio_late_4", 1, 10.0, audio_delay_frames=4),
             _spec("audio_early_4", 2, 10.0, audio_delay_frames=-4), _spec("dubbed", 3, 32.0, dubbed=True)]
    with native_stderr_silenced():
        list(render_videos(specs, corpus, workers=0))
    out = tmp_path_factory.mktemp("sync_ds") / "ds"
    report = build_local(resolve_sources([str(corpus)]), out, BuildConfig(), workers=2, progress=False)
    assert report.ok == 1 and report.clips == 1 and report.failed == 3
    failures = {row["source"].rsplit("/", 1)[-1][:-4]: row for row in pq.read_table(out / "failures").to_pylist()}
    kept = {row["source"].rsplit("/", 1)[-1][:-4]: row for row in pq.read_table(out / "manifest").to_pylist()}
    sources = {row["source"].rsplit("/", 1)[-1][:-4]: row for row in pq.read_table(out / "sources").to_pylist()}
    return kept, failures, sources


def test_in_sync_natural_speech_is_kept(built):
    kept, failures, sources = built
    row = kept["in_sync"]
    assert "in_sync" not in failures
    assert abs(row["av_offset_s"]) < 0.04 and row["av_offset_ci_low_s"] <= 0.0 <= row["av_offset_ci_high_s"]
    assert row["av_sync_p_value"] <= 0.01


@pytest.mark.parametrize("name, sign", [("audio_late_4", 1), ("audio_early_4", -1)])
def test_four_frame_offsets_are_rejected_either_way(built, name, sign):
    kept, failures, sources = built
    assert name not in kept
    row = failures[name]
    assert row["stage"] == "qa" and row["error"] == "av_offset_s" and "qa.max_abs_av_offset_s" in row["message"]
    assert row["clip"].startswith(f"sync_corpus0-{name}-") and row["duration_s"] > 9  # the clip's key
    low, high = (float(v) for v in row["message"].split("(interval ")[1].split(" s,")[0].split(" … "))
    assert (low > 0.08) if sign > 0 else (high < -0.08)
    assert sources[name]["status"] == "failed" and sources[name]["reason"].startswith("qa:")


def test_dubbed_audio_is_rejected_as_unrelated(built):
    kept, failures, sources = built
    assert "dubbed" not in kept
    row = failures["dubbed"]
    assert row["stage"] == "qa" and row["error"] == "av_sync_p_value"
    assert "dubbed or unrelated" in row["message"]
