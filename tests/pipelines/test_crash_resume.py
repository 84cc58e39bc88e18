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

pytestmark = pytest.mark.slow
KILL_POINTS = 2


def _build(corpus, out, config, timeout=600):
    command = [sys.executable, "-m", "pseudo3d", "build", str(corpus), "--out", str(out), "-q", "--workers", "2",
               "--config", str(config)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def _digests(out):
    files = sorted(out.glob("shards/shard-*")) + [out / name for name in ("sources.parquet", "manifest.parquet",
                                                                          "failures.parquet")]
    return {path.relative_to(out).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest() for path in files}


def test_killed_builds_resume_to_the_same_bytes(runner_corpus, tmp_path):
    corpus = runner_corpus  # 4 talking videos of 4 s and 3 bad inputs
    config = tmp_path / "build.yaml"
    config.write_text("shards:\n  max_samples: 1\n")  # one clip per shard: many commits to land between

    started = time.monotonic()
    assert _build(corpus, tmp_path / "reference", config).wait(timeout=600) == 0
    duration = time.monotonic() - started
    reference = _digests(tmp_path / "reference")
    assert sum(name.endswith(".json") for name in reference) >= 4

    rng = random.Random(20261122)
    points = sorted(rng.uniform(0.15, 0.95) * duration for _ in range(KILL_POINTS))
    for point in points:
        out = tmp_path / f"killed-{point:.1f}"
        process = _build(corpus, out, config)
        time.sleep(point)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=60)
        # Whatever is visible under a shard's final name is a complete tar; uncommitted ones have
        # no stats JSON and are removed by the resume.
        for tar in out.glob("shards/shard-*.tar"):
            with tarfile.open(tar) as archive:
                archive.getmembers()
        committed = len(list(out.glob("shards/shard-*.json")))
        assert _build(corpus, out, config).wait(timeout=600) == 0
        assert _digests(out) == reference, f"killed after {point:.1f} s ({committed} shards committed)"
        assert not list(out.glob("shards/.*.tmp"))
