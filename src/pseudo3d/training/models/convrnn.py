"""Speech2Blend-style convolutional-recurrent model: a conv stack over the log-mel at 100 Hz,
resampled to the motion rate, then a bidirectional GRU and the head.

The conv stack (the encoder) is a kernel-3 entry conv and ``conv_layers - 1`` kernel-3 residual
convs: ``2 * conv_layers + 1`` frames, 85 ms of audio with the default three layers. The GRU
sees the whole clip in both directions.
"""

from __future__ import annotations

import torch
from torch import nn

from pseudo3d.training.models.base import FEATURE_RATE, SpeechToMotion
from pseudo3d.training.models.blocks import ConvStack
from pseudo3d.training.models.config import ModelConfig
from pseudo3d.training.models.resample import conv_receptive_field, frames_to_samples, resample_to_frames


class ConvEncoder(nn.Module):
    """``(B, n_mels, T)`` normalised log-mel at 100 Hz, ``n_frames``, ``fps`` →
    ``(B, n_frames, hidden)``."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.convs = ConvStack(config.n_mels, config.hidden, stride=1, dilations=(1,) * (config.conv_layers - 1),
                               entry_kernel=3, dropout=config.dropout)

    def forward(self, features: torch.Tensor, n_frames: int, fps: float) -> torch.Tensor:
        return resample_to_frames(self.convs(features), FEATURE_RATE, n_frames, fps).transpose(1, 2)

    def receptive_field_s(self) -> float:
        """Seconds of audio under one conv output, before resampling."""
        frames = conv_receptive_field(self.convs.kernels, self.convs.dilations, self.convs.strides)
        return frames_to_samples(frames, self.config.hop_length, self.config.n_fft) / self.config.sample_rate


class GRUDecoder(nn.Module):
    """A bidirectional GRU (``hidden / 2`` per direction) with a residual connection and a layer
    norm: ``(B, T, hidden), fps → (B, T, hidden)``. ``fps`` is unused; the signature is the
    decoder interface."""

    def __init__(self, hidden: int, layers: int, dropout: float):
        super().__init__()
        self.gru = nn.GRU(hidden, hidden // 2, num_layers=layers, batch_first=True, bidirectional=True,
                          dropout=dropout if layers > 1 else 0.0)
        self.norm = nn.LayerNorm(hidden)

    def forward(self, x: torch.Tensor, fps: float) -> torch.Tensor:
        return self.norm(x + self.gru(x)[0])


class ConvRNNModel(SpeechToMotion):
    """Conv stack → bidirectional GRU → head."""

    def __init__(self, config: ModelConfig):
        super().__init__(config, ConvEncoder(config), GRUDecoder(config.hidden, config.decoder_layers, config.dropout))
