"""Small conv building blocks over ``(B, C, T)`` sequences, shared by both model kinds.

Every block is centred in time (or, when strided, puts output ``i`` on input ``i * stride``), so
the time convention of :mod:`pseudo3d.training.models.resample` holds through them. None of them
mixes information across time except through its kernel, so receptive fields are exact.
"""

from __future__ import annotations

import torch
from torch import nn

LOG_MEL_MEAN = -10.0
LOG_MEL_STD = 3.0
"""Fixed log-mel normalisation. :class:`~pseudo3d.training.audio.LogMel` reads about -13.8 for
silence and -4 to 0 for loud speech bands; these constants bring that to roughly [-1.3, 3].
Fixed rather than per-utterance statistics so that a frame never depends on distant audio, and
rather than batch norm so that a frozen encoder stays frozen."""


def normalise_log_mel(log_mel: torch.Tensor) -> torch.Tensor:
    """``(B, n_mels, T)`` log-mel → same shape, roughly zero-mean and unit-scale."""
    return (log_mel - LOG_MEL_MEAN) / LOG_MEL_STD


class ChannelNorm(nn.Module):
    """Layer norm over the channels of each time step of a ``(B, C, T)`` sequence."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = nn.LayerNorm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.transpose(1, 2)).transpose(1, 2)


class ResidualConv(nn.Module):
    """``x + conv(gelu(norm(x)))``: a centred, dilated, length-preserving conv block.

    Receptive field ``(kernel - 1) * dilation + 1`` elements. ``(B, C, T) → (B, C, T)``.
    """

    def __init__(self, channels: int, kernel: int = 3, dilation: int = 1, dropout: float = 0.0):
        super().__init__()
        if kernel % 2 != 1:
            raise ValueError(f"kernel must be odd to stay centred, got {kernel}")
        self.norm = ChannelNorm(channels)
        self.conv = nn.Conv1d(channels, channels, kernel, dilation=dilation,
                              padding=(kernel - 1) // 2 * dilation)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.dropout(self.conv(nn.functional.gelu(self.norm(x))))


class StridedConv(nn.Module):
    """Conv with kernel ``2 * stride - 1`` and stride ``stride``, output ``i`` centred on input
    ``i * stride``: ``(B, C_in, T) → (B, C_out, (T - 1) // stride + 1)``, at least one element
    for any ``T >= 1``. ``stride = 1`` is a pointwise projection."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.stride = stride
        self.kernel = 2 * stride - 1
        self.conv = nn.Conv1d(in_channels, out_channels, self.kernel, stride=stride, padding=stride - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class ConvStack(nn.Module):
    """A :class:`StridedConv` then :class:`ResidualConv` blocks with the given dilations, then a
    channel norm: ``(B, C_in, T) → (B, C_out, (T - 1) // stride + 1)``.

    Args:
        in_channels, out_channels: channels in and out.
        stride: downsampling of the entry conv.
        dilations: one residual block per entry.
        block_kernel: kernel (odd) of the residual blocks; 1 makes them pointwise.
        entry_kernel: kernel of the entry conv when ``stride == 1`` (odd); ignored otherwise.
        dropout: inside the residual blocks.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, dilations: tuple[int, ...],
                 block_kernel: int = 3, entry_kernel: int | None = None, dropout: float = 0.0):
        super().__init__()
        if stride == 1 and entry_kernel is not None:
            self.entry: nn.Conv1d | StridedConv = nn.Conv1d(in_channels, out_channels, entry_kernel,
                                                            padding=(entry_kernel - 1) // 2)
            entry_field = entry_kernel
        else:
            self.entry = StridedConv(in_channels, out_channels, stride)
            entry_field = self.entry.kernel
        self.blocks = nn.Sequential(*(ResidualConv(out_channels, block_kernel, d, dropout) for d in dilations))
        self.norm = ChannelNorm(out_channels)
        self.stride = stride
        self.kernels = (entry_field,) + (block_kernel,) * len(dilations)
        self.dilations = (1,) + tuple(dilations)
        self.strides = (stride,) + (1,) * len(dilations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.blocks(self.entry(x)))
