"""Training runs on disk: safetensors weights beside a JSON config, resumable, no pickles.

A run directory::

    RUN/config.json            format, model and target specs, training options, data, step, lineage
    RUN/model.safetensors      model weights + the target's normalisation statistics (norm.mean, norm.std)
    RUN/state/checkpoint.safetensors   what a resume needs, in one file: the weights, the optimizer's
                               tensors, every random generator's state, and (in the header's
                               metadata) the step, the optimizer's settings and the position in the
                               data stream
    RUN/metrics.jsonl          one JSON line per logged step / validation pass
    RUN/tensorboard/           the same scalars for TensorBoard

Every file is written under a temporary name and renamed, so a killed run leaves the previous
checkpoint intact; a resume reads the state file alone, so weights and optimizer state always come
from the same step. Runs written before the state file existed (``state/optimizer.safetensors``
beside ``state/trainer.json``) still resume, from the weights in ``model.safetensors`` and a fresh
data stream.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save

import pseudo3d
from pseudo3d.errors import Pseudo3DError
from pseudo3d.storage import write_bytes

RUN_FORMAT = "pseudo3d.run/1"
NORM_PREFIX = "norm."


@dataclass
class RunFiles:
    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.json"

    @property
    def weights(self) -> Path:
        return self.root / "model.safetensors"

    @property
    def state(self) -> Path:
        return self.root / "state" / "checkpoint.safetensors"

    @property
    def optimizer(self) -> Path:
        """Before the state file: the optimizer's tensors (read for a resume only)."""
        return self.root / "state" / "optimizer.safetensors"

    @property
    def trainer(self) -> Path:
        return self.root / "state" / "trainer.json"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.jsonl"


def save_model(root: Path, model: torch.nn.Module, norm_tensors: dict[str, torch.Tensor], config: dict[str, Any]) -> None:
    """Weights (with normalisation statistics) then the config; the config is written last."""
    files = RunFiles(Path(root))
    tensors = {name: value.detach().cpu().contiguous() for name, value in model.state_dict().items()}
    tensors.update({NORM_PREFIX + name: value.detach().cpu().contiguous() for name, value in norm_tensors.items()})
    write_bytes(files.weights, save(tensors))
    document = {"format": RUN_FORMAT, "pseudo3d_version": pseudo3d.__version__, **config}
    write_bytes(files.config, (json.dumps(document, indent=2, sort_keys=True) + "\n").encode())


def read_config(root: Path) -> dict[str, Any]:
    files = RunFiles(Path(root))
    if not files.config.is_file() or not files.weights.is_file():
        raise Pseudo3DError(f"{root} is not a pseudo3d training run (expected config.json and model.safetensors)")
    document = json.loads(files.config.read_text())
    if document.get("format") != RUN_FORMAT:
        raise Pseudo3DError(f"{files.config}: unknown run format {document.get('format')!r} (expected {RUN_FORMAT})")
    return document


def load_weights(root: Path) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(model state dict, normalisation tensors) of a run, from safetensors (no pickle involved)."""
    tensors = load_file(str(RunFiles(Path(root)).weights))
    norm = {name[len(NORM_PREFIX):]: value for name, value in tensors.items() if name.startswith(NORM_PREFIX)}
    state = {name: value for name, value in tensors.items() if not name.startswith(NORM_PREFIX)}
    return state, norm


@dataclass
class TrainingState:
    """Everything a resume needs, from one step (:func:`save_state`)."""

    step: int
    model: dict[str, torch.Tensor] | None
    """The weights at ``step`` (None for a run from before the state file: take model.safetensors)."""
    optimizer: dict[str, Any]
    """The optimizer's state dict."""
    stream: dict[str, int]
    """Where the data stream was: ``first_epoch`` (the epoch it started at) and ``batches`` (batches
    taken from it); empty for a run from before the state file."""
    rng: dict[str, torch.Tensor]
    """``torch`` (the CPU generator) and ``cuda.N`` (each CUDA device's), as ``get_rng_state`` gives them."""


def save_state(root: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, step: int,
               stream: dict[str, int], rng: dict[str, torch.Tensor]) -> None:
    """One file holding the weights, the optimizer's tensors and the random generators' states,
    with the step, the optimizer's settings (param groups, non-tensor state) and ``stream`` as JSON
    in its header: written under a temporary name and renamed, so it is always one step's whole."""
    state = optimizer.state_dict()
    tensors = {f"model.{name}": value.detach().cpu().contiguous() for name, value in model.state_dict().items()}
    scalars = {}
    for index, entries in state["state"].items():
        for name, value in entries.items():
            if torch.is_tensor(value):
                tensors[f"optimizer.{index}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{index}.{name}"] = value
    tensors.update({f"rng.{name}": value.contiguous() for name, value in rng.items()})
    header = {"step": step, "param_groups": state["param_groups"], "scalars": scalars, "stream": stream}
    write_bytes(RunFiles(Path(root)).state, save(tensors, metadata={"pseudo3d": json.dumps(header, sort_keys=True)}))


def load_state(root: Path) -> TrainingState | None:
    """The state to resume ``root`` from (:func:`save_state`; or, for a run written before it, the
    optimizer's state and step from ``state/optimizer.safetensors`` and ``state/trainer.json``),
    or None when the run has none."""
    files = RunFiles(Path(root))
    if files.state.is_file():
        with safe_open(str(files.state), framework="pt") as handle:
            header = json.loads((handle.metadata() or {})["pseudo3d"])
        tensors = load_file(str(files.state))
        model = {name[len("model."):]: value for name, value in tensors.items() if name.startswith("model.")}
        rng = {name[len("rng."):]: value for name, value in tensors.items() if name.startswith("rng.")}
        optimizer = _optimizer_state({name[len("optimizer."):]: value for name, value in tensors.items()
                                      if name.startswith("optimizer.")}, header)
        return TrainingState(step=int(header["step"]), model=model, optimizer=optimizer,
                             stream={name: int(value) for name, value in header["stream"].items()}, rng=rng)
    if not (files.optimizer.is_file() and files.trainer.is_file()):
        return None
    trainer = json.loads(files.trainer.read_text())
    tensors = load_file(str(files.optimizer))
    rng = {"torch": tensors.pop("rng.torch")}
    optimizer = _optimizer_state({name[len("state."):]: value for name, value in tensors.items()}, trainer)
    return TrainingState(step=int(trainer["step"]), model=None, optimizer=optimizer, stream={}, rng=rng)


def _optimizer_state(tensors: dict[str, torch.Tensor], header: dict[str, Any]) -> dict[str, Any]:
    """An optimizer state dict from its tensors (``INDEX.NAME``) and the header's ``param_groups``
    and ``scalars``."""
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    for key, value in header.get("scalars", {}).items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    return {"state": state, "param_groups": header["param_groups"]}
