"""Safe loading of DECA's ``deca_model.tar``: tensors only, keys and shapes checked.

The official file is a ``torch.save`` of ``{"E_flame": ..., "E_detail": ..., "D_detail": ...}``
state dicts (plus possibly other entries). Only ``E_flame``, the coarse encoder, is used; the
rest is ignored. The file is unpickled with ``weights_only=True``, so a file that smuggles
code (any pickled object other than tensors and plain containers) is refused, not run.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Mapping

import torch

from pseudo3d.errors import AssetError
from pseudo3d.reconstruction.asset_files import require_file
from pseudo3d.reconstruction.torch_checkpoint import SHOWN_KEYS, checked_state_dict, load_tensors_only, module_shapes

WHAT = "DECA checkpoint (deca_model.tar)"
COARSE_ENCODER_KEY = "E_flame"
"""Top-level entry of the checkpoint that holds the coarse encoder's state dict."""


def load_deca_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """``E_flame`` of a DECA checkpoint as a state dict (CPU tensors, floating ones as float32) that
    :class:`~pseudo3d.reconstruction.deca.encoder.DecaEncoder` loads with ``strict=True``.

    Raises :class:`AssetError` naming the file when it is missing, is not a PyTorch checkpoint,
    holds pickled objects other than tensors, has no ``E_flame`` entry, or its keys or tensor
    shapes differ from DECA's coarse encoder (a few offending keys are listed).
    """
    path = require_file(path, WHAT)
    checkpoint = load_tensors_only(path, WHAT)
    if not isinstance(checkpoint, Mapping) or COARSE_ENCODER_KEY not in checkpoint:
        found = sorted(map(str, checkpoint))[:SHOWN_KEYS] if isinstance(checkpoint, Mapping) else []
        raise AssetError(f"{WHAT} has no {COARSE_ENCODER_KEY!r} entry (the coarse encoder): {path}"
                         + (f"; top-level entries: {', '.join(found)}" if found else
                            f"; it holds a {type(checkpoint).__name__}, not a dict of state dicts"))
    state = checkpoint[COARSE_ENCODER_KEY]
    if not isinstance(state, Mapping):
        raise AssetError(f"{WHAT} entry {COARSE_ENCODER_KEY!r} is a {type(state).__name__}, "
                         f"not a state dict: {path}")
    return _checked_state(state, path)


def _checked_state(state: Mapping, path: Path) -> dict[str, torch.Tensor]:
    return checked_state_dict(state, _expected_shapes(), what=f"{WHAT} {COARSE_ENCODER_KEY!r}", path=path,
                              model="DECA's coarse encoder (ResNet-50 + 2048→1024→236 regressor)")


@lru_cache(maxsize=1)
def _expected_shapes() -> dict[str, torch.Size]:
    """Key → shape of the encoder's state dict, from a weightless (meta-device) instance."""
    # Imported here because encoder.py imports this module for DecaEncoder.from_checkpoint.
    from pseudo3d.reconstruction.deca.encoder import DecaEncoder

    return module_shapes(DecaEncoder)
