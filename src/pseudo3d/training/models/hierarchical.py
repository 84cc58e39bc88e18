"""Speech2Face3D-style model: a multi-scale hierarchical audio encoder fused at the motion
frame rate, then a local transformer decoder.

Three branches read the normalised log-mel (100 Hz) side by side. With the default settings
(16 kHz audio, 25 ms windows, 10 ms hops) one branch output sees, before resampling:

* **fine** – a kernel-3 conv at 100 Hz, then a pointwise residual block: 3 frames, **45 ms**
  of audio (phoneme transitions);
* **mid** – a stride-2 entry conv (kernel 3) to 50 Hz, then kernel-3 residual convs with
  dilations 1, 2, 4: 31 frames, **325 ms** (syllables, prosody);
* **long** – a stride-8 entry conv (kernel 15) to 12.5 Hz, then kernel-3 residual convs with
  dilations 1, 2, 4, 8: 255 frames, **2.565 s** (phrase-level energy, emotion).

:meth:`HierarchicalEncoder.receptive_fields_s` computes these for any configuration. Each branch
is resampled to the motion instants (:func:`resample_to_frames` widens the reach by at most one
motion frame or one branch step either side, whichever is longer), the three are concatenated
and projected to ``hidden``. The decoder's attention is limited to ``decoder_context_s`` either
side, so the whole model's receptive field is bounded and it runs on clips of any length: with
the defaults at 25 fps an output frame depends on audio within about 3.5 s of its instant (at
initialisation, most of its gradient comes from the nearest 100 ms).
"""

from __future__ import annotations

import torch
from torch import nn

from pseudo3d.training.models.base import FEATURE_RATE, SpeechToMotion
from pseudo3d.training.models.blocks import ConvStack
from pseudo3d.training.models.config import ModelConfig
from pseudo3d.training.models.resample import conv_receptive_field, frames_to_samples, resample_to_frames

BRANCHES = ("fine", "mid", "long")


class HierarchicalEncoder(nn.Module):
    """``(B, n_mels, T)`` normalised log-mel at 100 Hz, ``n_frames``, ``fps`` →
    ``(B, n_frames, hidden)`` fused multi-scale features at the motion rate."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.fine = ConvStack(config.n_mels, config.hidden, stride=1, dilations=(1,), block_kernel=1,
                              entry_kernel=config.fine_kernel, dropout=config.dropout)
        self.mid = ConvStack(config.n_mels, config.hidden, stride=config.mid_stride,
                             dilations=config.mid_dilations, dropout=config.dropout)
        self.long = ConvStack(config.n_mels, config.hidden, stride=config.long_stride,
                              dilations=config.long_dilations, dropout=config.dropout)
        self.fuse = nn.Sequential(nn.Linear(len(BRANCHES) * config.hidden, config.hidden),
                                  nn.GELU(), nn.Dropout(config.dropout), nn.LayerNorm(config.hidden))

    def branch_outputs(self, features: torch.Tensor) -> dict[str, tuple[torch.Tensor, float]]:
        """Each branch's ``(B, hidden, T_branch)`` output and its rate in elements per second."""
        outputs = {}
        for name in BRANCHES:
            stack: ConvStack = getattr(self, name)
            outputs[name] = (stack(features), FEATURE_RATE / stack.stride)
        return outputs

    def forward(self, features: torch.Tensor, n_frames: int, fps: float) -> torch.Tensor:
        parts = [resample_to_frames(out, rate, n_frames, fps)
                 for out, rate in self.branch_outputs(features).values()]
        return self.fuse(torch.cat(parts, dim=1).transpose(1, 2))

    def receptive_fields_s(self) -> dict[str, float]:
        """Seconds of audio under one output element of each branch, before resampling."""
        fields = {}
        for name in BRANCHES:
            stack: ConvStack = getattr(self, name)
            frames = conv_receptive_field(stack.kernels, stack.dilations, stack.strides)
            samples = frames_to_samples(frames, self.config.hop_length, self.config.n_fft)
            fields[name] = samples / self.config.sample_rate
        return fields


class LocalTransformerDecoder(nn.Module):
    """Pre-norm transformer layers at the motion rate, each a depthwise conv (kernel 5, which
    gives the attention relative position), self-attention over frames within
    ``context_s`` seconds, and a feed-forward block. ``(B, T, hidden), fps → (B, T, hidden)``."""

    def __init__(self, hidden: int, layers: int, heads: int, context_s: float, dropout: float):
        super().__init__()
        self.context_s = context_s
        self.layers = nn.ModuleList(_DecoderLayer(hidden, heads, dropout) for _ in range(layers))
        self.norm = nn.LayerNorm(hidden)

    def context_frames(self, fps: float) -> int:
        """How many frames either side a frame attends to."""
        return max(1, round(self.context_s * fps))

    def forward(self, x: torch.Tensor, fps: float) -> torch.Tensor:
        index = torch.arange(x.shape[1], device=x.device)
        blocked = (index[:, None] - index[None, :]).abs() > self.context_frames(fps)
        for layer in self.layers:
            x = layer(x, blocked)
        return self.norm(x)


class _DecoderLayer(nn.Module):
    def __init__(self, hidden: int, heads: int, dropout: float):
        super().__init__()
        self.conv_norm = nn.LayerNorm(hidden)
        self.conv = nn.Conv1d(hidden, hidden, 5, padding=2, groups=hidden)
        self.attention_norm = nn.LayerNorm(hidden)
        self.attention = nn.MultiheadAttention(hidden, heads, dropout=dropout, batch_first=True)
        self.ffn_norm = nn.LayerNorm(hidden)
        self.ffn = nn.Sequential(nn.Linear(hidden, 2 * hidden), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(2 * hidden, hidden))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, blocked: torch.Tensor) -> torch.Tensor:
        x = x + self.dropout(self.conv(self.conv_norm(x).transpose(1, 2)).transpose(1, 2))
        y = self.attention_norm(x)
        x = x + self.dropout(self.attention(y, y, y, attn_mask=blocked, need_weights=False)[0])
        return x + self.dropout(self.ffn(self.ffn_norm(x)))


class HierarchicalModel(SpeechToMotion):
    """Multi-scale encoder → local transformer decoder → head."""

    def __init__(self, config: ModelConfig):
        decoder = LocalTransformerDecoder(config.hidden, config.decoder_layers, config.decoder_heads,
                                          config.decoder_context_s, config.dropout)
        super().__init__(config, HierarchicalEncoder(config), decoder)
