"""Transient failures are retried: at once within a build (``limits.transient_retries``) and later
with ``pseudo3d build --retry-failed``; permanent ones only with ``--retry-failed=all``."""

import json

import pyarrow.parquet as pq
import pytest

from pseudo3d.cli import main

pytestmark = pytest.mark.slow

GOOD, BAD = "00_talk_25fps.mp4", "bad_not_a_video.mp4"


def _build(corpus, out, capsys, *flags, retries=None):
    args = ["build", str(corpus / GOOD), str(corpus / BAD), "--out", str(out), "-q", "--workers", "1", *flags]
    if retries is not None:
        config = out.parent / f"retries{retries}.yaml"
        config.write_text(f"limits:\n  transient_retries: {retries}\n")
        args += ["--config", str(config)]
    code = main(args)
    assert code == 0, capsys.readouterr().err


def _tables(out):
    """The index tables as a plain Parquet reader sees them: one row per input, always."""
    rows = pq.read_table(out / "sources").to_pylist()
    sources = {row["identity"]: row for row in rows}
    assert len(sources) == len(rows) == 2
    failures = pq.read_table(out / "failures").to_pylist()
    keys = pq.read_table(out / "manifest")["key"].to_pylist() if (out / "manifest").is_dir() else []  # no clip: no part
    return sources, failures, keys


def test_a_worker_killed_once_is_retried_within_the_build(synthetic_corpus, tmp_path, capsys, caplog, monkeypatch):
    monkeypatch.setenv("PSEUDO3D_FAULTS", "kill=00_talk:1")  # SIGKILL on the first attempt, as the OOM killer
    _build(synthetic_corpus, tmp_path / "ds", capsys)
    sources, failures, keys = _tables(tmp_path / "ds")
    assert (sources[GOOD]["status"], sources[GOOD]["attempt"]) == ("ok", 1)
    assert [(row["stage"], row["error"], row["kind"]) for row in failures] == [("probe", "not_a_video", "permanent")]
    assert keys and len(keys) == len(set(keys)) == sources[GOOD]["n_clips"]
    assert "failed transiently (worker/crashed: the worker process died from SIGKILL) on attempt 1" in caplog.text


def test_retry_failed_builds_transient_failures_again_and_replaces_their_rows(synthetic_corpus, tmp_path, capsys,
                                                                               monkeypatch):
    out = tmp_path / "ds"
    monkeypatch.setenv("PSEUDO3D_FAULTS", "crash=00_talk")
    _build(synthetic_corpus, out, capsys, retries=0)
    sources, failures, keys = _tables(out)
    assert sources[GOOD]["status"] == "failed" and keys == []
    assert {(row["stage"], row["error"], row["kind"]) for row in failures} == {
        ("worker", "crashed", "transient"), ("probe", "not_a_video", "permanent")}

    monkeypatch.delenv("PSEUDO3D_FAULTS")
    _build(synthetic_corpus, out, capsys, retries=0)  # a plain resume skips committed failures
    assert _tables(out)[0][GOOD]["status"] == "failed"

    _build(synthetic_corpus, out, capsys, "--retry-failed", retries=0)
    sources, failures, keys = _tables(out)
    assert (sources[GOOD]["status"], sources[GOOD]["attempt"]) == ("ok", 2)
    assert (sources[BAD]["status"], sources[BAD]["attempt"]) == ("failed", 1)  # permanent: left alone
    assert [(row["stage"], row["error"]) for row in failures] == [("probe", "not_a_video")]
    assert keys and len(keys) == len(set(keys)) == sources[GOOD]["n_clips"]
    card = json.loads((out / "dataset.json").read_text())
    assert card["counts"]["inputs"] == 2 and (card["counts"]["ok"], card["counts"]["failed"]) == (1, 1)
    assert card["counts"]["failures_by_error"] == {"not_a_video": 1}

    _build(synthetic_corpus, out, capsys, "--retry-failed=all", retries=0)
    sources, failures, after = _tables(out)
    assert (sources[BAD]["status"], sources[BAD]["attempt"]) == ("failed", 2) and after == keys
    assert [(row["stage"], row["error"]) for row in failures] == [("probe", "not_a_video")]
    assert len(list((out / "_commits").glob("*.json"))) == 1  # the unit, committed again by each retry
