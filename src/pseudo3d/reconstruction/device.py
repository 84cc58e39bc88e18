"""Device placement and batching for the GPU backends: the plumbing a batched reconstructor uses.

* :func:`resolve_device` turns the ``reconstruct.device`` option into a :class:`torch.device`.
* :func:`uint8_crops_to_device` moves face crops to the device as uint8 (4× less traffic than
  float32) through pinned memory, and converts them to float [0, 1] there.
* :func:`inference_context` is the one place that decides precision (``reconstruct.precision``):
  IEEE float32 with deterministic cuDNN algorithms, or bfloat16 autocast with autotuned ones on
  CUDA; float32 on CPU; no autograd bookkeeping either way.
* :func:`concatenate_clips`, :func:`iter_batches` and :func:`split_like` let a backend run
  fixed-size batches over the frames of many clips and hand each clip its own rows back.
"""

from __future__ import annotations

import warnings
from contextlib import ExitStack, contextmanager
from typing import Iterator, Mapping, Sequence, TypeVar

import numpy as np

try:
    import torch
except ImportError as error:  # pragma: no cover - depends on the installation
    raise ImportError("the GPU reconstruction backends need PyTorch; install it with: "
                      "pip install 'pseudo3d[train]'") from error

from pseudo3d.config import PRECISIONS
from pseudo3d.errors import ConfigError

DEVICE_OPTION = "reconstruct.device"
"""The configuration option the device name comes from, named in errors."""

Rows = TypeVar("Rows", np.ndarray, torch.Tensor)


def resolve_device(name: str = "auto", option: str = DEVICE_OPTION) -> torch.device:
    """``auto`` → ``cuda`` when CUDA is available, else ``cpu``; ``cpu``, ``cuda`` and ``cuda:N``
    as given. The one device resolver: reconstruction, SyncNet and training. Raises
    :class:`ConfigError` naming ``option`` (``reconstruct.device`` unless told) for an unknown
    name, for CUDA on a machine without it, or for a CUDA index that does not exist."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ConfigError(f"{option} must be auto, cpu, cuda or cuda:N, got {name!r}") from None
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"{option} must be auto, cpu, cuda or cuda:N, got {name!r}")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"{option} is {name!r} but CUDA is not available here "
                              f"(torch {torch.__version__}); use auto or cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"{option} is {name!r} but only {torch.cuda.device_count()} "
                              f"CUDA device(s) exist")
    return device


ModuleT = TypeVar("ModuleT", bound=torch.nn.Module)


def place_module(module: ModuleT, device: str | torch.device | None) -> ModuleT:
    """``module`` on ``device`` (None: ``auto``) in eval mode; on CUDA with its weights in
    channels_last format, the layout cuDNN runs fastest and :func:`uint8_crops_to_device`
    delivers."""
    target = resolve_device("auto" if device is None else str(device))
    module = module.to(target).eval()
    if target.type == "cuda":
        # Module.to takes memory_format (documented) but torch's overloads leave it out
        module = module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    return module


def uint8_crops_to_device(crops: np.ndarray, device: torch.device | str) -> torch.Tensor:
    """Crops (N, H, W, 3) uint8 RGB on the host → (N, 3, H, W) float32 in [0, 1] on ``device``.

    On CUDA the uint8 bytes are copied into pinned host memory and sent with
    ``non_blocking=True`` (the copy overlaps host work; the float conversion is queued after it on
    the same stream), converted on the GPU, and returned in channels_last memory format (the
    NHWC bytes already are, so no reordering happens). On CPU the result is a contiguous NCHW
    tensor.
    """
    if not isinstance(crops, np.ndarray) or crops.dtype != np.uint8 or crops.ndim != 4 or crops.shape[3] != 3:
        described = (f"{crops.dtype} array of shape {crops.shape}" if isinstance(crops, np.ndarray)
                     else type(crops).__name__)
        raise ValueError(f"crops must be a uint8 array of shape (N, H, W, 3), got a {described}")
    device = torch.device(device)
    host = host_tensor(crops)
    if device.type == "cuda":
        on_device = host.pin_memory().to(device, non_blocking=True)
        return _unit_range(on_device)
    return host.permute(0, 3, 1, 2).float().div_(255.0).contiguous()


@contextmanager
def inference_context(device: torch.device | str, precision: str = "fp32") -> Iterator[None]:
    """No-autograd inference (``torch.inference_mode``) on ``device`` at ``precision``
    (:func:`inference_precision` says what actually runs):

    * ``fp32``: IEEE float32 throughout. On CUDA, cuDNN runs without TF32 and with deterministic
      algorithms chosen without autotuning, so the same batch gives the same bytes on the same GPU
      model and software stack (matrix products use PyTorch's default, IEEE float32, too).
    * ``bf16`` on CUDA: bfloat16 autocast with autotuned cuDNN algorithms (TF32 allowed): the
      fastest, not bit-reproducible. On CPU, float32.

    Outputs made inside are inference tensors: read them, don't train on them. The cuDNN settings
    are restored on exit. Raises ValueError for a precision not in :data:`PRECISIONS`.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    device = torch.device(device)
    with ExitStack() as stack:
        stack.enter_context(torch.inference_mode())
        if device.type == "cuda":
            fast = precision == "bf16"
            stack.enter_context(torch.backends.cudnn.flags(enabled=True, benchmark=fast, deterministic=not fast,
                                                           allow_tf32=fast))
            if fast:
                stack.enter_context(torch.autocast(device_type="cuda", dtype=torch.bfloat16))
        yield


def inference_precision(device: torch.device | str, precision: str = "fp32") -> str:
    """What :func:`inference_context` runs at: ``precision`` on CUDA, ``fp32`` on CPU."""
    return precision if torch.device(device).type == "cuda" else "fp32"


def numerics(device: torch.device | str, precision: str) -> dict[str, str]:
    """What a model's outputs depend on beyond its inputs and weights: the device kind and the
    precision (these decide output bytes, so a resume must match them), and the PyTorch, CUDA
    and cuDNN versions (recorded in the card, like the other package versions)."""
    device = torch.device(device)
    cuda = device.type == "cuda"
    found = {"device": device.type, "precision": precision, "torch": torch.__version__,
             "cuda": (torch.version.cuda or "") if cuda else "", "cudnn": str(torch.backends.cudnn.version() or "") if cuda else ""}
    if not cuda:  # a CPU convolution's last bits depend on its thread count (docs/data-contract.md, Determinism)
        found["threads"] = str(torch.get_num_threads())
    return found


def iter_batches(n_items: int, batch_size: int) -> Iterator[slice]:
    """Consecutive slices of ``range(n_items)``, each ``batch_size`` long except possibly the last."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if n_items < 0:
        raise ValueError(f"n_items must be >= 0, got {n_items}")
    for start in range(0, n_items, batch_size):
        yield slice(start, min(start + batch_size, n_items))


def concatenate_clips(per_clip: Sequence[np.ndarray]) -> np.ndarray:
    """Per-clip arrays (T_i, ...) → one array (sum T_i, ...), clip after clip, so batches can
    span clips; :func:`split_like` with ``[len(a) for a in per_clip]`` undoes it."""
    if not per_clip:
        raise ValueError("concatenate_clips needs at least one clip")
    trailing = {tuple(array.shape[1:]) for array in per_clip}
    if len(trailing) > 1:
        raise ValueError(f"clips must agree on every axis but the first (frames), got shapes "
                         f"{sorted({tuple(array.shape) for array in per_clip})[:4]}")
    return np.concatenate(per_clip, axis=0)


def split_like(rows: Rows | Mapping[str, Rows], lengths: Sequence[int]) -> list:
    """Rows (N, ...) with N = sum(lengths) → one (lengths[i], ...) piece per clip; a mapping of
    such arrays (e.g. a backend's outputs) → one mapping per clip with the same keys."""
    lengths = [int(n) for n in lengths]
    if any(n < 0 for n in lengths):
        raise ValueError(f"clip lengths must be >= 0, got {lengths}")
    if isinstance(rows, Mapping):
        pieces = {name: split_like(value, lengths) for name, value in rows.items()}
        return [{name: pieces[name][i] for name in rows} for i in range(len(lengths))]
    if rows.shape[0] != sum(lengths):
        raise ValueError(f"cannot split {rows.shape[0]} rows into clips of lengths summing to "
                         f"{sum(lengths)}")
    bounds = np.cumsum([0] + lengths)
    return [rows[start:stop] for start, stop in zip(bounds[:-1], bounds[1:])]


class CropUploader:
    """Moves batches of uint8 crops to the device: on CUDA through two reusable pinned buffers, so
    filling one on the host overlaps the transfer and compute of the other; on CPU by a plain
    conversion. Call with the pieces of one batch (slices of several clips' crops, each
    (n_i, H, W, 3) uint8, at most ``batch_size`` frames together); returns (N, 3, H, W) float in
    [0, 1] (channels_last on CUDA)."""

    def __init__(self, device: torch.device | str, batch_size: int, crop_size: int = 224):
        self.device = torch.device(device)
        self.batch_size = batch_size
        self._buffers: list[torch.Tensor] = []
        self._events: list[torch.cuda.Event | None] = []
        if self.device.type == "cuda":
            self._buffers = [torch.empty((batch_size, crop_size, crop_size, 3), dtype=torch.uint8).pin_memory()
                             for _ in range(2)]
            self._events = [None, None]
        self._turn = 0

    def __call__(self, pieces: Sequence[np.ndarray]) -> torch.Tensor:
        total = sum(len(piece) for piece in pieces)
        if total > self.batch_size:
            raise ValueError(f"{total} crops exceed the uploader's batch size {self.batch_size}")
        if self.device.type != "cuda":
            return uint8_crops_to_device(np.concatenate(pieces) if len(pieces) > 1 else pieces[0], self.device)
        buffer, event = self._buffers[self._turn], self._events[self._turn]
        if event is not None:
            event.synchronize()  # the transfer that last read this buffer has finished
        offset = 0
        for piece in pieces:
            buffer[offset:offset + len(piece)].copy_(host_tensor(piece))
            offset += len(piece)
        on_device = buffer[:total].to(self.device, non_blocking=True)
        done = torch.cuda.Event()
        done.record()
        self._events[self._turn] = done
        self._turn ^= 1
        return _unit_range(on_device)


def host_tensor(array: np.ndarray) -> torch.Tensor:
    """A CPU tensor over ``array``'s memory (a copy only if it is not contiguous), to be read, not
    written. Arrays that arrive through Ray's object store are read-only views of shared memory:
    reading them is safe, so PyTorch's warning about tensors over non-writable memory is silenced."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(np.ascontiguousarray(array))


def _unit_range(on_device: torch.Tensor) -> torch.Tensor:
    """(N, H, W, 3) uint8 on a CUDA device → (N, 3, H, W) float32 x / 255, channels_last. The
    divisor is a device tensor: a Python-number divisor makes CUDA multiply by its reciprocal,
    which is off by one bit for some values; this is IEEE division, the CPU's bytes exactly."""
    images = on_device.permute(0, 3, 1, 2).float().div_(torch.full((), 255.0, device=on_device.device))
    return images.contiguous(memory_format=torch.channels_last)


def batch_pieces(lengths: Sequence[int], batch: slice) -> list[tuple[int, int, int]]:
    """The parts of clips (clip index, start, stop) that frames ``batch`` of the clips laid end to
    end cover, in order; lets a batch be gathered from the clips without concatenating them all."""
    pieces, start = [], 0
    for index, length in enumerate(lengths):
        stop = start + length
        low, high = max(start, batch.start), min(stop, batch.stop)
        if low < high:
            pieces.append((index, low - start, high - start))
        start = stop
    return pieces
