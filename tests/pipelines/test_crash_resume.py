"""Kill the whole build with SIGKILL at random points, resume, and get the uninterrupted dataset."""

import hashlib
import os
import random
import signal
import subprocess
import sys
import tarfile
import time

import pytest

from conftest import RUNNER_CONFIG_YAML

pytestmark = pytest.mark.slow


def _build(corpus, out, config, timeout=600):
    command = [sys.executable, "-m", "pseudo3d", "build", str(corpus), "--out", str(out), "-q", "--workers", "2",
               "--config", str(config)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def _digests(out):
    files = sorted(out.glob("shards/shard-*")) + [out / name for name in ("sources.parquet", "manifest.parquet",
                                                                          "failures.parquet")]
    return {path.relative_to(out).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest() for path in files}


def _kill_after_commits(corpus, out, config, commits: int, delay_s: float) -> int:
    """Start a build, SIGKILL its whole process group ``delay_s`` after its ``commits``-th shard
    commit (or when it ends first); returns the commits seen at the kill."""
    process = _build(corpus, out, config)
    deadline = time.monotonic() + 300
    while process.poll() is None and len(list(out.glob("shards/shard-*.json"))) < commits \
            and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(delay_s)
    committed = len(list(out.glob("shards/shard-*.json")))
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=60)
    return committed


def test_killed_builds_resume_to_the_same_bytes(runner_corpus, runner_local_build, tmp_path):
    """The reference is the session's uninterrupted local build of the runner corpus. A build is
    killed within 1.5 s of its first shard commit (the next shard half written, workers mid-source),
    resumed through the command line, and must equal the reference."""
    reference = _digests(runner_local_build[0])
    assert sum(name.endswith(".json") for name in reference) >= 2
    config = tmp_path / "build.yaml"
    config.write_text(RUNNER_CONFIG_YAML)

    rng = random.Random(20261122)
    kills = [(1, rng.uniform(0.0, 1.5))]  # within 1.5 s of the first commit: the next shard half written
    for commits, delay_s in kills:
        out = tmp_path / f"killed-{commits}"
        committed = _kill_after_commits(runner_corpus, out, config, commits, delay_s)
        # Whatever is visible under a shard's final name is a complete tar; uncommitted ones have
        # no stats JSON and are removed by the resume.
        for tar in out.glob("shards/shard-*.tar"):
            with tarfile.open(tar) as archive:
                archive.getmembers()
        assert _build(runner_corpus, out, config).wait(timeout=600) == 0
        assert _digests(out) == reference, f"killed with {committed} shards committed"
        assert not list(out.glob("shards/.*.tmp"))
