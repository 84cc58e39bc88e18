"""Who reads what: the node's rank and world size, the DataLoader worker, and the split of a
source's shards (or clips) among all readers without duplicates.

Readers are numbered ``slot = rank · n_workers + worker`` out of ``n_slots = world_size ·
n_workers``. With at least as many shards as slots, slot ``s`` reads shards ``s, s + n_slots,
...``; with fewer, every slot opens every shard and keeps clips ``s, s + n_slots, ...`` (more
reading, same coverage), so a small dataset still feeds every reader.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

RANK_ENV = "PSEUDO3D_RANK"
WORLD_SIZE_ENV = "PSEUDO3D_WORLD_SIZE"


@dataclass(frozen=True)
class ReaderSlot:
    rank: int
    world_size: int
    worker: int
    n_workers: int

    @property
    def index(self) -> int:
        return self.rank * self.n_workers + self.worker

    @property
    def count(self) -> int:
        return self.world_size * self.n_workers


def node_rank(rank: int | None = None, world_size: int | None = None) -> tuple[int, int]:
    """(rank, world_size): the arguments if given, else ``torch.distributed`` when initialised,
    else ``$PSEUDO3D_RANK`` / ``$PSEUDO3D_WORLD_SIZE``, else torchrun's ``$RANK`` / ``$WORLD_SIZE``,
    else (0, 1)."""
    if rank is None or world_size is None:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            found = torch.distributed.get_rank(), torch.distributed.get_world_size()
        else:  # a DataLoader worker process of a torchrun process has torchrun's variables
            found = (_env_int(RANK_ENV, _env_int("RANK", 0)), _env_int(WORLD_SIZE_ENV, _env_int("WORLD_SIZE", 1)))
        rank = found[0] if rank is None else rank
        world_size = found[1] if world_size is None else world_size
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not in [0, world_size={world_size})")
    return int(rank), int(world_size)


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    if not value.strip():
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"${name} must be an integer, got {value!r}") from None


def reader_slot(rank: int | None = None, world_size: int | None = None) -> ReaderSlot:
    """This reader's slot (call inside ``__iter__``: the worker is known only there)."""
    rank, world_size = node_rank(rank, world_size)
    info = torch.utils.data.get_worker_info()
    worker, n_workers = (0, 1) if info is None else (info.id, info.num_workers)
    return ReaderSlot(rank=rank, world_size=world_size, worker=worker, n_workers=n_workers)


@dataclass(frozen=True)
class Assignment:
    """What one slot reads of one source: these shards, and of their clips those whose running
    index ``i`` (over the shards in this order) has ``i % clip_stride == clip_offset``."""

    shards: tuple[str, ...]
    clip_stride: int
    clip_offset: int

    def keeps(self, clip_index: int) -> bool:
        return clip_index % self.clip_stride == self.clip_offset


def assign(shards: tuple[str, ...], slot: ReaderSlot) -> Assignment:
    """Split ``shards`` (already in the epoch's order, the same on every reader) for ``slot``."""
    if len(shards) >= slot.count:
        return Assignment(shards=shards[slot.index::slot.count], clip_stride=1, clip_offset=0)
    return Assignment(shards=shards, clip_stride=slot.count, clip_offset=slot.index)
