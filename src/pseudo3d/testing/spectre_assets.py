"""A synthetic SPECTRE checkpoint: the file format of ``spectre_model.tar``, with random weights.

SPECTRE's trainer saves ``{"E_flame": ..., "E_expression": ..., "opt": ..., "global_step": ...}``
(:mod:`pseudo3d.reconstruction.spectre.checkpoint` also reads the encoders nested under
``state_dict`` and as flat ``deca.E_*.`` keys; ``layout`` writes each). ``E_flame`` is the
synthetic DECA encoder (:func:`pseudo3d.testing.deca_assets.synthetic_deca_encoder`);
``E_expression`` has random weights, its batch norms calibrated on the same images and its last
layer scaled so its residuals are small beside DECA's codes (expression spread
:data:`RESIDUAL_STD`, jaw opening about :data:`JAW_MEAN` radians), as a trained one's are. The
weights carry no knowledge of faces.
"""

from __future__ import annotations

from pathlib import Path

import torch

from pseudo3d.reconstruction.spectre.encoder import N_EXPRESSION, SpectreEncoder
from pseudo3d.testing.deca_assets import calibrate_batch_norm, calibration_images, synthetic_deca_encoder

LAYOUTS = ("trainer", "state_dict", "flat")
"""How :func:`write_synthetic_spectre_checkpoint` stores the encoders: as SPECTRE's trainer saves
them, nested under ``state_dict``, or as flat ``deca.E_flame.`` / ``deca.E_expression.`` keys."""
RESIDUAL_STD = 0.1
"""Spread of the synthetic expression residuals over the calibration images (units of FLAME's std)."""
JAW_MEAN = 0.02
"""Mean of the synthetic jaw-opening residual (x, radians; y and z spread 0.002)."""


def write_synthetic_spectre_checkpoint(path: str | Path, seed: int = 0, layout: str = "trainer") -> Path:
    """Write a SPECTRE-layout checkpoint with random weights (:func:`synthetic_spectre_encoder`) to
    ``path`` and return it; the same ``seed`` gives the same weights on the same machine and torch
    version (a few seconds on a CPU); the global RNG state is untouched."""
    return save_spectre_checkpoint(synthetic_spectre_encoder(seed), path, layout)


def save_spectre_checkpoint(encoder: SpectreEncoder, path: str | Path, layout: str = "trainer") -> Path:
    """Save ``encoder``'s weights to ``path`` in ``layout`` (:data:`LAYOUTS`) and return the path.
    Raises ValueError for another layout."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    path = Path(path)
    states = {"E_flame": encoder.E_flame.state_dict(), "E_expression": encoder.E_expression.state_dict()}
    if layout == "trainer":
        content: dict = {**states, "opt": {"state": {}, "param_groups": [{"lr": 5e-5, "params": []}]},
                         "global_step": 0, "batch_size": 1}
    elif layout == "state_dict":
        content = {"state_dict": states}
    else:
        content = {f"deca.{name}.{key}": value for name, state in states.items() for key, value in state.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(content, path)
    return path


@torch.no_grad()
def synthetic_spectre_encoder(seed: int = 0) -> SpectreEncoder:
    """The encoders :func:`write_synthetic_spectre_checkpoint` saves, in eval mode."""
    encoder = SpectreEncoder()
    encoder.E_flame = synthetic_deca_encoder(seed)
    expression = encoder.E_expression
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 1)
        for module in expression.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm | torch.nn.Conv1d | torch.nn.Linear):
                module.reset_parameters()
        features = calibrate_batch_norm(expression.encoder, calibration_images())
        sequence = features.T[None]  # the calibration images as one sequence (1, 1280, N)
        hidden = calibrate_batch_norm(expression.temporal, sequence)[0].T
        last = expression.layers[0]
        assert isinstance(last, torch.nn.Linear)
        raw = last(hidden)
        target_std = torch.full((raw.shape[1],), RESIDUAL_STD)
        target_std[N_EXPRESSION:] = torch.tensor([0.01, 0.002, 0.002])
        target_mean = torch.zeros(raw.shape[1])
        target_mean[N_EXPRESSION] = JAW_MEAN
        gain = target_std / raw.std(dim=0).clamp_min(1e-6)
        last.weight.mul_(gain[:, None])
        last.bias.copy_(target_mean - gain * (raw.mean(dim=0) - last.bias))
    return encoder.eval()
