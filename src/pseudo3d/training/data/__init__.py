"""Training data: fixed-length (audio, motion) windows from pseudo3d shards (pretraining) and
from VOCASET/BEAT-layout captures (finetuning), with the target layout, normalisation and
batching that go with them.

Where things live:

* :mod:`.targets` — :class:`TargetSpec` (mesh offsets, FLAME, blendshapes) and a clip's targets;
* :mod:`.windows` — cutting a clip into windows, audio aligned to the frames;
* :mod:`.shards`, :mod:`.distributed`, :mod:`.streams`, :mod:`.shard_windows` — finding and
  reading shards, splitting them among nodes and workers, mixing/shuffling, :class:`ShardWindows`;
* :mod:`.sequences`, :mod:`.finetune_vocaset`, :mod:`.finetune_beat`, :mod:`.finetune` —
  finetune datasets and :class:`FinetuneWindows`;
* :mod:`.norm` (:class:`NormStats`), :mod:`.collate` (batches), :mod:`.blendshapes` (ARKit names).

Needs PyTorch (``pip install 'pseudo3d[train]'``).
"""

from __future__ import annotations

try:
    import torch  # noqa: F401  (fail early, with the install hint)
except ImportError as error:  # pragma: no cover - depends on the installation
    raise ImportError("pseudo3d.training.data needs PyTorch; install it with: pip install 'pseudo3d[train]'") from error

from pseudo3d.schemas.blendshapes import ARKIT_BLENDSHAPES, LIVE_LINK_FACE_COLUMNS, arkit_index
from pseudo3d.training.data.collate import collate_windows, worker_init_fn
from pseudo3d.training.data.finetune import FinetuneWindows
from pseudo3d.training.data.norm import NormStats, compute_norm_stats
from pseudo3d.training.data.shard_windows import ShardWindows, WindowCounts
from pseudo3d.training.data.shards import first_sample, resolve_shards
from pseudo3d.training.data.targets import TargetSpec
from pseudo3d.training.data.windows import SAMPLE_RATE, audio_window_length

__all__ = [
    "ARKIT_BLENDSHAPES", "LIVE_LINK_FACE_COLUMNS", "SAMPLE_RATE", "FinetuneWindows", "NormStats", "ShardWindows",
    "TargetSpec", "WindowCounts", "arkit_index", "audio_window_length", "collate_windows", "compute_norm_stats",
    "first_sample", "resolve_shards", "worker_init_fn",
]
