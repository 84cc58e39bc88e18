"""The output layer: per-frame features to motion values."""

from __future__ import annotations

import torch
from torch import nn

HEAD_INIT_STD = 1e-3
"""Std of the freshly initialised head weights: small enough that the first predictions sit at
the initial output (the normalised mean), not zero so each output starts with its own gradient."""


class MotionHead(nn.Module):
    """``(B, T, hidden) → (B, T, output_dim)``: a linear layer, then the output activation.

    Args:
        hidden: input features per frame.
        output_dim: values per frame.
        activation: ``none`` or ``sigmoid``.
        initial_output: optional ``(output_dim,)`` values the fresh head predicts for any input
            (e.g. mean blendshape weights, in output units). Defaults to 0, or 0.5 under
            ``sigmoid``. Under ``sigmoid`` they must lie strictly inside (0, 1).
    """

    def __init__(self, hidden: int, output_dim: int, activation: str = "none",
                 initial_output: torch.Tensor | None = None):
        super().__init__()
        if activation not in ("none", "sigmoid"):
            raise ValueError(f"activation must be 'none' or 'sigmoid', got {activation!r}")
        self.activation = activation
        self.linear = nn.Linear(hidden, output_dim)
        nn.init.normal_(self.linear.weight, std=HEAD_INIT_STD)
        with torch.no_grad():
            self.linear.bias.copy_(self._initial_bias(output_dim, initial_output))

    @property
    def output_dim(self) -> int:
        return self.linear.out_features

    def _initial_bias(self, output_dim: int, initial_output: torch.Tensor | None) -> torch.Tensor:
        if initial_output is None:
            return torch.zeros(output_dim)
        values = torch.as_tensor(initial_output, dtype=torch.float32).flatten()
        if values.numel() != output_dim:
            raise ValueError(f"initial_output has {values.numel()} values, expected output_dim={output_dim}")
        if self.activation == "sigmoid":
            if not bool(((values > 0) & (values < 1)).all()):
                raise ValueError("initial_output must lie strictly inside (0, 1) under a sigmoid output")
            return torch.logit(values)
        return values

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.linear(x)
        return torch.sigmoid(y) if self.activation == "sigmoid" else y

    def extra_repr(self) -> str:
        return f"activation={self.activation}"
