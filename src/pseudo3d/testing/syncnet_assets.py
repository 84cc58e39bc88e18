"""A synthetic SyncNet checkpoint: the file layout of ``syncnet_v2.model``, with random weights.

Tests and demos need SyncNet weights without VGG's. This writes what the released file is, a
``torch.save`` of the network's state dict (keys ``netcnnlip.0.weight`` ... ``netfcaud.3.bias``,
batch-norm running statistics included, same shapes), with weights drawn from a seed:

* convolution and linear weights: PyTorch's default initialisation;
* batch-norm scales and shifts: uniform in [0.5, 1.5] and [-0.1, 0.1], so that every tensor of
  the file differs from its neighbours (a key loaded into the wrong layer changes the output);
* batch-norm running statistics: the batch statistics of calibration inputs shaped like the real
  ones (one train-mode pass): 224 × 224 BGR 0..255 windows of smooth random colour fields with
  noise, and the MFCCs of synthetic speech and noise at several loudnesses, so activations stay
  O(1) through the layers as they do with trained statistics;
* the last layer of each stream: rescaled so that embeddings of the calibration inputs have
  entries of mean 0 and spread :data:`EMBEDDING_STD` (lip-audio distances of about 9 there).

The weights know nothing of faces or speech: embeddings vary with the input but their distances
mean nothing. On real face crops (three VoxCeleb2 clips, seed 0) LSE-D comes out near 60, far
above the real model's usual 6 to 10, LSE-C below 1, and the offset at an arbitrary place, often
the ±vshift edge.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy.signal import resample_poly

from pseudo3d.qa.syncnet import SyncNet
from pseudo3d.qa.syncnet_scoring import (CROP_SIZE, MFCC_PER_FRAME, SAMPLE_RATE, WINDOW_FRAMES, WINDOW_MFCC,
                                         syncnet_mfcc)
from pseudo3d.synth.speech import SAMPLE_RATE as SPEECH_RATE
from pseudo3d.synth.speech import plan_speech, synthesize_speech

CALIBRATION_WINDOWS = 6
"""Lip windows in the calibration batch (with the audio windows, about 3 s of CPU)."""
CALIBRATION_AUDIO_S = 2.0
"""Seconds of each calibration audio kind."""
CALIBRATION_MFCC_STRIDE = 4
"""Every this many scoring windows of the calibration audio are used (the audio stream is
costly per window; 12 of each kind suffice)."""
EMBEDDING_STD = 0.2
"""Standard deviation of each embedding entry over the calibration inputs: lip and audio
embeddings of those inputs are then about 0.2·√2048 ≈ 9 apart."""


def synthetic_syncnet_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """A SyncNet state dict with random weights and calibrated batch-norm statistics.

    The same ``seed`` gives the same tensors on the same machine and torch version; the global
    RNG state is untouched.
    """
    rng = np.random.default_rng(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = SyncNet()
        batch_norms = [module for module in model.modules()
                       if isinstance(module, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d, torch.nn.BatchNorm3d))]
        with torch.no_grad():
            for module in batch_norms:
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.1, 0.1)
        lips, mfccs = _lip_windows(CALIBRATION_WINDOWS), _mfcc_windows(rng)
        _calibrate(model, batch_norms, lips, mfccs)
        with torch.no_grad():
            _scale_head(model.netfclip, model.forward_lip(lips))
            _scale_head(model.netfcaud, model.forward_aud(mfccs))
    return {key: value.detach().clone() for key, value in model.state_dict().items()}


def write_synthetic_syncnet_checkpoint(path: str | Path, seed: int = 0) -> Path:
    """Write a ``syncnet_v2.model``-layout file (``torch.save`` of the state dict) with random
    weights (:func:`synthetic_syncnet_state_dict`) to ``path`` and return it."""
    path = Path(path)
    state = synthetic_syncnet_state_dict(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path


@torch.no_grad()
def _calibrate(model: SyncNet, batch_norms: Sequence[torch.nn.modules.batchnorm._BatchNorm], lips: torch.Tensor,
               mfccs: torch.Tensor) -> None:
    """Set every batch norm's running statistics to the batch statistics of the calibration
    inputs (one train-mode pass with a cumulative average)."""
    for module in batch_norms:
        module.reset_running_stats()
        module.momentum = None  # cumulative average: one pass gives exactly the batch statistics
    model.train()
    model.forward_lip(lips)
    model.forward_aud(mfccs)
    model.eval()
    for module in batch_norms:
        module.momentum = 0.1  # PyTorch's default, as in a freshly built model


@torch.no_grad()
def _scale_head(head: torch.nn.Sequential, embeddings: torch.Tensor) -> None:
    """Rescale a head's last Linear layer so that, over the calibration inputs whose
    ``embeddings`` (N, 1024) it gave, each output has mean 0 and standard deviation
    :data:`EMBEDDING_STD` (so the two streams' embeddings are on one scale)."""
    last = head[3]
    assert isinstance(last, torch.nn.Linear)  # SyncNet's heads end in a Linear layer
    gain = EMBEDDING_STD / embeddings.std(dim=0).clamp_min(1e-6)
    last.weight.mul_(gain[:, None])
    last.bias.sub_(embeddings.mean(dim=0)).mul_(gain)


def _lip_windows(n: int) -> torch.Tensor:
    """(n, 3, 5, 224, 224) BGR 0..255: per window a smooth random colour field (8 × 8 upsampled)
    that drifts a little from frame to frame, plus fine noise."""
    size = (CROP_SIZE, CROP_SIZE)
    base = torch.rand(n, 3, 1, 8, 8)
    drift = 0.1 * torch.rand(n, 3, WINDOW_FRAMES, 8, 8)
    fields = (0.9 * base + drift).flatten(1, 2)  # (n, 3·5, 8, 8)
    smooth = F.interpolate(fields, size=size, mode="bilinear", align_corners=False).view(n, 3, WINDOW_FRAMES, *size)
    noise = torch.rand(n, 3, WINDOW_FRAMES, *size)
    return (255.0 * (0.85 * smooth + 0.15 * noise)).clamp(0, 255)


def _mfcc_windows(rng: np.random.Generator) -> torch.Tensor:
    """(K, 1, 13, 20) MFCC windows of synthetic speech at three loudnesses and of quiet noise:
    every :data:`CALIBRATION_MFCC_STRIDE`-th scoring window (which start every 4 MFCC steps)."""
    speech = synthesize_speech(plan_speech(rng, CALIBRATION_AUDIO_S), rng)
    speech = resample_poly(speech, SAMPLE_RATE, SPEECH_RATE).astype(np.float32)
    speech /= max(float(np.abs(speech).max()), 1e-6)
    noise = rng.standard_normal(speech.size).astype(np.float32)
    kinds = [0.8 * speech, 0.25 * speech, 0.05 * speech + 0.003 * noise, 0.001 * noise]
    windows = []
    for audio in kinds:
        mfcc = torch.from_numpy(syncnet_mfcc(np.clip(audio, -1.0, 1.0)))
        windows.append(mfcc.unfold(1, WINDOW_MFCC, MFCC_PER_FRAME).permute(1, 0, 2)[::CALIBRATION_MFCC_STRIDE])
    return torch.cat(windows).unsqueeze(1)
