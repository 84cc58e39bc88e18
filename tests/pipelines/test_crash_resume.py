"""Kill the whole build with SIGKILL at random points, resume, and get the uninterrupted dataset:
into a local directory, and into a bucket of a real S3-compatible server on 127.0.0.1."""

import io
import os
import random
import re
import signal
import subprocess
import sys
import tarfile
import time

import pytest

from conftest import RUNNER_CONFIG_YAML, dataset_digests
from pseudo3d.cli import main
from pseudo3d.schemas.commits import list_markers
from pseudo3d.storage import Storage

pytestmark = pytest.mark.slow


def _build(corpus, out, config, timeout=600):
    command = [sys.executable, "-m", "pseudo3d", "build", str(corpus), "--out", str(out), "-q", "--workers", "2",
               "--config", str(config)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def _commits(storage: Storage) -> int:
    return len(list_markers(storage))


def _kill_after_commits(corpus, out, config, commits: int, delay_s: float) -> int:
    """Start a build, SIGKILL its whole process group ``delay_s`` after its ``commits``-th unit
    commit (or when it ends first); returns the commits seen at the kill."""
    process, storage = _build(corpus, out, config), Storage(out)
    deadline = time.monotonic() + 300
    while process.poll() is None and _commits(storage) < commits and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(delay_s)
    committed = _commits(storage)
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=60)
    return committed


@pytest.mark.parametrize("where", ["local", "s3"])
def test_killed_builds_resume_to_the_same_bytes(runner_corpus, runner_local_build, tmp_path, where, request, capsys):
    """The reference is the session's uninterrupted local build of the runner corpus. A build is
    killed within 1.5 s of its first unit commit (the next unit's shard half written, workers
    mid-source), resumed through the command line, and must equal the reference."""
    reference = dataset_digests(runner_local_build[0])
    root = tmp_path if where == "local" else request.getfixturevalue("s3_bucket")
    assert sum(name.endswith(".tar") for name in reference) >= 2
    config = tmp_path / "build.yaml"
    config.write_text(RUNNER_CONFIG_YAML)

    rng = random.Random(20261122)
    kills = [(1, rng.uniform(0.0, 1.5))]  # within 1.5 s of the first commit: the next unit half written
    for commits, delay_s in kills:
        out = f"{root}/killed-{commits}"
        committed = _kill_after_commits(runner_corpus, out, config, commits, delay_s)
        # Whatever is visible under a shard's name is a complete tar; uncommitted ones have no
        # marker and are removed by the resume.
        storage = Storage(out)
        for name in storage.list("shards"):
            if name.startswith("shard-") and name.endswith(".tar"):
                with tarfile.open(fileobj=io.BytesIO(storage.read_bytes(f"shards/{name}"))) as archive:
                    archive.getmembers()
        assert _build(runner_corpus, out, config).wait(timeout=600) == 0
        assert dataset_digests(out) == reference, f"killed with {committed} units committed"
        assert not [name for name in storage.list("shards") if name.startswith(".")]
        assert storage.list() == ["_commits", "dataset.json", "failures", "logs", "manifest", "qa", "shards", "sources"]
        assert storage.is_file("qa/report.html") and storage.list("logs")
    if where == "s3":  # the dataset reads back through the command line as a local one does
        assert main(["inspect", out]) == 0
        assert re.match(rf"dataset +{re.escape(out)} ", capsys.readouterr().out)
