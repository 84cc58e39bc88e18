"""Data-parallel training under torchrun: two CPU processes (gloo) train one model."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
from safetensors.torch import load_file  # noqa: E402

JOB = Path(__file__).with_name("ddp_job.py")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _run(command: list[str]) -> None:
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def test_two_processes_end_with_the_weights_of_one_process_with_twice_the_batch(tmp_path):
    """Both ranks hold identical weights (DDP averages every step's gradients), equal within
    float rounding to one process stepping on the same windows in batches twice as large; rank 0
    alone writes the run, and its logged losses are the mean over the ranks."""
    alone, together = tmp_path / "alone", tmp_path / "together"
    alone.mkdir()
    together.mkdir()
    _run([sys.executable, str(JOB), str(alone), "8"])
    _run([sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", "2",
          "--master-addr", "127.0.0.1", "--master-port", str(_free_port()), str(JOB), str(together), "4"])
    ranks = [load_file(str(together / f"rank{rank}.safetensors")) for rank in (0, 1)]
    single = load_file(str(alone / "rank0.safetensors"))
    assert ranks[0].keys() == single.keys()
    for name, value in single.items():
        assert torch.equal(ranks[0][name], ranks[1][name]), name
        torch.testing.assert_close(ranks[0][name], value, rtol=0, atol=1e-5, msg=name)
    steps = [json.loads(line) for line in (together / "run" / "metrics.jsonl").read_text().splitlines()]
    alone_steps = [json.loads(line) for line in (alone / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in steps] == [1, 2, 3, 4]
    assert [entry["loss"] for entry in steps] == pytest.approx([entry["loss"] for entry in alone_steps], rel=1e-5)
    assert (together / "run" / "model.safetensors").is_file()
