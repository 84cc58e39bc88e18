"""The training loop shared by ``pretrain`` and ``finetune``.

Windows stream from a ``torch.utils.data`` iterable (shards or a finetune dataset) through a
DataLoader; targets are normalised with the run's statistics; the loss is reconstruction plus
velocity (lip-weighted for vertex targets); AdamW with linear warm-up and cosine decay; bf16
autocast on CUDA. Metrics go to ``metrics.jsonl``, TensorBoard and the progress bar; a resumable
checkpoint is written every ``checkpoint_every`` steps and at the end. Under ``torchrun`` every
process runs this loop on its share of the data with the model in ``DistributedDataParallel``
(:mod:`pseudo3d.training.distributed`); rank 0 writes the run.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset
from tqdm import tqdm

from pseudo3d.errors import Pseudo3DError
from pseudo3d.storage import write_bytes
from pseudo3d.training import distributed
from pseudo3d.training.checkpoint import RunFiles, load_state, save_model, save_state
from pseudo3d.training.config import TrainConfig
from pseudo3d.training.losses import motion_loss

log = logging.getLogger(__name__)


@dataclass
class TrainingJob:
    """Everything the loop needs; built by ``pretrain`` or ``finetune``."""

    model: torch.nn.Module
    norm_mean: torch.Tensor
    """(D,) target mean."""
    norm_std: torch.Tensor
    """(D,) target standard deviation (floored)."""
    train_data: Callable[[int], Dataset]
    """epoch → the training windows for that epoch (reshuffled per epoch): iterable or map-style."""
    config: TrainConfig
    run_dir: Path
    run_config: dict[str, Any]
    """What ``config.json`` records (model, target, data, lineage); ``step`` is added here."""
    val_data: Dataset | None = None
    dim_weights: torch.Tensor | None = None
    history: list[dict[str, Any]] = field(default_factory=list)


def _schedule(config: TrainConfig) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < config.warmup_steps:
            return (step + 1) / config.warmup_steps
        progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return factor


class _Epochs(IterableDataset):
    """Epoch after epoch of ``job.train_data`` as one endless stream, so the DataLoader (and its
    worker processes) is created once for the whole run, not once per epoch. Each epoch's
    dataset splits itself across the workers, as it would on its own."""

    def __init__(self, make: Callable[[int], Dataset], first_epoch: int):
        self.make, self.first_epoch = make, first_epoch

    def __iter__(self):
        epoch = self.first_epoch
        while True:
            produced = False
            for window in self._windows(self.make(epoch)):
                produced = True
                yield window
            if not produced:
                return
            epoch += 1

    @staticmethod
    def _windows(dataset) -> Iterable[dict[str, Any]]:
        """An iterable dataset splits itself across processes and workers; a map-style one is
        split here: reader ``slot`` of ``count`` (:func:`~pseudo3d.training.data.distributed.reader_slot`)
        takes windows ``slot, slot + count, ...``."""
        from pseudo3d.training.data.distributed import reader_slot

        if isinstance(dataset, IterableDataset):
            return iter(dataset)
        slot = reader_slot()
        return (dataset[index] for index in range(slot.index, len(dataset), slot.count))


def _batches(job: TrainingJob, first_epoch: int, processes: distributed.Processes) -> Iterable[dict[str, Any]]:
    from pseudo3d.training.data import collate_windows, worker_init_fn

    loader = DataLoader(_Epochs(job.train_data, first_epoch), batch_size=job.config.batch_size,
                        collate_fn=collate_windows, num_workers=job.config.num_workers,
                        worker_init_fn=worker_init_fn if job.config.num_workers else None, drop_last=True)
    produced = False
    for batch in loader:
        produced = True
        yield batch
    if not produced:
        share = (f" for process {processes.rank} of {processes.world_size} (each reads its share of the clips)"
                 if processes.distributed else "")
        raise RuntimeError(f"the training data yielded no complete batch{share}: fewer windows than --batch-size "
                           "(use shorter windows, a smaller batch, more data or fewer processes)")


def _loss(job: TrainingJob, batch: dict[str, Any], device: torch.device,
          model: torch.nn.Module | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """The loss of ``batch`` through ``model`` (default ``job.model``; the training step passes
    its ``DistributedDataParallel`` wrapper)."""
    audio = batch["audio"].to(device, non_blocking=True)
    target = (batch["target"].to(device, non_blocking=True) - job.norm_mean) / job.norm_std
    fps = float(batch["fps"][0]) if isinstance(batch["fps"], (list, tuple, torch.Tensor)) else float(batch["fps"])
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        prediction = (model or job.model)(audio, n_frames=target.shape[1], fps=fps)
    return motion_loss(prediction.float(), target, velocity_weight=job.config.velocity_weight,
                       dim_weights=job.dim_weights)


def _rng_states() -> dict[str, torch.Tensor]:
    """Every random generator a step draws from: the CPU's and each CUDA device's."""
    states = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states.update({f"cuda.{index}": state for index, state in enumerate(torch.cuda.get_rng_state_all())})
    return states


def _rng_of_rank(states: dict[str, torch.Tensor], rank: int) -> dict[str, torch.Tensor] | None:
    """This rank's generator states among a checkpoint's (``rankR.NAME``; a checkpoint from before
    per-rank states holds ``torch`` alone, rank 0's), or None when it holds none for ``rank``."""
    prefix = f"rank{rank}."
    own = {name[len(prefix):]: state for name, state in states.items() if name.startswith(prefix)}
    if own:
        return own
    return {"torch": states["torch"]} if rank == 0 and "torch" in states else None


def _set_rng_states(states: dict[str, torch.Tensor]) -> None:
    torch.set_rng_state(states["torch"])
    for name, state in states.items():
        if name.startswith("cuda.") and torch.cuda.is_available() and int(name[5:]) < torch.cuda.device_count():
            torch.cuda.set_rng_state(state, int(name[5:]))


def _forget_metrics_after(path: Path, step: int) -> None:
    """Drop the metric lines a killed run logged after its last checkpoint (the resumed run logs
    those steps again), and a last line the kill cut short; the file is replaced whole."""
    if not path.is_file():
        return
    lines = path.read_text().splitlines(keepends=True)
    kept = []
    for number, line in enumerate(lines, start=1):
        try:
            entry = json.loads(line)
        except ValueError:
            log.warning("%s: line %d is not a metric record (cut short by a kill?); it and the lines after it "
                        "are dropped", path, number)
            break
        if entry.get("step", 0) <= step:
            kept.append(line if line.endswith("\n") else line + "\n")
    if kept != lines:
        write_bytes(path, "".join(kept).encode())


def validate(job: TrainingJob, device: torch.device) -> float | None:
    """Mean loss over the validation windows (None without validation data)."""
    if job.val_data is None:
        return None
    from pseudo3d.training.data import collate_windows

    job.model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for batch in DataLoader(job.val_data, batch_size=job.config.batch_size, collate_fn=collate_windows):
            loss, _ = _loss(job, batch, device)
            total += float(loss) * batch["audio"].shape[0]
            count += batch["audio"].shape[0]
    job.model.train()
    return total / count if count else None


def train(job: TrainingJob, *, progress: bool = True) -> list[dict[str, Any]]:
    """Run (or resume) the job to ``config.steps``; returns the logged metric records (on rank 0;
    other processes of a ``torchrun`` run return their own losses, and write nothing)."""
    config, files = job.config, RunFiles(job.run_dir)
    processes = distributed.setup(config.device)
    device = processes.device
    torch.manual_seed(config.seed + processes.rank)  # ranks draw different dropout masks
    resumed = load_state(job.run_dir)
    if resumed is not None and resumed.model is not None:
        job.model.load_state_dict(resumed.model)  # the weights of the optimizer's step
    job.model.to(device).train()
    job.norm_mean, job.norm_std = job.norm_mean.to(device), job.norm_std.to(device)
    if job.dim_weights is not None:
        job.dim_weights = job.dim_weights.to(device)
    parameters = [p for p in job.model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=config.learning_rate, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(config))
    step, first_epoch, skip = 0, 0, 0
    stream = {"batch_size": config.batch_size, "num_workers": config.num_workers, "world_size": processes.world_size}
    rng: dict[str, torch.Tensor] | None = None
    if resumed is not None:
        optimizer.load_state_dict(resumed.optimizer)
        step = resumed.step
        first_epoch, skip = resumed.stream.get("first_epoch", 0), resumed.stream.get("batches", 0)
        changed = sorted(name for name, value in stream.items() if resumed.stream.get(name, value) != value)
        if changed and skip:
            log.warning("%s was checkpointed with other %s; its data stream resumes at another place than an "
                        "uninterrupted run's would", job.run_dir, ", ".join(changed))
        rng = _rng_of_rank(resumed.rng, processes.rank)
        if rng is None:  # saved by another number of processes: a fresh, distinct stream per rank
            torch.manual_seed(config.seed + processes.rank + step)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(config), last_epoch=step - 1)
        log.info("resuming %s at step %d", job.run_dir, step)
        if processes.main:
            _forget_metrics_after(files.metrics, step)
    model = distributed.wrap(job.model, processes)

    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise Pseudo3DError("training logs to TensorBoard, which is not installed: pip install 'pseudo3d[train]'") from None
    writer = SummaryWriter(str(job.run_dir / "tensorboard"), purge_step=step or None) if processes.main else None
    files.metrics.parent.mkdir(parents=True, exist_ok=True)
    metrics_file = open(files.metrics, "a") if processes.main else None
    bar = tqdm(total=config.steps, initial=step, unit="step", desc="train", disable=not (progress and processes.main),
               dynamic_ncols=True)
    started, running = time.perf_counter(), []

    def record(entry: dict[str, Any]) -> None:
        job.history.append(entry)
        if metrics_file is None or writer is None:
            return
        metrics_file.write(json.dumps(entry) + "\n")
        metrics_file.flush()
        for name, value in entry.items():
            if name != "step" and isinstance(value, (int, float)):
                writer.add_scalar(name, value, entry["step"])

    def checkpoint() -> None:
        states = distributed.gather(_rng_states(), processes)  # every rank's generators (a collective)
        if not processes.main:
            return
        rng_states = {f"rank{rank}.{name}": state for rank, by_name in enumerate(states)
                      for name, state in by_name.items()}
        save_state(job.run_dir, job.model, optimizer, step, {**stream, "first_epoch": first_epoch, "batches": taken},
                   rng_states)
        save_model(job.run_dir, job.model, {"mean": job.norm_mean, "std": job.norm_std},
                   {**job.run_config, "train": config.to_dict(), "step": step})

    try:
        batches = iter(_batches(job, first_epoch, processes))
        finished = step >= config.steps  # a finished run run again: nothing to do or to record
        if skip and not finished:
            log.info("resuming the data stream: skipping the %d batches taken before step %d", skip, step)
            for _ in range(skip):
                next(batches)
        taken = skip  # batches taken from the stream, checkpointed as its position
        while step < config.steps:
            batch = next(batches)
            taken += 1
            if rng is not None:  # after the loader drew its seed, as the uninterrupted run's had
                _set_rng_states(rng)
                rng = None
            loss, parts = _loss(job, batch, device, model)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(parameters, config.grad_clip)
            optimizer.step()
            scheduler.step()
            step += 1
            running.append(parts["loss"])
            bar.update()
            if step % config.log_every == 0 or step == config.steps:
                parts = {name: distributed.mean_over(value, processes) for name, value in parts.items()}
                entry = {"step": step, **parts, "loss_mean": distributed.mean_over(sum(running) / len(running),
                                                                                   processes),
                         "lr": scheduler.get_last_lr()[0], "seconds": time.perf_counter() - started}
                running = []
                record(entry)
                bar.set_postfix(loss=f"{entry['loss_mean']:.4f}")
            if config.val_every and step % config.val_every == 0 and step != config.steps and processes.main:
                record({"step": step, "val_loss": validate(job, device)})
            if step % config.checkpoint_every == 0 and step != config.steps:
                checkpoint()
        if not finished:
            val_loss = validate(job, device) if processes.main else None
            if val_loss is not None:
                record({"step": step, "val_loss": val_loss})
            checkpoint()
    finally:
        bar.close()
        if writer is not None:
            writer.close()
        if metrics_file is not None:
            metrics_file.close()
    return job.history
