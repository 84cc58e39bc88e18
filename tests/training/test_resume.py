"""A killed training run resumed from its last checkpoint ends bit-identical to an uninterrupted run."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
from safetensors.torch import load_file  # noqa: E402

JOB = Path(__file__).with_name("resume_job.py")
STEPS = 120


def _losses(run: Path) -> dict[int, float]:
    return {entry["step"]: entry["loss"] for entry in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
            if "loss" in entry}


def test_a_run_killed_mid_way_resumes_to_the_weights_of_an_uninterrupted_run(tmp_path):
    """The job draws dropout masks and reads its windows through two DataLoader workers over
    several epochs, checkpointing every 7 steps; killed (SIGKILL, with its workers) once it has
    logged 15 steps, then run again, it must end with exactly the weights of the same job run
    whole, having logged exactly the same loss at every step."""
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(JOB), str(whole), str(STEPS)], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]

    process = subprocess.Popen([sys.executable, str(JOB), str(killed), str(STEPS)], env=env, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None:
        metrics = killed / "metrics.jsonl"
        if metrics.is_file() and len(metrics.read_text().splitlines()) >= 15:
            os.killpg(process.pid, signal.SIGKILL)
            break
        time.sleep(0.02)
    assert process.wait(timeout=60) == -signal.SIGKILL, "the run ended before it could be killed"
    stopped_at = json.loads((killed / "config.json").read_text())["step"]
    assert 7 <= stopped_at < STEPS

    done = subprocess.run([sys.executable, str(JOB), str(killed), str(STEPS)], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    expected, resumed = load_file(str(whole / "model.safetensors")), load_file(str(killed / "model.safetensors"))
    assert expected.keys() == resumed.keys()
    for name, value in expected.items():
        assert torch.equal(value, resumed[name]), name
    assert _losses(killed) == _losses(whole) and sorted(_losses(whole)) == list(range(1, STEPS + 1))


def test_a_run_saved_before_the_state_file_still_resumes(tmp_path):
    """``state/optimizer.safetensors`` + ``state/trainer.json`` (the layout before the state file):
    the optimizer's state and step come back; the weights are the run's model.safetensors."""
    from safetensors.torch import save_file

    from pseudo3d.training.checkpoint import load_state

    layer = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(layer.parameters(), lr=1e-3)
    layer(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    state = optimizer.state_dict()
    (tmp_path / "state").mkdir()
    tensors = {f"state.{index}.{name}": value for index, entries in state["state"].items()
               for name, value in entries.items()}
    save_file({**tensors, "rng.torch": torch.get_rng_state()}, str(tmp_path / "state" / "optimizer.safetensors"))
    (tmp_path / "state" / "trainer.json").write_text(json.dumps({"step": 5, "param_groups": state["param_groups"],
                                                                 "scalars": {}, "epoch": 0}))
    loaded = load_state(tmp_path)
    assert loaded is not None and loaded.step == 5 and loaded.model is None and loaded.stream == {}
    fresh = torch.optim.AdamW(layer.parameters(), lr=1e-3)
    fresh.load_state_dict(loaded.optimizer)
    for index, entries in state["state"].items():
        for name, value in entries.items():
            assert torch.equal(fresh.state_dict()["state"][index][name], value)
    assert load_state(tmp_path / "nothing") is None


def test_a_resume_drops_metric_lines_after_its_checkpoint_and_a_torn_last_line(tmp_path):
    from pseudo3d.training.loop import _forget_metrics_after

    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text('{"step": 5, "loss": 1.0}\n{"step": 10, "val_loss": 0.5}\n{"step": 12, "loss": 0.9}\n'
                       '{"step": 13, "lo')
    _forget_metrics_after(metrics, 10)
    assert metrics.read_text() == '{"step": 5, "loss": 1.0}\n{"step": 10, "val_loss": 0.5}\n'
