"""A synthetic DECA checkpoint: the file format of ``deca_model.tar``, with random weights.

Tests and demos need a DECA checkpoint without the licensed one. This writes the same layout,
``{"E_flame": <coarse encoder state dict>, "E_detail": <placeholder>}`` saved by ``torch.save``,
with random weights shaped so the codes look like DECA's, not like noise:

* the backbone's batch-norm statistics are calibrated on smooth random images (a train-mode
  pass), so features stay O(1) through the 16 residual blocks instead of growing with depth;
* the last Linear layer is rescaled per output and its bias set so that, over those images,
  each code has the mean and spread in :data:`SYNTHETIC_CODE_STATS`.

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

CALIBRATION_IMAGES = 16
"""Images in the calibration batch (batch-norm statistics and code scales)."""


def write_synthetic_deca_checkpoint(path: str | Path, seed: int = 0) -> Path:
    """Write a DECA-layout checkpoint with random weights to ``path`` and return it.

    The same ``seed`` gives the same weights on the same machine and torch version (the
    calibration runs one float32 forward pass on the CPU). The global RNG state is untouched.
    """
    path = Path(path)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        encoder = DecaEncoder()
        images = _smooth_random_images(CALIBRATION_IMAGES)
        _calibrate_batch_norm(encoder, images)
        _scale_code_head(encoder, images)
        detail_placeholder = {"layers.2.weight": torch.zeros(128, 1024), "layers.2.bias": torch.zeros(128)}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"E_flame": encoder.state_dict(), "E_detail": detail_placeholder}, path)
    return path


def _smooth_random_images(n: int) -> torch.Tensor:
    """(n, 3, 224, 224) in [0, 1]: 8×8 random colour fields upsampled bilinearly, image-like
    (smooth, correlated neighbours) rather than per-pixel noise."""
    coarse = torch.rand(n, 3, 8, 8)
    return F.interpolate(coarse, size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", align_corners=False)


@torch.no_grad()
def _calibrate_batch_norm(encoder: DecaEncoder, images: torch.Tensor) -> None:
    """Set every batch norm's running statistics to the batch statistics of ``images``."""
    for module in encoder.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None  # cumulative average: one pass gives exactly the batch stats
    encoder.train()
    encoder.encoder(images)
    encoder.eval()
    for module in encoder.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = 0.1  # PyTorch's default, as in a freshly built encoder


@torch.no_grad()
def _scale_code_head(encoder: DecaEncoder, images: torch.Tensor) -> None:
    """Rescale the last Linear layer so each code has its :data:`SYNTHETIC_CODE_STATS` mean and
    standard deviation over ``images``."""
    mean = torch.empty(N_CODES)
    std = torch.empty(N_CODES)
    for name, part in CODE_LAYOUT.items():
        target_mean, target_std = SYNTHETIC_CODE_STATS[name]
        count = part.stop - part.start  # a one-value target broadcasts over the code's entries
        mean[part] = torch.tensor(target_mean).expand(count)
        std[part] = torch.tensor(target_std).expand(count)
    last = encoder.layers[2]
    raw = encoder.raw_codes(images)
    spread = raw.std(dim=0).clamp_min(1e-6)
    last.weight.mul_((std / spread)[:, None])
    last.bias.mul_(std / spread)
    raw = encoder.raw_codes(images)
    last.bias.add_(mean - raw.mean(dim=0))
