"""The Ray runner on real Ray clusters on loopback: a Ray Job on a two-node cluster with a killed
actor, a private Ray with a crashing input, the split (GPU-layout) pipeline."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

ray = pytest.importorskip("ray")

from conftest import RUNNER_CONFIG_YAML, dataset_digests  # noqa: E402

pytestmark = pytest.mark.slow
RAY = str(Path(sys.executable).with_name("ray"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def corpus(runner_corpus):
    return runner_corpus


@pytest.fixture(scope="module")
def local_build(runner_local_build):
    return runner_local_build[0]


@pytest.fixture(scope="module")
def config_file(tmp_path_factory):
    """The runner tests' configuration; a crash on every attempt is not retried (retries: test_retry.py)."""
    path = tmp_path_factory.mktemp("ray_config") / "build.yaml"
    path.write_text(RUNNER_CONFIG_YAML + "limits:\n  transient_retries: 0\n")
    return path


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A head (with the job server on 127.0.0.1) and a second node joined with ``ray start
    --address``, each a separate process tree on loopback, one CPU each, with no S3 credentials
    in their environment."""
    temp_dir = Path(f"/tmp/p3d-ray-{os.getpid()}")  # short: Ray's socket paths have a length limit
    port, dashboard = _free_port(), _free_port()
    common = ["--node-ip-address=127.0.0.1", "--num-cpus=1", "--object-store-memory=200000000",
              "--disable-usage-stats", f"--dashboard-agent-listen-port={_free_port()}",
              f"--metrics-export-port={_free_port()}"]
    env = {**{key: value for key, value in os.environ.items() if not key.startswith("AWS_")},
           "RAY_AUTH_MODE": "disabled"}
    subprocess.run([RAY, "start", "--head", f"--port={port}", f"--temp-dir={temp_dir}", "--include-dashboard=true",
                    "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}",
                    f"--ray-client-server-port={_free_port()}", *common], check=True, env=env, capture_output=True)
    try:
        common[4:6] = [f"--dashboard-agent-listen-port={_free_port()}", f"--metrics-export-port={_free_port()}"]
        subprocess.run([RAY, "start", f"--address=127.0.0.1:{port}", *common], check=True, env=env,
                       capture_output=True)
        yield {"address": f"127.0.0.1:{port}", "dashboard": f"http://127.0.0.1:{dashboard}", "env": env}
    finally:
        subprocess.run([RAY, "stop", "--force"], env=env, capture_output=True)


def _build_command(corpus, out, config_file, *extra):
    return [sys.executable, "-m", "pseudo3d", "build", str(corpus), "--out", str(out), "--runner", "ray", "-q",
            "--workers", "2", "--config", str(config_file), *extra]


def _ray_workers(name: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "cmdline").read_bytes().startswith(name.encode()):
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def test_a_ray_job_on_a_two_node_cluster_survives_a_killed_actor(cluster, corpus, local_build, config_file, tmp_path):
    """The build submitted as a Ray Job to a two-node cluster, one of whose actors is SIGKILLed
    mid-build: the actor is restarted, its task retried, the job succeeds, and the dataset equals
    the local build byte for byte."""
    deadline = time.monotonic() + 60
    while True:  # the second node may still be registering with the head
        nodes = subprocess.run([RAY, "status", "--address", cluster["address"]], env=cluster["env"],
                               capture_output=True, text=True).stdout
        if nodes.count("node_") == 2 or time.monotonic() > deadline:
            break
        time.sleep(1.0)
    assert nodes.count("node_") == 2, nodes
    out = tmp_path / "ds"
    entrypoint = _build_command(corpus, out, config_file, "--address", "auto")
    job = subprocess.Popen([RAY, "job", "submit", "--address", cluster["dashboard"], "--", *entrypoint],
                           env=cluster["env"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    killed = None
    deadline = time.monotonic() + 120
    while killed is None and job.poll() is None and time.monotonic() < deadline:
        actors = _ray_workers("ray::MapWorker")
        if actors:
            time.sleep(4.0)  # past model loading, into its first videos
            actors = _ray_workers("ray::MapWorker")
            if actors:
                os.kill(actors[0], signal.SIGKILL)
                killed = actors[0]
        time.sleep(0.2)
    output, _ = job.communicate(timeout=600)
    assert killed is not None, "no Ray actor was found to kill"
    assert job.returncode == 0 and "succeeded" in output.lower(), output[-3000:]
    manifest = pq.read_table(out / "manifest").to_pylist()
    assert len({row["key"] for row in manifest}) == len(manifest)
    assert dataset_digests(out) == dataset_digests(local_build)


def test_private_ray_records_an_input_that_crashes_every_time(corpus, local_build, config_file, tmp_path):
    """No --address: pseudo3d starts (and stops) its own Ray on 127.0.0.1 with token auth; three
    of the corpus's inputs, one of which crashes its decoder every time."""
    out = tmp_path / "ds"
    victim = "01_talk"
    env = {**os.environ, "PSEUDO3D_FAULTS": f"crash={victim}"}
    env.pop("RAY_ADDRESS", None)
    inputs = sorted(corpus.glob("0[0-2]_*.mp4"))
    command = _build_command(inputs[0], out, config_file)
    command[4:5] = [str(path) for path in inputs]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    sources = pq.read_table(out / "sources").to_pylist()
    failures = pq.read_table(out / "failures").to_pylist()
    expected = {Path(row["source"]).name: row["status"]
                for row in pq.read_table(local_build / "sources").to_pylist()}
    assert len(sources) == len(inputs) == 3 and any(victim in row["source"] for row in sources)
    for row in sources:
        if victim in row["source"]:
            assert row["status"] == "failed"
            assert [(f["stage"], f["error"]) for f in failures if f["source"] == row["source"]] == [("worker", "crashed")]
        else:
            assert row["status"] == expected[Path(row["source"]).name]


def test_split_pipeline_reconstructs_in_its_own_actors(cluster, corpus, local_build, config_file, s3_bucket,
                                                      s3_endpoint, tmp_path):
    """The GPU layout (CPU actors track, write and commit; reconstruction actors reconstruct and
    encode), run on CPU: one tracking actor and one reconstruction actor on the two-node cluster.
    A batch of one frame makes every source a group of its own, so each unit goes to the
    reconstruction actor in several calls while the next source is tracked. The dataset goes to a
    bucket of a real S3-compatible server on 127.0.0.1 whose credentials the nodes lack: the actors
    get them from the driver's storage options."""
    out = f"{s3_bucket}/ds"
    split_config = tmp_path / "split.yaml"
    split_config.write_text(config_file.read_text() + "reconstruct:\n  batch_size: 1\n")
    script = ("import json, sys; from pseudo3d.config import BuildConfig; "
              "from pseudo3d.pipelines.runners.ray import build_ray; "
              "from pseudo3d.pipelines.sources import resolve_sources; "
              "from pseudo3d.storage import apply_storage_options; "
              "apply_storage_options('s3', json.loads(sys.argv[5])); "
              "build_ray(resolve_sources([sys.argv[1]]), sys.argv[2], BuildConfig.from_yaml(sys.argv[3]), "
              "address=sys.argv[4], workers=1, gpu_actors=1, split=True, progress=False)")
    options = {"key": os.environ["AWS_ACCESS_KEY_ID"], "secret": os.environ["AWS_SECRET_ACCESS_KEY"],
               "endpoint_url": s3_endpoint}
    result = subprocess.run([sys.executable, "-c", script, str(corpus), out, str(split_config), cluster["address"],
                             json.dumps(options)], env=cluster["env"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert dataset_digests(out) == dataset_digests(local_build)


@pytest.mark.parametrize("cpus, gpus, options, expected", [
    (256, 8, {"split": True}, (248, 8)),            # every actor fits: none waits for a CPU that never frees
    (256, 8, {"split": False}, (256, 0)),           # the whole chain in the CPU actors
    (4, 0, {"split": True}, (3, 1)),                # the GPU layout on CPUs (as in the test above)
    (2, 0, {"split": True, "workers": 1, "gpu_actors": 1}, (1, 1)),
    (1, 0, {"split": True}, (1, 1)),                # too small a cluster still gets one of each
])
def test_actor_counts_fit_the_cluster(cpus, gpus, options, expected):
    from pseudo3d.pipelines.runners.ray import actor_counts

    assert actor_counts(cpus, gpus, **options) == expected
