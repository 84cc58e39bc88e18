"""ResNet-50 feature extractor with the module names of DECA's coarse encoder backbone.

The layout is the standard bottleneck ResNet-50 (blocks [3, 4, 6, 3], 7×7 stride-2 stem,
3×3 stride-2 max-pool, global average pool), without the ImageNet classifier. Module names
are part of the checkpoint format: inside DECA's ``E_flame`` state dict this backbone sits
under ``encoder.`` and its parameters are named ``conv1.weight``, ``bn1.running_mean``,
``layer1.0.conv2.weight``, ``layer1.0.downsample.0.weight`` (1×1 projection conv),
``layer1.0.downsample.1.bias`` (its batch norm), and so on. Renaming a module here breaks
loading the official ``deca_model.tar``.
"""

from __future__ import annotations

import torch
from torch import nn

RESNET50_BLOCKS = (3, 4, 6, 3)
"""Bottleneck blocks per stage."""
FEATURE_SIZE = 2048
"""Length of the pooled feature vector (512 bottleneck width × expansion 4)."""


class Bottleneck(nn.Module):
    """1×1 reduce → 3×3 (carries the stride) → 1×1 expand ×4, plus the identity or a projected
    shortcut; ReLU after the sum. (B, in_channels, H, W) → (B, 4·width, H/stride, W/stride)."""

    expansion = 4

    def __init__(self, in_channels: int, width: int, stride: int = 1):
        super().__init__()
        out_channels = width * self.expansion
        self.conv1 = nn.Conv2d(in_channels, width, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_channels, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        # DECA's checkpoint stores the projection as ``downsample.0`` (conv) and ``downsample.1``
        # (batch norm); blocks whose shape does not change have no ``downsample`` at all.
        self.downsample: nn.Module | None = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + shortcut)


class ResNet50(nn.Module):
    """Images (B, 3, H, W) → pooled features (B, 2048); H = W = 224 gives a 7×7 final map.

    The input is whatever the weights were trained on (DECA: RGB in [0, 1], no mean/std
    normalisation); this module does not rescale it.
    """

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        channels = 64
        stages = []
        for index, (width, n_blocks) in enumerate(zip((64, 128, 256, 512), RESNET50_BLOCKS)):
            stride = 1 if index == 0 else 2
            blocks = [Bottleneck(channels, width, stride)]
            channels = width * Bottleneck.expansion
            blocks += [Bottleneck(channels, width) for _ in range(n_blocks - 1)]
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self._init_weights()

    def _init_weights(self) -> None:
        """He-normal convolutions (fan-out), unit-scale batch norms: DECA's initialisation, so a
        randomly initialised network (the synthetic checkpoint) has sane activations."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(images))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)
