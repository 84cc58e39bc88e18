"""The Beam runner on real Beam runners: the DirectRunner, the bundle-retrying direct runner with
injected failures, and the portable runner with an embedded job server in loopback mode."""

import logging
import re
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

pytest.importorskip("apache_beam")

from conftest import RUNNER_CONFIG_YAML, dataset_digests  # noqa: E402
from pseudo3d.config import BuildConfig  # noqa: E402
from pseudo3d.errors import Pseudo3DError  # noqa: E402
from pseudo3d.pipelines.runners.beam import build_beam, pipeline_options  # noqa: E402
from pseudo3d.pipelines.runners.local import build_local  # noqa: E402
from pseudo3d.pipelines.sources import resolve_sources  # noqa: E402
from pseudo3d.storage import Storage  # noqa: E402

CONFIG = BuildConfig.from_dict(yaml.safe_load(RUNNER_CONFIG_YAML))  # several shards from a small corpus


@pytest.fixture(scope="module")
def corpus(runner_corpus):
    return runner_corpus


@pytest.fixture(scope="module")
def local_build(runner_local_build):
    return runner_local_build


@pytest.mark.slow
def test_direct_runner_builds_the_local_dataset_into_a_bucket(corpus, local_build, s3_bucket):
    """The DirectRunner writing to a real S3-compatible server on 127.0.0.1: the workers write
    and commit the units themselves, and nothing else is left behind."""
    local_out, local_report = local_build
    out = f"{s3_bucket}/ds"
    report = build_beam(resolve_sources([str(corpus)]), out, CONFIG, workers=2, progress=False, qa_report=False)
    assert dataset_digests(out) == dataset_digests(local_out)
    assert len(report.shards_written) >= 2 and len(report.shards_written) == len(local_report.shards_written)
    for field in ("inputs", "processed", "ok", "failed", "clips", "frames", "units"):
        assert getattr(report, field) == getattr(local_report, field), field
    assert report.units >= 2
    assert not [name for name in Storage(out).list("shards") if name.startswith(".")]


@pytest.mark.slow
def test_retried_bundles_neither_duplicate_nor_lose_clips(corpus, local_build, tmp_path, monkeypatch, caplog):
    """The bundle-based direct runner retries a failed bundle; the first attempt at tracking one
    source and at writing one unit fail part-way (the write once its shards are published, so
    they are left behind until the build ends)."""
    monkeypatch.setenv("PSEUDO3D_FAULTS", "flaky=track:02_talk;flaky=write:unit-000001")
    out = tmp_path / "ds"
    with caplog.at_level(logging.ERROR):
        report = build_beam(resolve_sources([str(corpus)]), out, CONFIG,
                            options=["runner=BundleBasedDirectRunner"], progress=False, qa_report=False)
    assert re.search(r"injected failure: first attempt at track \S*02_talk", caplog.text)
    assert "injected failure: first attempt at write unit-000001" in caplog.text
    assert dataset_digests(out) == dataset_digests(local_build[0])
    keys = pq.read_table(out / "manifest").column("key").to_pylist()
    assert len(keys) == len(set(keys)) == report.clips == local_build[1].clips
    sources = pq.read_table(out / "sources").column("source_id").to_pylist()
    assert len(sources) == len(set(sources)) == report.inputs


@pytest.mark.slow
def test_portable_runner_in_loopback_mode_builds_the_local_dataset(corpus, local_build, tmp_path):
    """The command line with the portable runner, an embedded job server and loopback workers."""
    out = tmp_path / "ds"
    command = [sys.executable, "-m", "pseudo3d", "build", str(corpus), "--out", str(out), "-q",
               "--config", str(_config_file(tmp_path)), "--runner", "beam", "--beam-option", "runner=PortableRunner",
               "--beam-option", "job_endpoint=embed", "--beam-option", "environment_type=LOOPBACK"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    reference = local_build[1]
    assert f"inputs 7: ok {reference.ok}, failed {reference.failed}" in done.stdout and reference.ok == 4
    assert dataset_digests(out) == dataset_digests(local_build[0])


@pytest.mark.slow
def test_worker_crash_is_a_failure_row_and_resume_adds_to_a_local_build(corpus, local_build, tmp_path, monkeypatch):
    """A native crash while tracking one source costs only that source; a later Beam build
    resumes a directory another runner started, with units numbered after the committed ones."""
    everything = resolve_sources([str(corpus)])
    out = tmp_path / "ds"
    build_local(everything[:3], out, CONFIG, workers=2, progress=False, qa_report=False)
    monkeypatch.setenv("PSEUDO3D_FAULTS", "crash=03_talk")
    no_retries = CONFIG.with_overrides(limits={"transient_retries": 0})  # retries: test_retry.py
    report = build_beam(everything, out, no_retries, workers=2, progress=False, qa_report=False)
    assert report.skipped == 3 and report.processed == len(everything) - 3
    failures = pq.read_table(out / "failures").to_pylist()
    crashed = [row for row in failures if row["stage"] == "worker"]
    assert [(row["error"], Path(row["source"]).name) for row in crashed] == [("crashed", "03_talk_face_leaves.mp4")]

    # Keys are per source: every clip of the local build but the crashed source's, once.
    ours = pq.read_table(out / "manifest").column("key").to_pylist()
    theirs = [row["key"] for row in pq.read_table(local_build[0] / "manifest").to_pylist()
              if "03_talk" not in row["source"]]
    assert sorted(ours) == sorted(theirs) and theirs


def test_beam_options_are_checked_and_name_the_bad_one():
    with pytest.raises(Pseudo3DError, match="'no_such_option' is not an Apache Beam pipeline option"):
        pipeline_options(["no_such_option=1"])
    with pytest.raises(Pseudo3DError, match="direct_num_workers=many: .*invalid int value"):
        pipeline_options(["direct_num_workers=many"])
    options = pipeline_options(["save_main_session", "--job_name=corpus-7"], workers=3).get_all_options()
    assert options["save_main_session"] is True and options["job_name"] == "corpus-7"
    assert options["direct_num_workers"] == 3 and options["direct_running_mode"] == "in_memory"
    flink = pipeline_options(["runner=FlinkRunner", "flink_master=localhost:8081"]).get_all_options()
    assert flink["direct_num_workers"] == 1 and flink["flink_master"] == "localhost:8081"


def test_beam_option_needs_the_beam_runner(tmp_path):
    done = subprocess.run([sys.executable, "-m", "pseudo3d", "build", str(tmp_path), "--out", str(tmp_path / "ds"),
                           "--beam-option", "runner=DirectRunner"], capture_output=True, text=True)
    assert done.returncode != 0 and "--beam-option is for --runner beam" in done.stderr


def _config_file(tmp_path: Path) -> Path:
    path = tmp_path / "build.yaml"
    path.write_text(RUNNER_CONFIG_YAML)
    return path
