"""Safe loading of SPECTRE's ``spectre_model.tar``: tensors only, both encoders' keys and shapes
checked.

SPECTRE's trainer saves ``{"E_flame": ..., "E_expression": ..., "opt": ..., "global_step": ...}``
with ``torch.save`` (``E_flame``: DECA's coarse encoder, unchanged; ``E_expression``: the
temporal expression encoder). The same two state dicts are also met

* nested under a ``state_dict`` entry, or
* flat, every key prefixed ``deca.E_flame.`` / ``deca.E_expression.`` (possibly under
  ``state_dict`` too), as a checkpoint of a module that holds the model as ``deca`` stores them.

Every layout is read; other entries (the optimiser's state, counters, other modules) are ignored,
as SPECTRE's own loader does. The file is unpickled with ``weights_only=True``, so a file that
smuggles code is refused, not run; each state dict must match its module exactly (a missing or an
extra key is refused, naming it), stricter than SPECTRE's own loader, which goes on with untrained
weights when ``E_expression`` does not load.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Mapping

import torch

from pseudo3d.errors import AssetError
from pseudo3d.reconstruction.asset_files import require_file
from pseudo3d.reconstruction.torch_checkpoint import SHOWN_KEYS, checked_state_dict, load_tensors_only, module_shapes

WHAT = "SPECTRE checkpoint (spectre_model.tar)"
ENCODERS = ("E_flame", "E_expression")
"""The checkpoint's entries this project reads: DECA's coarse encoder and SPECTRE's expression encoder."""
FLAT_PREFIX = "deca."
"""Prefix of the flat layout's keys, before the encoder's name."""
MODELS = {"E_flame": "DECA's coarse encoder (ResNet-50 + 2048→1024→236 regressor)",
          "E_expression": "SPECTRE's expression encoder (MobileNetV2 + temporal Conv1d 1280→256, k 5 + Linear 256→53)"}


def load_spectre_state_dicts(path: str | Path) -> dict[str, dict[str, torch.Tensor]]:
    """``{"E_flame": ..., "E_expression": ...}`` of a SPECTRE checkpoint in any layout above, each a
    state dict (CPU tensors, floating ones as float32) that
    :class:`~pseudo3d.reconstruction.deca.encoder.DecaEncoder` and
    :class:`~pseudo3d.reconstruction.spectre.encoder.ExpressionEncoder` load with ``strict=True``.

    Raises :class:`AssetError` naming the file when it is missing, is not a PyTorch checkpoint,
    holds pickled objects other than tensors, lacks either encoder, or an encoder's keys or
    tensor shapes differ from the module's (the first few offending keys are listed).
    """
    path = require_file(path, WHAT)
    checkpoint = load_tensors_only(path, WHAT)
    if not isinstance(checkpoint, Mapping):
        raise AssetError(f"{WHAT} holds a {type(checkpoint).__name__}, not a dict of state dicts: {path}")
    if "state_dict" in checkpoint and isinstance(checkpoint["state_dict"], Mapping):
        checkpoint = checkpoint["state_dict"]
    states = _nested(checkpoint, path) or _flat(checkpoint)
    missing = [name for name in ENCODERS if name not in states]
    if missing:
        found = sorted(map(str, checkpoint))
        raise AssetError(f"{WHAT} has no {' or '.join(repr(name) for name in missing)} entry: {path}; expected "
                         f"entries {' and '.join(ENCODERS)} (or keys prefixed {FLAT_PREFIX}E_flame. and "
                         f"{FLAT_PREFIX}E_expression.), found {', '.join(found[:SHOWN_KEYS]) or 'none'}"
                         + (f" and {len(found) - SHOWN_KEYS} more" if len(found) > SHOWN_KEYS else ""))
    shapes = _expected_shapes()
    return {name: checked_state_dict(states[name], shapes[name], what=f"{WHAT} {name!r}", path=path,
                                     model=MODELS[name])
            for name in ENCODERS}


def _nested(checkpoint: Mapping, path: Path) -> dict[str, Mapping]:
    """The encoders stored as entries of their own (``{"E_flame": {...}, ...}``)."""
    found = {}
    for name in ENCODERS:
        entry = checkpoint.get(name)
        if entry is not None and not isinstance(entry, Mapping):
            raise AssetError(f"{WHAT} entry {name!r} is a {type(entry).__name__}, not a state dict: {path}")
        if entry is not None:
            found[name] = entry
    return found


def _flat(checkpoint: Mapping) -> dict[str, dict]:
    """The encoders stored as flat keys ``deca.E_flame.KEY`` / ``deca.E_expression.KEY``."""
    found: dict[str, dict] = {}
    for key, value in checkpoint.items():
        for name in ENCODERS:
            prefix = f"{FLAT_PREFIX}{name}."
            if isinstance(key, str) and key.startswith(prefix):
                found.setdefault(name, {})[key[len(prefix):]] = value
    return found


@lru_cache(maxsize=1)
def _expected_shapes() -> dict[str, dict[str, torch.Size]]:
    """Encoder name → key → shape of its state dict, from weightless (meta-device) instances."""
    # Imported here: encoder.py imports this module for SpectreEncoder.from_checkpoint.
    from pseudo3d.reconstruction.deca.encoder import DecaEncoder
    from pseudo3d.reconstruction.spectre.encoder import ExpressionEncoder

    return {"E_flame": module_shapes(DecaEncoder), "E_expression": module_shapes(ExpressionEncoder)}
