"""QA metrics on the synthetic corpus: the injected audio offset is found. (The test corpus's
videos are 5-7 s, too short for the sync filter to be sure of a 4-frame offset; the filter's
acceptance, with the default configuration, is in test_sync_e2e.py.)"""

import json

import pyarrow.parquet as pq
import pytest

pytestmark = pytest.mark.slow


def test_av_offset_recovers_the_injected_shift(built_dataset, synthetic_corpus):
    """Natural speech is not in lockstep (the lips lead by a varying amount), so the estimate of an
    in-sync clip scatters around 0 by a frame or so; the injected offset lies in the interval."""
    dataset, _ = built_dataset
    rows = pq.read_table(dataset / "manifest").to_pylist()
    found = {}
    for row in rows:
        truth = json.loads((synthetic_corpus / f"{row['identity'].split('/')[-1][:-4]}.truth.json").read_text())
        expected = truth["audio_offset_s"] * row["fps"]
        found[row["key"]] = (round(row["av_offset_frames"], 2), round(expected, 2), round(row["av_offset_ci_low_s"], 3),
                             round(row["av_offset_ci_high_s"], 3), round(row["av_sync_p_value"], 4), truth["audio_offset_s"])
    print("av offset frames (measured, injected, interval s, p):", found)
    for key, (measured, expected, low, high, p_value, injected_s) in found.items():
        assert abs(measured - expected) <= 1.5, key
        assert low <= injected_s <= high, key
        assert p_value <= 0.05, key       # significant (the clips of the cut video are about 3 s)
    assert any(expected > 4 for _, expected, *_ in found.values())  # the shifted video is among them
