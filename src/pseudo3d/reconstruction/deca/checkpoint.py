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

WHAT = "DECA checkpoint (deca_model.tar)"
COARSE_ENCODER_KEY = "E_flame"
"""Top-level entry of the checkpoint that holds the coarse encoder's state dict."""
_OPTIONAL_SUFFIX = ".num_batches_tracked"
"""Batch-norm step counters: not used at inference and absent from checkpoints saved by older
PyTorch versions, so a missing one is filled with 0 rather than refused."""
_SHOWN_KEYS = 5
"""How many offending keys an error message lists."""


def load_deca_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """``E_flame`` of a DECA checkpoint as a state dict (CPU tensors, floating ones as float32) that
    :class:`~pseudo3d.reconstruction.deca.encoder.DecaEncoder` loads with ``strict=True``.

    Raises :class:`AssetError` naming the file when it is missing, is not a PyTorch checkpoint,
    holds pickled objects other than tensors, has no ``E_flame`` entry, or its keys or tensor
    shapes differ from DECA's coarse encoder (a few offending keys are listed).
    """
    path = require_file(path, WHAT)
    checkpoint = _load_tensors_only(path)
    if not isinstance(checkpoint, Mapping) or COARSE_ENCODER_KEY not in checkpoint:
        found = sorted(map(str, checkpoint))[:_SHOWN_KEYS] if isinstance(checkpoint, Mapping) else []
        raise AssetError(f"{WHAT} has no {COARSE_ENCODER_KEY!r} entry (the coarse encoder): {path}"
                         + (f"; top-level entries: {', '.join(found)}" if found else
                            f"; it holds a {type(checkpoint).__name__}, not a dict of state dicts"))
    state = checkpoint[COARSE_ENCODER_KEY]
    if not isinstance(state, Mapping):
        raise AssetError(f"{WHAT} entry {COARSE_ENCODER_KEY!r} is a {type(state).__name__}, "
                         f"not a state dict: {path}")
    return _checked_state(state, path)


def _load_tensors_only(path: Path) -> object:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any parse failure means "not a checkpoint we accept"
        detail = _unpickler_detail(error)
        # The tensors-only unpickler reports a refused import as "... GLOBAL module.name ..."; any
        # other failure (a bad opcode, a broken archive, an empty file) means it is not a checkpoint.
        if "global" in detail.lower():
            raise AssetError(f"{WHAT} holds pickled objects other than tensors, refused for safety "
                             f"(only tensors and plain containers are loaded): {path}; {detail}") from None
        raise AssetError(f"{WHAT} is not a PyTorch checkpoint (an HTML page from a failed download, "
                         f"a truncated or different file?): {path}; {type(error).__name__}: {detail}") from None


def _checked_state(state: Mapping, path: Path) -> dict[str, torch.Tensor]:
    expected = _expected_shapes()
    not_tensors = [str(key) for key, value in state.items() if not isinstance(value, torch.Tensor)]
    if not_tensors:
        raise AssetError(f"{WHAT} {COARSE_ENCODER_KEY!r} has non-tensor entries "
                         f"({_few(not_tensors)}): {path}")
    state = {str(key): value.float() if value.is_floating_point() else value for key, value in state.items()}
    for key in expected.keys() - state.keys():
        if key.endswith(_OPTIONAL_SUFFIX):
            state[key] = torch.zeros((), dtype=torch.long)
    missing = sorted(expected.keys() - state.keys())
    unexpected = sorted(state.keys() - expected.keys())
    wrong_shape = [f"{key} {tuple(state[key].shape)} (expected {tuple(expected[key])})"
                   for key in sorted(expected.keys() & state.keys())
                   if state[key].shape != expected[key]]
    problems = []
    if missing:
        problems.append(f"missing keys: {_few(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_few(unexpected)}")
    if wrong_shape:
        problems.append(f"wrong shapes: {_few(wrong_shape)}")
    if problems:
        raise AssetError(f"{WHAT} {COARSE_ENCODER_KEY!r} does not match DECA's coarse encoder "
                         f"(ResNet-50 + 2048→1024→236 regressor): {path}; " + "; ".join(problems))
    return state


@lru_cache(maxsize=1)
def _expected_shapes() -> dict[str, torch.Size]:
    """Key → shape of the encoder's state dict, from a weightless (meta-device) instance."""
    # Imported here because encoder.py imports this module for DecaEncoder.from_checkpoint.
    from pseudo3d.reconstruction.deca.encoder import DecaEncoder

    with torch.device("meta"):
        return {key: value.shape for key, value in DecaEncoder().state_dict().items()}


def _few(items: list[str]) -> str:
    shown = ", ".join(items[:_SHOWN_KEYS])
    return shown + (f" and {len(items) - _SHOWN_KEYS} more" if len(items) > _SHOWN_KEYS else "")


_BOILERPLATE = ("weights only load failed", "please file an issue", "check the documentation")
"""Starts of the generic lines torch wraps around a tensors-only unpickling error."""


def _unpickler_detail(error: BaseException) -> str:
    """The informative line of a ``torch.load`` error, without torch's generic advice."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    informative = [line for line in lines if not line.lower().startswith(_BOILERPLATE)]
    return (informative or lines or ["no message"])[0]
