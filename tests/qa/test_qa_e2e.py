"""QA metrics on the synthetic corpus: the injected audio offset is found, the filter acts on it."""

import json

import pyarrow.parquet as pq
import pytest

from pseudo3d.config import BuildConfig
from pseudo3d.pipelines.runners.local import build_local
from pseudo3d.pipelines.sources import resolve_sources

pytestmark = pytest.mark.slow


def test_av_offset_recovers_the_injected_shift(built_dataset, synthetic_corpus):
    dataset, _ = built_dataset
    rows = pq.read_table(dataset / "manifest.parquet").to_pylist()
    found = {}
    for row in rows:
        truth = json.loads((synthetic_corpus / f"{row['identity'].split('/')[-1][:-4]}.truth.json").read_text())
        expected = truth["audio_offset_s"] * row["fps"]
        found[row["key"]] = (round(row["av_offset_frames"], 2), round(expected, 2))
        assert abs(row["av_offset_frames"] - expected) <= 1.0, row["key"]
        assert row["av_sync_strength"] > 0.5
    print("av offset frames (measured, injected):", found)
    assert any(expected > 2 for _, expected in found.values())  # the shifted video is among them


def test_default_filter_turns_the_shifted_clip_into_a_qa_row(synthetic_corpus, tmp_path):
    sources = resolve_sources([str(synthetic_corpus / "02_talk_2997fps_offset.mp4"),
                               str(synthetic_corpus / "00_talk_25fps.mp4")])
    report = build_local(sources, tmp_path / "ds", BuildConfig(), workers=2, progress=False)
    failures = pq.read_table(tmp_path / "ds" / "failures.parquet").to_pylist()
    [row] = [f for f in failures if f["stage"] == "qa"]
    assert row["error"] == "av_offset_s" and "qa.max_abs_av_offset_s" in row["message"]
    assert row["clip"].startswith("02_talk_2997fps_offset") and row["duration_s"] > 2
    sources_table = {r["identity"]: r for r in pq.read_table(tmp_path / "ds" / "sources.parquet").to_pylist()}
    assert sources_table["02_talk_2997fps_offset.mp4"]["status"] == "failed"
    assert report.ok == 1 and report.clips == 1
