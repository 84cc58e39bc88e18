"""Batching windows for a DataLoader, and the worker set-up."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
from torch.utils.data import default_collate


def collate_windows(windows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A batch of B windows: ``audio`` (B, L) and ``target`` (B, T, D) float32, ``keys``
    (list of B str), ``start_frame`` (B,) int64, ``fps`` (B,) float64. Every window must have
    the same L, T and D (true within one dataset, whose windows share a length and fps)."""
    if not windows:
        raise ValueError("collate_windows: empty batch")
    audio = [torch.as_tensor(w["audio"], dtype=torch.float32) for w in windows]
    target = [torch.as_tensor(w["target"], dtype=torch.float32) for w in windows]
    for name, items in (("audio", audio), ("target", target)):
        shapes = {tuple(item.shape) for item in items}
        if len(shapes) > 1:
            raise ValueError(f"collate_windows: {name} shapes differ within the batch: {sorted(shapes)}")
    # default_collate stacks straight into shared memory inside a DataLoader worker, saving the
    # copy that sending a batch to the main process would otherwise make.
    return {
        "audio": default_collate(audio),
        "target": default_collate(target),
        "keys": [str(w["key"]) for w in windows],
        "start_frame": torch.tensor([int(w["start_frame"]) for w in windows], dtype=torch.int64),
        "fps": torch.tensor([float(w["fps"]) for w in windows], dtype=torch.float64),
    }


def worker_init_fn(worker_id: int) -> None:
    """One intra-op thread per DataLoader worker: workers decode FLAC and npy in parallel
    already, and a thread pool per worker would oversubscribe the cores. (Seeding is not
    needed: the datasets seed themselves from their settings and the worker id.)"""
    torch.set_num_threads(1)
