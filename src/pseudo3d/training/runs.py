"""``pretrain`` and ``finetune``: sibling entry points sharing the loop, configs and checkpoints.

* pretrain: pseudo3d shards (one or several datasets, mixed by weight) → a new run. The target
  follows the datasets' backend (MediaPipe mesh offsets, or FLAME expression + jaw).
* finetune: a pretrained run (``--init``) or a fresh model (``from_scratch``, the baseline a
  finetune is judged against) on VOCASET-layout vertices or BEAT-layout blendshapes, with a
  validation split; a new target (topology or kind) needs ``new_head``; the encoder can be frozen.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import torch

from pseudo3d.errors import Pseudo3DError
from pseudo3d.training import distributed
from pseudo3d.training.checkpoint import load_weights, read_config
from pseudo3d.training.config import TrainConfig
from pseudo3d.training.loop import TrainingJob, train
from pseudo3d.training.losses import lip_dim_weights
from pseudo3d.training.models import ModelConfig, build_model

if TYPE_CHECKING:
    from pseudo3d.training.data import NormStats

log = logging.getLogger(__name__)


def parse_data_options(specs: Sequence[str]) -> list[tuple[str, float]]:
    """``PATH`` or ``PATH@WEIGHT`` (weight > 0) → (path, weight) pairs."""
    sources = []
    for spec in specs:
        path, _, weight = spec.rpartition("@") if "@" in spec else (spec, "", "1")
        try:
            value = float(weight)
        except ValueError:
            raise Pseudo3DError(f"--data {spec!r}: the weight after '@' must be a number") from None
        if value <= 0:
            raise Pseudo3DError(f"--data {spec!r}: the weight must be > 0")
        sources.append((path, value))
    if not sources:
        raise Pseudo3DError("--data: name at least one dataset")
    return sources


def _lip_weights(target, config: TrainConfig) -> torch.Tensor | None:
    """Lip-weighted vertex loss for vertex targets on the 478-point MediaPipe topology (the
    pseudo-3D mesh and the synthetic FLAME head share it); None otherwise."""
    if target.kind != "mesh_offsets" or config.lip_weight == 0 or target.n_vertices != 478:
        return None
    from pseudo3d.training.masks import synthetic_regions_mediapipe

    return lip_dim_weights(target.n_vertices, synthetic_regions_mediapipe().lips, config.lip_weight)


def pretrain(data: Sequence[str], out: str | Path, config: TrainConfig, *, model_kind: str = "hierarchical",
             model_options: dict[str, Any] | None = None, progress: bool = True) -> TrainingJob:
    from pseudo3d.training.data import ShardWindows, TargetSpec, compute_norm_stats, first_sample

    sources = parse_data_options(data)
    out = Path(out)
    sample = first_sample(sources[0][0])
    target = TargetSpec.for_shards(sample)
    fps = float(sample["meta.json"]["fps"])
    window_frames = max(2, round(config.window_s * fps))

    def windows(epoch: int) -> ShardWindows:
        return ShardWindows(sources, target, window_frames, fps=fps, shuffle_buffer=config.shuffle_buffer,
                            seed=config.seed, epoch=epoch, audio_shuffle=config.audio_shuffle)

    if (out / "config.json").is_file():  # resume: keep the run's model and statistics
        model, mean, std, run_config = _load_run(out)
    else:
        _new_run(out, config)
        model_config = ModelConfig(kind=model_kind, output_dim=target.dim, **(model_options or {}))
        model = build_model(model_config)
        # the first norm_windows windows of epoch 0's stream read by one reader (shards in the seed's
        # order, mixed and shuffled as training reads them), targets only
        stream = ShardWindows(sources, target, window_frames, fps=fps, shuffle_buffer=config.shuffle_buffer,
                              seed=config.seed, rank=0, world_size=1, audio=False)
        mean, std = _norm_stats(lambda: compute_norm_stats(stream, max_windows=config.norm_windows),
                                target.dim, config)
        run_config = {"stage": "pretrain", "model": model_config.to_dict(), "target": target.to_dict(),
                      "data": [{"path": path, "weight": weight} for path, weight in sources], "fps": fps,
                      "window_frames": window_frames, "init": None}
    job = TrainingJob(model=model, norm_mean=mean, norm_std=std, train_data=windows, config=config, run_dir=out,
                      run_config=run_config, dim_weights=_lip_weights(target, config))
    train(job, progress=progress)
    return job


def finetune(data: str | Path, data_format: str, out: str | Path, config: TrainConfig, *, init: str | Path | None,
             model_kind: str = "hierarchical", model_options: dict[str, Any] | None = None,
             progress: bool = True) -> TrainingJob:
    """``init=None`` trains the same architecture from scratch on the finetune data (the baseline)."""
    from pseudo3d.training.data import FinetuneWindows, compute_norm_stats

    out = Path(out)
    fps = 30.0
    window_frames = max(2, round(config.window_s * fps))

    def windows(split: str, epoch: int = 0) -> FinetuneWindows:
        return FinetuneWindows(data, data_format, window_frames, fps=fps, split=split, seed=config.seed + epoch)

    target = windows("train").target
    if (out / "config.json").is_file():
        model, mean, std, run_config = _load_run(out)
    else:
        _new_run(out, config)
        if init is not None:
            model, _, _, parent = _load_run(Path(init))
            previous = parent["target"]
            if (previous["kind"], previous["dim"]) != (target.kind, target.dim) and not config.new_head:
                raise Pseudo3DError(
                    f"--init {init} predicts {previous['kind']} ({previous['dim']} values) but the {data_format} data "
                    f"has {target.kind} ({target.dim}); pass --new-head to replace the output head")
            if config.new_head:
                model.replace_head(target.dim)
            model_config = parent["model"] | {"output_dim": target.dim}
        else:
            model_config = ModelConfig(kind=model_kind, output_dim=target.dim, **(model_options or {})).to_dict()
            model = build_model(ModelConfig.from_dict(model_config))
        mean, std = _norm_stats(lambda: compute_norm_stats(windows("train")), target.dim, config)
        run_config = {"stage": "finetune", "model": model_config, "target": target.to_dict(),
                      "data": [{"path": str(data), "format": data_format}], "fps": fps, "window_frames": window_frames,
                      "init": None if init is None else str(init)}
    if config.freeze_encoder:  # a resumed run too: its optimizer holds no encoder parameters
        for parameter in model.encoder.parameters():
            parameter.requires_grad_(False)
    job = TrainingJob(model=model, norm_mean=mean, norm_std=std, train_data=lambda epoch: windows("train", epoch),
                      config=config, run_dir=out, run_config=run_config, val_data=windows("val"),
                      dim_weights=_lip_weights(target, config))
    train(job, progress=progress)
    return job


def _new_run(out: Path, config: TrainConfig) -> None:
    """Before a new run's model is made: its weights start from ``config.seed``, and a state file
    left by a run killed before its first ``config.json`` (which would be resumed into a model it
    does not fit) is removed."""
    torch.manual_seed(config.seed)
    orphan = out / "state"
    if orphan.is_dir():
        log.warning("%s holds a training state but no config.json (a run killed before its first checkpoint "
                    "finished); starting the run afresh", out)
        shutil.rmtree(orphan, ignore_errors=True)  # every process of a torchrun run may try


def _norm_stats(compute: "Callable[[], NormStats]", dim: int, config: TrainConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, std) (D,) float32 of the training targets: computed by rank 0 alone and sent to the
    other processes of a ``torchrun`` run (:mod:`pseudo3d.training.distributed`), so all of them
    normalise alike."""
    processes = distributed.setup(config.device)
    if processes.main:
        stats = compute().to_tensors()
        mean, std = stats["mean"], stats["std"]
    else:
        mean, std = torch.zeros(dim, dtype=torch.float32), torch.ones(dim, dtype=torch.float32)
    return distributed.from_main(mean, processes), distributed.from_main(std, processes)


def _load_run(root: Path):
    """(model with the run's weights, norm mean, norm std, the run's config) of a saved run."""
    run_config = read_config(root)
    model = build_model(ModelConfig.from_dict(run_config["model"]))
    state, norm = load_weights(root)
    model.load_state_dict(state)
    run_config = {key: value for key, value in run_config.items() if key not in ("format", "pseudo3d_version", "train", "step")}
    return model, norm["mean"], norm["std"], run_config
