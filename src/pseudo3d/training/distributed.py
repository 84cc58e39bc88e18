"""Data-parallel training over several processes (GPUs or nodes), as ``torchrun`` starts them.

``pseudo3d train ...`` run by ``torchrun --nproc-per-node N ...`` (one process per GPU; nodes
add ``--nnodes``/``--rdzv-endpoint``) finds ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK`` in its
environment: each process joins one process group (NCCL on CUDA, gloo on CPU), trains on
``cuda:LOCAL_RANK``, reads its own share of the data (shards or windows split by rank and
DataLoader worker, :mod:`pseudo3d.training.data.distributed`), and wraps the model in
``DistributedDataParallel``, which starts every process from rank 0's weights and averages the
gradients of every step, so all processes hold the same weights throughout. ``--batch-size`` is
per process: a step sees ``batch_size × WORLD_SIZE`` windows. Rank 0 alone writes the run
(checkpoints, metrics, TensorBoard); logged losses are means over all processes. Without
``WORLD_SIZE`` (or with 1) nothing here changes a plain run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from pseudo3d.errors import ConfigError
from pseudo3d.reconstruction.device import resolve_device

T = TypeVar("T")


@dataclass(frozen=True)
class Processes:
    """Where this process stands among the processes training one model."""

    rank: int
    world_size: int
    device: torch.device
    """This process's device: ``cuda:LOCAL_RANK`` under ``torchrun`` on CUDA."""

    @property
    def main(self) -> bool:
        """Whether this process writes the run (rank 0)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup(device: str = "auto", option: str = "--device") -> Processes:
    """This process's place in the run: one process alone, or, where the environment says
    ``WORLD_SIZE`` > 1 (``torchrun``), one of many, joining the default process group (once;
    later calls return the same). ``device`` (``auto``, ``cpu``, ``cuda``) picks the kind of
    device; under ``torchrun`` a CUDA process takes ``cuda:LOCAL_RANK``. Raises
    :class:`ConfigError` naming ``option`` for a device that is not there, or for an explicit
    ``cuda:N`` under ``torchrun`` (each process's GPU comes from ``LOCAL_RANK``)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1") or 1)
    resolved = resolve_device(device, option=option)
    if world_size <= 1:
        return Processes(rank=0, world_size=1, device=resolved)
    if resolved.type == "cuda":
        if device.startswith("cuda:"):
            raise ConfigError(f"{option} {device}: under torchrun each process takes cuda:LOCAL_RANK; "
                              "pass auto or cuda")
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if local_rank >= torch.cuda.device_count():
            raise ConfigError(f"LOCAL_RANK is {local_rank} but this node has {torch.cuda.device_count()} CUDA "
                              "device(s): start at most that many processes per node (torchrun --nproc-per-node)")
        resolved = torch.device("cuda", local_rank)
        torch.cuda.set_device(resolved)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if resolved.type == "cuda" else "gloo")
    return Processes(rank=dist.get_rank(), world_size=dist.get_world_size(), device=resolved)


def wrap(model: torch.nn.Module, processes: Processes) -> torch.nn.Module:
    """``model`` (on ``processes.device``) as the module a step runs: ``DistributedDataParallel``
    over it when there are several processes (it copies rank 0's weights to every process now),
    else the model itself."""
    if not processes.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [processes.device.index] if processes.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids)


def from_main(tensor: torch.Tensor, processes: Processes) -> torch.Tensor:
    """Rank 0's ``tensor`` on every process (the same shape and dtype everywhere; ``tensor`` itself
    with one process)."""
    if not processes.distributed:
        return tensor
    moved = tensor.to(processes.device).contiguous()
    dist.broadcast(moved, src=0)
    return moved.to(tensor.device)


def gather(value: T, processes: Processes) -> list[T]:
    """Every process's ``value`` (picklable), by rank, on every process (a collective)."""
    if not processes.distributed:
        return [value]
    values: list[Any] = [None] * processes.world_size
    dist.all_gather_object(values, value)
    return values


def mean_over(value: float, processes: Processes) -> float:
    """The mean of ``value`` over all processes (a collective: every process calls it at the
    same point)."""
    if not processes.distributed:
        return value
    total = torch.tensor([value], dtype=torch.float64, device=processes.device)
    dist.all_reduce(total)
    return float(total) / processes.world_size


def finish(processes: Processes) -> None:
    """Wait for every process (rank 0 may still be writing the run), then leave the group."""
    if processes.distributed and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
