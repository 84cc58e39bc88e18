"""Reading user-supplied PyTorch checkpoints safely: tensors only, keys and shapes checked.

DECA's ``deca_model.tar`` and SyncNet's ``syncnet_v2.model`` are ``torch.save`` files of state
dicts. They are unpickled with ``weights_only=True``, so a file that smuggles code (any pickled
object other than tensors and plain containers) is refused, not run; and a state dict is checked
against the module that will load it (``strict=True``) before any weights are used, so a wrong or
damaged file stops a build with an :class:`~pseudo3d.errors.AssetError` that names it and the
first few offending keys.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping, TypeVar

try:
    import torch
except ImportError as error:  # pragma: no cover - depends on the installation
    raise ImportError("reading PyTorch checkpoints needs PyTorch; install it with: pip install 'pseudo3d[train]'") from error

from pseudo3d.errors import AssetError

OPTIONAL_SUFFIX = ".num_batches_tracked"
"""Batch-norm step counters: unused at inference and absent from files saved by PyTorch before
0.4.1, so a missing one is filled with 0 rather than refused."""
SHOWN_KEYS = 5
"""How many offending keys an error message lists."""
ModuleT = TypeVar("ModuleT", bound=torch.nn.Module)

_BOILERPLATE = ("weights only load failed", "please file an issue", "check the documentation", "(1) ", "(2) ")
"""Starts of the generic lines torch wraps around a tensors-only unpickling error."""


def load_tensors_only(path: Path, what: str) -> object:
    """``torch.load(path, weights_only=True)`` on the CPU. Raises :class:`AssetError` naming
    ``what`` and ``path`` when the file holds pickled objects other than tensors (refused, never
    run) or is not a PyTorch file at all (an HTML page from a failed download, a truncated file)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any parse failure means "not a checkpoint we accept"
        detail = _unpickler_detail(error)
        # The tensors-only unpickler names a refused import "GLOBAL module.name"; any other failure
        # (a bad opcode, a broken archive, an empty file) means the file is not a torch checkpoint.
        if "global" in detail.lower():
            raise AssetError(f"{what} holds pickled objects other than tensors, refused for safety "
                             f"(only tensors and plain containers are loaded): {path}; {detail}") from None
        raise AssetError(f"{what} is not a PyTorch checkpoint (an HTML page from a failed download, "
                         f"a truncated or different file?): {path}; {type(error).__name__}: {detail}") from None


def checked_state_dict(state: Mapping, expected: Mapping[str, torch.Size], *, what: str, path: Path,
                       model: str) -> dict[str, torch.Tensor]:
    """``state`` as a state dict that a module with parameter shapes ``expected`` loads with
    ``strict=True``: keys as strings, floating tensors as float32 on the CPU, missing batch-norm
    counters (:data:`OPTIONAL_SUFFIX`) filled with 0. Raises :class:`AssetError` naming ``what``,
    ``path`` and ``model`` (how the message describes the module) for non-tensor entries,
    missing or unexpected keys, or tensors of the wrong shape (the first few of each listed)."""
    not_tensors = [str(key) for key, value in state.items() if not isinstance(value, torch.Tensor)]
    if not_tensors:
        raise AssetError(f"{what} has non-tensor entries ({few(not_tensors)}): {path}")
    state = {str(key): value.float() if value.is_floating_point() else value for key, value in state.items()}
    for key in expected.keys() - state.keys():
        if key.endswith(OPTIONAL_SUFFIX):
            state[key] = torch.zeros((), dtype=torch.long)
    missing = sorted(expected.keys() - state.keys())
    unexpected = sorted(state.keys() - expected.keys())
    wrong_shape = [f"{key} {tuple(state[key].shape)} (expected {tuple(expected[key])})"
                   for key in sorted(expected.keys() & state.keys()) if state[key].shape != expected[key]]
    problems = ([f"missing keys: {few(missing)}"] if missing else []) \
        + ([f"unexpected keys: {few(unexpected)}"] if unexpected else []) \
        + ([f"wrong shapes: {few(wrong_shape)}"] if wrong_shape else [])
    if problems:
        raise AssetError(f"{what} does not match {model}: {path}; " + "; ".join(problems))
    return state


def module_with_state(make: Callable[[], ModuleT], state: Mapping[str, torch.Tensor]) -> ModuleT:
    """``make()`` holding ``state`` (loaded with ``strict=True``), gradients off. The module is
    built on the meta device, so no random weights are drawn only to be replaced."""
    with torch.device("meta"):
        module = make()
    module.load_state_dict(state, strict=True, assign=True)
    module.requires_grad_(False)
    return module


def module_shapes(make: Callable[[], torch.nn.Module]) -> dict[str, torch.Size]:
    """Key → shape of the state dict of the module ``make()`` builds, on the meta device (no
    weights are drawn)."""
    with torch.device("meta"):
        return {key: value.shape for key, value in make().state_dict().items()}


def few(items: list[str]) -> str:
    """The first :data:`SHOWN_KEYS` of ``items``, and how many more there are."""
    shown = ", ".join(items[:SHOWN_KEYS])
    return shown + (f" and {len(items) - SHOWN_KEYS} more" if len(items) > SHOWN_KEYS else "")


def _unpickler_detail(error: BaseException) -> str:
    """The informative line of a ``torch.load`` error, without torch's generic advice: the
    unpickler's own line when there is one (it names a refused import), else the first other."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    refused = [line for line in lines if "global" in line.lower() and "unpickler" in line.lower()]
    informative = [line for line in lines if not line.lower().startswith(_BOILERPLATE)]
    return (refused or informative or lines or ["no message"])[0]
