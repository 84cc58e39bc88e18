"""Training losses over normalised motion (pure tensor functions; B batch, T frames, D dims)."""

from __future__ import annotations

import torch
from torch import Tensor


def weighted_mse(prediction: Tensor, target: Tensor, dim_weights: Tensor | None = None) -> Tensor:
    """Mean squared error over B x T x D, each dimension weighted (weights averaged to 1)."""
    squared = (prediction - target) ** 2
    if dim_weights is None:
        return squared.mean()
    weights = dim_weights / dim_weights.mean()
    return (squared * weights).mean()


def velocity_mse(prediction: Tensor, target: Tensor, dim_weights: Tensor | None = None) -> Tensor:
    """The same error on first differences along time (motion, not just pose)."""
    return weighted_mse(prediction.diff(dim=1), target.diff(dim=1), dim_weights)


def motion_loss(prediction: Tensor, target: Tensor, *, velocity_weight: float,
                dim_weights: Tensor | None = None) -> tuple[Tensor, dict[str, float]]:
    """Reconstruction + ``velocity_weight`` × velocity; ``dim_weights`` (D,) emphasise some
    dimensions (the lip vertices' coordinates, for the lip-weighted vertex loss)."""
    reconstruction = weighted_mse(prediction, target, dim_weights)
    velocity = velocity_mse(prediction, target, dim_weights)
    total = reconstruction + velocity_weight * velocity
    return total, {"loss": total.item(), "reconstruction": reconstruction.item(), "velocity": velocity.item()}


def lip_dim_weights(n_vertices: int, lip_vertices, lip_weight: float) -> Tensor:
    """(3·n_vertices,) weights: 1 + ``lip_weight`` on the x, y, z of each lip vertex."""
    weights = torch.ones(n_vertices, 3)
    weights[torch.as_tensor(sorted(lip_vertices), dtype=torch.long)] += lip_weight
    return weights.flatten()
