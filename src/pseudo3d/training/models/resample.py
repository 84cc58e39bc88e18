"""Bringing feature sequences to the motion frame rate, and receptive-field arithmetic.

Pure tensor functions. Time convention everywhere: element ``j`` of a sequence at ``rate`` per
second stands for time ``j / rate`` seconds from the start of the audio (log-mel frames are
centred, see :mod:`pseudo3d.training.audio`, and every conv here is centred or strides from
element 0), and motion frame ``k`` at ``fps`` stands for time ``k / fps``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn


def frame_positions(n_frames: int, fps: float, src_rate: float) -> torch.Tensor:
    """Where motion frames ``0 .. n_frames - 1`` fall on a source sequence, in (fractional)
    source elements: ``k * src_rate / fps``. Returns ``(n_frames,)`` float64."""
    return torch.arange(n_frames, dtype=torch.float64) * (src_rate / fps)


def resample_to_frames(x: torch.Tensor, src_rate: float, n_frames: int, fps: float) -> torch.Tensor:
    """Sample a sequence at the motion frame instants ``k / fps``.

    Downsampling (``fps < src_rate``) first smooths the source with a symmetric triangular
    (Bartlett) filter reaching one motion frame either side, which suppresses what the motion
    rate cannot carry; then every output is the linear interpolation of the (smoothed) source at
    its instant. Both steps are symmetric, so a sequence linear in time reads exactly ``k / fps``
    (no lag). Near the ends the filter renormalises over the taps inside the sequence, and
    instants past the end hold the last element.

    Args:
        x: ``(B, C, T)`` sequence at ``src_rate`` elements per second, ``T >= 1``.
        src_rate: source elements per second.
        n_frames: output frames.
        fps: motion frames per second.

    Returns:
        ``(B, C, n_frames)`` in the dtype of ``x``.
    """
    length = x.shape[-1]
    if length < 1:
        raise ValueError("cannot resample an empty sequence")
    smoothed = bartlett_smooth(x, src_rate / fps)
    positions = frame_positions(n_frames, fps, src_rate).clamp(max=length - 1)
    left = torch.floor(positions).long().clamp(max=length - 1)
    right = (left + 1).clamp(max=length - 1)
    fraction = (positions - left).to(device=x.device, dtype=x.dtype)
    left, right = left.to(x.device), right.to(x.device)
    return smoothed[..., left] * (1 - fraction) + smoothed[..., right] * fraction


def bartlett_smooth(x: torch.Tensor, half_width: float) -> torch.Tensor:
    """Centred triangular smoothing of ``(B, C, T)`` along T: weights ``1 - |j| / half_width``
    for integer offsets ``|j| < half_width`` (elements), renormalised over the taps inside the
    sequence. ``half_width <= 1`` returns ``x`` unchanged."""
    reach = math.ceil(half_width) - 1
    if reach < 1:
        return x
    offsets = torch.arange(-reach, reach + 1, dtype=torch.float64)
    kernel = (1.0 - offsets.abs() / half_width).to(device=x.device, dtype=x.dtype)[None, None]
    batch, channels, length = x.shape
    flat = x.reshape(batch * channels, 1, length)
    total = nn.functional.conv1d(flat, kernel, padding=reach)
    weight = nn.functional.conv1d(torch.ones_like(flat[:1]), kernel, padding=reach)
    return (total / weight).reshape(batch, channels, length)


def conv_receptive_field(kernels: Sequence[int], dilations: Sequence[int],
                         strides: Sequence[int]) -> int:
    """Input elements seen by one output of a stack of 1-D convs.

    Args:
        kernels, dilations, strides: per layer, first layer first (equal lengths).

    Returns:
        The receptive field in input elements.
    """
    field, jump = 1, 1
    for kernel, dilation, stride in zip(kernels, dilations, strides, strict=True):
        field += (kernel - 1) * dilation * jump
        jump *= stride
    return field


def frames_to_samples(n_feature_frames: int, hop_length: int, n_fft: int) -> int:
    """Audio samples under ``n_feature_frames`` consecutive STFT frames."""
    return (n_feature_frames - 1) * hop_length + n_fft
