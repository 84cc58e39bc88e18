"""SyncNet: the audio-visual sync network behind the LSE-D / LSE-C figures of talking-head papers.

:class:`SyncNet` is the two-stream network of joonson/syncnet_python (MIT), written here so that
its parameter names are the keys of VGG's released weights, ``syncnet_v2.model`` (a
``torch.save`` of the reference module's state dict: ``netcnnlip.*``, ``netfclip.*``,
``netcnnaud.*``, ``netfcaud.*``), which :meth:`SyncNet.from_checkpoint` loads with
``strict=True``. The weights are VGG's and are never shipped: the user passes the file's path.
Synthetic weights in the same file layout, for tests and demos:
:func:`pseudo3d.testing.syncnet_assets.write_synthetic_syncnet_checkpoint`.

* lip stream: 5 frames (0.2 s at 25 fps) of a 224 × 224 face crop, **BGR, 0..255** (as
  ``cv2.imread`` gives them; no normalisation) → a 1024-vector;
* audio stream: 20 MFCC steps (0.2 s) of 13 coefficients → a 1024-vector.

:func:`syncnet_scores` scores a clip (its crops and audio) as the reference's ``evaluate`` does:
LSE-D, LSE-C and the offset, in pseudo3d's sign convention (positive: the audio lags). The
crops, MFCCs and figures are in :mod:`pseudo3d.qa.syncnet_scoring` (no PyTorch needed there).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

try:
    import torch
    from torch import nn
except ImportError as error:  # pragma: no cover - depends on the installation
    raise ImportError("SyncNet (LSE-D/LSE-C) needs PyTorch; install it with: pip install 'pseudo3d[train]'") from error

from pseudo3d.errors import AssetError
from pseudo3d.files import file_sha256
from pseudo3d.qa.syncnet_scoring import (CROP_SIZE, DEFAULT_VSHIFT, FPS, MFCC_PER_FRAME, N_MFCC, SAMPLE_RATE,
                                         WINDOW_FRAMES, WINDOW_MFCC, n_sync_windows, offset_distances,
                                         sync_figures, syncnet_mfcc)
from pseudo3d.reconstruction.asset_files import require_file
from pseudo3d.reconstruction.device import host_tensor, inference_context, resolve_device
from pseudo3d.reconstruction.torch_checkpoint import (checked_state_dict, load_tensors_only, module_shapes,
                                                     module_with_state)

SYNCNET_METRICS = ("lse_d", "lse_c", "syncnet_offset_frames")
"""The manifest columns :func:`syncnet_scores` gives a clip."""
EMBEDDING_SIZE = 1024
"""Length of SyncNet's lip and audio embeddings."""
WHAT = "SyncNet checkpoint (syncnet_v2.model)"
"""How error messages name the file."""
DEFAULT_BATCH_SIZE = 20
"""Windows per forward pass (``run_syncnet.py``'s default); larger batches suit a GPU."""

_PREFIXES = ("__S__.", "module.")
"""Key prefixes of other plausible layouts: the reference's ``SyncNetInstance.state_dict()``
(the network is its ``__S__``) and ``nn.DataParallel``; stripped when every key has one."""
_NESTED = ("state_dict", "model")
"""Entries under which a training script may have nested the state dict."""


def _conv_block(conv: nn.Module, channels: int, batch_norm: type[nn.Module], pool: nn.Module | None,
                relu_inplace: bool = True) -> list[nn.Module]:
    """Convolution, batch norm, ReLU and an optional pooling, in the order the keys count them."""
    layers = [conv, batch_norm(channels), nn.ReLU(inplace=relu_inplace)]
    return layers + ([pool] if pool is not None else [])


def _embedding_head() -> nn.Sequential:
    """512 → 512 → 1024 fully connected head (``netfclip``/``netfcaud``: keys 0, 1 and 3)."""
    return nn.Sequential(nn.Linear(512, 512), nn.BatchNorm1d(512), nn.ReLU(), nn.Linear(512, EMBEDDING_SIZE))


class SyncNet(nn.Module):
    """SyncNet's two streams: ``forward_lip`` (B, 3, 5, 224, 224) → (B, 1024) and ``forward_aud``
    (B, 1, 13, 20) → (B, 1024).

    Build it with :meth:`from_checkpoint`; the bare constructor gives random weights (used to
    write synthetic checkpoints and to check a checkpoint's key names and shapes). The module
    indices inside each ``nn.Sequential`` are those of the reference, so the checkpoint's keys
    (``netcnnlip.0.weight`` ... ``netfcaud.3.bias``) name the same layers here.
    """

    def __init__(self) -> None:
        super().__init__()
        conv2, bn2, conv3, bn3 = nn.Conv2d, nn.BatchNorm2d, nn.Conv3d, nn.BatchNorm3d
        # Audio: MFCC "image" 13 × 20 → 512 × 1 × 1. The first pool of the reference is a 1 × 1
        # max pool, an identity; an Identity keeps the index so the keys that follow line up.
        self.netcnnaud = nn.Sequential(
            *_conv_block(conv2(1, 64, 3, padding=1), 64, bn2, nn.Identity()),
            *_conv_block(conv2(64, 192, 3, padding=1), 192, bn2, nn.MaxPool2d(3, stride=(1, 2))),
            *_conv_block(conv2(192, 384, 3, padding=1), 384, bn2, None),
            *_conv_block(conv2(384, 256, 3, padding=1), 256, bn2, None),
            *_conv_block(conv2(256, 256, 3, padding=1), 256, bn2, nn.MaxPool2d(3, stride=2)),
            *_conv_block(conv2(256, 512, (5, 4)), 512, bn2, None, relu_inplace=False),
        )
        self.netfcaud = _embedding_head()
        # Lips: 5 × 224 × 224 BGR → 512 × 1 × 1 × 1; the first convolution spans all 5 frames.
        self.netcnnlip = nn.Sequential(
            *_conv_block(conv3(3, 96, (5, 7, 7), stride=(1, 2, 2)), 96, bn3,
                         nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2))),
            *_conv_block(conv3(96, 256, (1, 5, 5), stride=(1, 2, 2), padding=(0, 1, 1)), 256, bn3,
                         nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))),
            *_conv_block(conv3(256, 256, (1, 3, 3), padding=(0, 1, 1)), 256, bn3, None),
            *_conv_block(conv3(256, 256, (1, 3, 3), padding=(0, 1, 1)), 256, bn3, None),
            *_conv_block(conv3(256, 256, (1, 3, 3), padding=(0, 1, 1)), 256, bn3,
                         nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2))),
            *_conv_block(conv3(256, 512, (1, 6, 6)), 512, bn3, None),
        )
        self.netfclip = _embedding_head()
        self.asset_hashes: dict[str, str] = {}
        """Asset name → SHA-256 of the file the weights came from (empty for random weights)."""

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str | torch.device = "cpu") -> "SyncNet":
        """SyncNet with the weights of ``path`` (VGG's ``syncnet_v2.model`` or a synthetic one),
        on ``device``, in eval mode, without gradients.

        The file is read with ``torch.load(weights_only=True)``: tensors and plain containers
        only, never pickled code. Accepted layouts: a plain state dict (the released file), one
        nested under ``state_dict`` or ``model``, and keys prefixed ``__S__.`` or ``module.``.
        Missing ``num_batches_tracked`` counters (files from PyTorch < 0.4.1) are filled with 0;
        half-precision weights are converted to float32.

        Raises :class:`~pseudo3d.errors.AssetError` naming the file when it is missing, is not a
        PyTorch file, holds pickled objects other than tensors, or its keys or tensor shapes
        differ from SyncNet's (the first few offending keys are listed);
        :class:`~pseudo3d.errors.ConfigError` (a ValueError naming ``reconstruct.device``, the
        option a build takes it from) for a device torch does not know or CUDA where there is none.
        """
        path = require_file(path, WHAT)
        target = resolve_device(str(device))
        model = module_with_state(cls, load_syncnet_state_dict(path))
        model.asset_hashes = {"syncnet_checkpoint": file_sha256(path)}
        return model.to(target).eval()

    def forward_lip(self, video: torch.Tensor) -> torch.Tensor:
        """Lip windows (B, 3, 5, 224, 224) float, BGR channel order, values 0..255 (frames
        ``i .. i+4`` of the crops, as ``cv2.imread`` reads them, not normalised) → (B, 1024)."""
        _check_windows(video, (3, WINDOW_FRAMES, CROP_SIZE, CROP_SIZE), "lip windows", "float BGR 0..255")
        features = self.netcnnlip(video)
        return self.netfclip(features.flatten(1))

    def forward_aud(self, mfcc: torch.Tensor) -> torch.Tensor:
        """MFCC windows (B, 1, 13, 20) float (13 coefficients × 20 steps of 10 ms, from
        :func:`~pseudo3d.qa.syncnet_scoring.syncnet_mfcc`) → (B, 1024)."""
        _check_windows(mfcc, (1, N_MFCC, WINDOW_MFCC), "MFCC windows", "float")
        features = self.netcnnaud(mfcc)
        return self.netfcaud(features.flatten(1))

    def forward(self, video: torch.Tensor, mfcc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(lip embeddings, audio embeddings) of matching windows: :meth:`forward_lip`, :meth:`forward_aud`."""
        return self.forward_lip(video), self.forward_aud(mfcc)


# --- Checkpoint --------------------------------------------------------------------------------


def _check_windows(windows: torch.Tensor, expected: tuple[int, ...], what: str, kind: str) -> None:
    """Raise ValueError unless ``windows`` is a float ``(B, *expected)`` batch."""
    if windows.ndim != len(expected) + 1 or tuple(windows.shape[1:]) != expected:
        raise ValueError(f"SyncNet {what} must have shape (B, {', '.join(map(str, expected))}), "
                         f"got {tuple(windows.shape)}")
    if not windows.is_floating_point():
        raise ValueError(f"SyncNet {what} must be {kind}, got dtype {windows.dtype}")

def load_syncnet_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict in ``path`` (CPU tensors, floating ones as float32) that :class:`SyncNet`
    loads with ``strict=True``; see :meth:`SyncNet.from_checkpoint` for the accepted layouts and
    the :class:`~pseudo3d.errors.AssetError` cases."""
    path = require_file(path, WHAT)
    state = _unwrap(load_tensors_only(path, WHAT), path)
    return checked_state_dict(state, _expected_shapes(), what=WHAT, path=path,
                              model="SyncNet (joonson/syncnet_python's S: netcnnlip, netfclip, netcnnaud, netfcaud)")


def _unwrap(checkpoint: object, path: Path) -> dict[str, object]:
    """The state dict inside the accepted layouts, keys as strings, a shared prefix stripped."""
    if not isinstance(checkpoint, Mapping):
        raise AssetError(f"{WHAT} holds a {type(checkpoint).__name__}, not a state dict: {path}")
    for name in _NESTED:
        nested = checkpoint.get(name)
        if isinstance(nested, Mapping):
            checkpoint = nested
            break
    state = {str(key): value for key, value in checkpoint.items()}
    for prefix in _PREFIXES:
        if state and all(key.startswith(prefix) for key in state):
            state = {key[len(prefix):]: value for key, value in state.items()}
    return state


@lru_cache(maxsize=1)
def _expected_shapes() -> dict[str, torch.Size]:
    """Key → shape of SyncNet's state dict, from a weightless (meta-device) instance."""
    return module_shapes(SyncNet)


# --- Scoring a clip ----------------------------------------------------------------------------

def syncnet_embeddings(model: SyncNet, crops_bgr: np.ndarray, audio: np.ndarray, *,
                       batch_size: int = DEFAULT_BATCH_SIZE, sample_rate: int = SAMPLE_RATE,
                       fps: float = FPS, progress: Callable[[], None] = lambda: None) -> tuple[np.ndarray, np.ndarray]:
    """Lip and audio embeddings, each (N, 1024) float32, of the N windows the reference scores.

    ``crops_bgr``: (T, 224, 224, 3) uint8 BGR SyncNet crops at 25 fps
    (:func:`~pseudo3d.qa.syncnet_scoring.crop_for_syncnet`); ``audio``: (n,) float32 mono in
    [-1, 1] at 16 kHz, sample 0 at the first frame. ``N = min(T, n // 640) - 5`` (0 for a clip
    too short; see :func:`~pseudo3d.qa.syncnet_scoring.n_sync_windows`). Runs in
    ``batch_size`` windows per pass on the model's device (only the frames of one batch are
    there at a time), in IEEE float32 (:func:`~pseudo3d.reconstruction.device.inference_context`);
    ``progress`` is called after each batch.

    Raises ValueError for crops of another shape or dtype, a frame rate other than 25, a sample
    rate other than 16 kHz, or a batch size below 1.
    """
    if not isinstance(crops_bgr, np.ndarray) or crops_bgr.dtype != np.uint8 or crops_bgr.ndim != 4 \
            or crops_bgr.shape[1:] != (CROP_SIZE, CROP_SIZE, 3):
        described = (f"{crops_bgr.dtype} array of shape {crops_bgr.shape}" if isinstance(crops_bgr, np.ndarray)
                     else type(crops_bgr).__name__)
        raise ValueError(f"crops_bgr must be a uint8 array of shape (T, {CROP_SIZE}, {CROP_SIZE}, 3), "
                         f"got a {described}")
    if abs(fps - FPS) > 1e-6:
        raise ValueError(f"SyncNet needs {FPS:g} fps video, got {fps:g} fps")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    mfcc = syncnet_mfcc(audio, sample_rate)
    n_windows = n_sync_windows(len(crops_bgr), len(audio))
    empty = np.zeros((0, EMBEDDING_SIZE), np.float32)
    if n_windows == 0:
        return empty, empty.copy()
    device = next(model.parameters()).device
    lip, sound = [], []
    with inference_context(device):  # IEEE float32 (no TF32 on CUDA), deterministic cuDNN algorithms
        # (13, M) → (K, 1, 13, 20): window i holds MFCC steps 4i .. 4i+19.
        mfcc_windows = torch.from_numpy(mfcc).unfold(1, WINDOW_MFCC, MFCC_PER_FRAME).permute(1, 0, 2).unsqueeze(1)
        for start in range(0, n_windows, batch_size):
            stop = min(start + batch_size, n_windows)
            frames = host_tensor(crops_bgr[start:stop + WINDOW_FRAMES - 1]).to(device)
            # (F, H, W, C) → (C, F, H, W) → windows of 5 frames, step 1 → (B, C, 5, H, W)
            video = frames.permute(3, 0, 1, 2).float().unfold(1, WINDOW_FRAMES, 1).permute(1, 0, 4, 2, 3)
            lip.append(model.forward_lip(video.contiguous()).float().cpu())
            sound.append(model.forward_aud(mfcc_windows[start:stop].to(device)).float().cpu())
            progress()
    return torch.cat(lip).numpy(), torch.cat(sound).numpy()


def syncnet_scores(model: SyncNet, crops_bgr: np.ndarray, audio: np.ndarray, *,
                   batch_size: int = DEFAULT_BATCH_SIZE, vshift: int = DEFAULT_VSHIFT,
                   sample_rate: int = SAMPLE_RATE, fps: float = FPS,
                   progress: Callable[[], None] = lambda: None) -> dict[str, float]:
    """SyncNet's figures for one clip, as the reference's ``evaluate`` computes them:

    * ``lse_d``: the smallest mean lip-audio embedding distance over offsets within ±``vshift``
      frames (LSE-D; lower is better synchronised);
    * ``lse_c``: the median of those mean distances minus the smallest (LSE-C; higher is more
      confident; near 0 for audio unrelated to the face);
    * ``syncnet_offset_frames``: the offset of the smallest, in 25 fps frames, **positive when
      the audio lags the picture** (as ``av_offset_frames``); the reference prints the negative
      of this as its "AV offset".

    All NaN when the clip is too short for one window (fewer than 6 frames, or under 6 frames'
    worth of audio). Inputs as :func:`syncnet_embeddings` (which raises ValueError for bad
    ones); ``vshift`` must be >= 0.
    """
    if vshift < 0:
        raise ValueError(f"vshift must be >= 0, got {vshift}")
    lip, sound = syncnet_embeddings(model, crops_bgr, audio, batch_size=batch_size,
                                    sample_rate=sample_rate, fps=fps, progress=progress)
    return sync_figures(offset_distances(lip, sound, vshift), vshift)
