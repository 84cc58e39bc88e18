"""A synthetic DECA checkpoint: the file format of ``deca_model.tar``, with random weights.

Tests and demos need a DECA checkpoint without the licensed one. This writes the same layout,
``{"E_flame": <coarse encoder state dict>, "E_detail": <placeholder>}`` saved by ``torch.save``,
with random weights shaped so the codes look like DECA's, not like noise:

* the backbone's batch-norm statistics are calibrated on a mix of random images (smooth colour
  fields, noise, flat colours; one train-mode pass), so features stay O(1) through the 16
  residual blocks instead of growing with depth;
* the last Linear layer is rescaled per output and its bias set so that, over those images,
  each code has the mean and spread in :data:`SYNTHETIC_CODE_STATS`. The images are far more
  varied than face crops, so codes of real crops stay near the means, within a few spreads.

The weights carry no knowledge of faces: codes vary with the image but mean nothing.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from pseudo3d.reconstruction.deca.codes import CODE_LAYOUT, N_CODES
from pseudo3d.reconstruction.deca.encoder import IMAGE_SIZE, DecaEncoder

SYNTHETIC_CODE_STATS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    # name: (mean per entry, standard deviation per entry); one value applies to every entry.
    "shape": ((0.0,), (0.5,)),                       # FLAME shape, units of the model's std
    "tex": ((0.0,), (0.5,)),
    "exp": ((0.0,), (0.3,)),                         # FLAME expression, units of std
    "pose": ((0.0, 0.0, 0.0, 0.05, 0.0, 0.0),        # radians: global rotation ~3°, jaw
             (0.05, 0.05, 0.05, 0.03, 0.005, 0.005)),  # slightly open about x, little else
    "cam": ((8.0, 0.0, 0.0), (0.5, 0.02, 0.02)),     # scale ~ 8 (a ~0.18 m head spans most of
                                                     # the crop), small translation
    "light": ((1.0, 1.0, 1.0) + (0.0,) * 24, (0.1,) * 27),  # SH band 0 (ambient) ~ 1 per RGB
}
"""Target mean and standard deviation of each synthetic code (over calibration images)."""

CALIBRATION_IMAGES = 12
"""Images in the calibration batch (batch-norm statistics and code scales)."""


def write_synthetic_deca_checkpoint(path: str | Path, seed: int = 0) -> Path:
    """Write a DECA-layout checkpoint with random weights to ``path`` and return it.

    The same ``seed`` gives the same weights on the same machine and torch version (the
    calibration runs two float32 forward passes on the CPU, ~2 s). The global RNG state is
    untouched.
    """
    path = Path(path)
    encoder = synthetic_deca_encoder(seed)
    detail_placeholder = {"layers.2.weight": torch.zeros(128, 1024), "layers.2.bias": torch.zeros(128)}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"E_flame": encoder.state_dict(), "E_detail": detail_placeholder}, path)
    return path


def synthetic_deca_encoder(seed: int = 0) -> DecaEncoder:
    """The coarse encoder :func:`write_synthetic_deca_checkpoint` saves (the global RNG state is
    untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        encoder = DecaEncoder()
        features = calibrate_batch_norm(encoder.encoder, calibration_images())
        _scale_code_head(encoder, features)
    return encoder.eval()


def calibration_images(n: int = CALIBRATION_IMAGES) -> torch.Tensor:
    """(n, 3, 224, 224) in [0, 1], the images synthetic encoders are calibrated on: a mix of
    kinds so that real crops fall inside their range: smooth random colour fields (8×8
    upsampled), the same with fine noise, per-pixel noise, and flat colours, in turn."""
    size = (IMAGE_SIZE, IMAGE_SIZE)
    smooth = F.interpolate(torch.rand(n, 3, 8, 8), size=size, mode="bilinear", align_corners=False)
    noise = torch.rand(n, 3, *size)
    flat = torch.rand(n, 3, 1, 1).expand(n, 3, *size)
    kinds = (smooth, (0.8 * smooth + 0.2 * noise), noise, flat)
    return torch.stack([kinds[i % len(kinds)][i] for i in range(n)])


@torch.no_grad()
def calibrate_batch_norm(backbone: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Set every batch norm's running statistics in ``backbone`` to the batch statistics of
    ``images`` (one train-mode pass), and return its eval-mode output for ``images``."""
    batch_norms = [module for module in backbone.modules() if isinstance(module, torch.nn.modules.batchnorm._BatchNorm)]
    for module in batch_norms:
        module.reset_running_stats()
        module.momentum = None  # cumulative average: one pass gives exactly the batch statistics
    backbone.train()
    backbone(images)
    backbone.eval()
    for module in batch_norms:
        module.momentum = 0.1  # PyTorch's default, as in a freshly built encoder
    return backbone(images)


@torch.no_grad()
def _scale_code_head(encoder: DecaEncoder, features: torch.Tensor) -> None:
    """Rescale the last Linear layer so each code has its :data:`SYNTHETIC_CODE_STATS` mean and
    standard deviation over the calibration images, given their features (N, 2048)."""
    target_mean = torch.empty(N_CODES)
    target_std = torch.empty(N_CODES)
    for name, part in CODE_LAYOUT.items():
        mean, std = SYNTHETIC_CODE_STATS[name]
        count = part.stop - part.start  # a one-value target broadcasts over the code's entries
        target_mean[part] = torch.tensor(mean).expand(count)
        target_std[part] = torch.tensor(std).expand(count)
    raw = encoder.layers(features)
    gain = target_std / raw.std(dim=0).clamp_min(1e-6)
    last = encoder.layers[2]
    assert isinstance(last, torch.nn.Linear)  # DECA's code head ends in a Linear layer
    last.weight.mul_(gain[:, None])
    last.bias.copy_(target_mean - gain * (raw.mean(dim=0) - last.bias))
