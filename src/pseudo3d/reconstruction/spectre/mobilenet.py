"""MobileNetV2 with the module names of torchvision's ``mobilenet_v2``, the backbone of SPECTRE's
expression encoder.

SPECTRE's checkpoint was saved from torchvision's model (``torch.hub.load('pytorch/vision:v0.8.1',
'mobilenet_v2')``), so its keys are torchvision's: ``features.0.0.weight`` (the stem's conv),
``features.0.1.running_mean`` (its batch norm), ``features.1.conv.0.0.weight`` (a block's first
conv-BN-ReLU6), ``features.2.conv.3.bias`` (a block's last batch norm), ``features.18.0.weight``
(the last 1×1 conv to 1280 channels) and ``classifier.1.weight`` (the ImageNet classifier, unused
by SPECTRE but part of the checkpoint). Renaming a module here breaks loading the official file.

Architecture (Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks", CVPR 2018,
width multiplier 1): a 3×3 stride-2 stem to 32 channels, 17 inverted-residual blocks, a 1×1 conv to
1280 channels; batch norm (eps 1e-5) after every conv, ReLU6 after all but each block's last
(linear) projection. (B, 3, H, W) → (B, 1280, H/32, W/32).
"""

from __future__ import annotations

from torch import nn

FEATURE_SIZE = 1280
"""Channels of the last feature map (the pooled feature vector's length)."""
INVERTED_RESIDUAL_SETTING = (
    # expansion t, output channels c, blocks n, first block's stride s
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
"""The paper's Table 2, as torchvision builds it."""
STEM_CHANNELS = 32
N_CLASSES = 1000


class ConvBNReLU6(nn.Sequential):
    """Conv (no bias, "same" padding) → BatchNorm2d → ReLU6: keys ``0.weight``, ``1.*``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1, groups: int = 1):
        padding = (kernel_size - 1) // 2
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, groups=groups, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU6(inplace=True),
        )


class InvertedResidual(nn.Module):
    """1×1 expansion (none when ``expansion`` is 1) → 3×3 depthwise (carries the stride) → linear
    1×1 projection, plus the input where the shape is unchanged."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, expansion: int):
        super().__init__()
        hidden = round(in_channels * expansion)
        self.residual = stride == 1 and in_channels == out_channels
        layers: list[nn.Module] = [ConvBNReLU6(in_channels, hidden, kernel_size=1)] if expansion != 1 else []
        layers += [
            ConvBNReLU6(hidden, hidden, stride=stride, groups=hidden),
            nn.Conv2d(hidden, out_channels, 1, 1, 0, bias=False),
            nn.BatchNorm2d(out_channels),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv(x) if self.residual else self.conv(x)


class MobileNetV2(nn.Module):
    """``features``: (B, 3, H, W) → (B, 1280, H/32, W/32); ``classifier`` holds the checkpoint's
    ImageNet head (Dropout, Linear(1280, 1000)) and is never run here."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = [ConvBNReLU6(3, STEM_CHANNELS, stride=2)]
        channels = STEM_CHANNELS
        for expansion, out_channels, blocks, stride in INVERTED_RESIDUAL_SETTING:
            for index in range(blocks):
                layers.append(InvertedResidual(channels, out_channels, stride if index == 0 else 1, expansion))
                channels = out_channels
        layers.append(ConvBNReLU6(channels, FEATURE_SIZE, kernel_size=1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(FEATURE_SIZE, N_CLASSES))

    def forward(self, images):
        """(B, 3, H, W) → pooled features (B, 1280)."""
        return self.features(images).mean(dim=(2, 3))
