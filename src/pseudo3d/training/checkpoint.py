"""Training runs on disk: safetensors weights beside a JSON config, resumable, no pickles.

A run directory::

    RUN/config.json            format, model and target specs, training options, data, step, lineage
    RUN/model.safetensors      model weights + the target's normalisation statistics (norm.mean, norm.std)
    RUN/state/optimizer.safetensors, RUN/state/trainer.json   what a resume needs (optimizer tensors,
                                                              schedule position, RNG state)
    RUN/metrics.jsonl          one JSON line per logged step / validation pass
    RUN/tensorboard/           the same scalars for TensorBoard

Every file is written under a temporary name and renamed, so a killed run leaves the previous
checkpoint intact.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
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
    def optimizer(self) -> Path:
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


def save_training_state(root: Path, optimizer: torch.optim.Optimizer, step: int, extra: dict[str, Any]) -> None:
    """Optimizer tensors to safetensors, everything else (param groups, step, RNG) to JSON."""
    files = RunFiles(Path(root))
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, entries in state["state"].items():
        for name, value in entries.items():
            if torch.is_tensor(value):
                tensors[f"state.{index}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{index}.{name}"] = value
    tensors["rng.torch"] = torch.get_rng_state()
    write_bytes(files.optimizer, save(tensors))
    trainer = {"step": step, "param_groups": state["param_groups"], "scalars": scalars, **extra}
    write_bytes(files.trainer, (json.dumps(trainer, indent=2, sort_keys=True) + "\n").encode())


def load_training_state(root: Path) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(optimizer state dict, trainer JSON) to resume from, or None when the run has none."""
    files = RunFiles(Path(root))
    if not (files.optimizer.is_file() and files.trainer.is_file()):
        return None
    trainer = json.loads(files.trainer.read_text())
    tensors = load_file(str(files.optimizer))
    torch.set_rng_state(tensors.pop("rng.torch"))
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        _, index, name = key.split(".", 2)
        state.setdefault(int(index), {})[name] = value
    for key, value in trainer.get("scalars", {}).items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    return {"state": state, "param_groups": trainer["param_groups"]}, trainer
