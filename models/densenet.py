"""DenseNet (Huang et al., CVPR 2017) as the official AugMix code builds it for ``-m densenet``: DenseNet-40, k = 12.

Not DenseNet-BC: no bottleneck layers and no compression (the official ``densenet()`` passes reduction 1 and
bottleneck False). Module and parameter names follow google-research/augmix
``third_party/ResNeXt_DenseNet/models/densenet.py``; see docs/augmix.md §8.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.wrn import check_droprate, check_positive_int, flatten_pooled, init_official_cifar


class SingleLayer(nn.Module):
    """BN-ReLU-conv3x3 producing ``growth_rate`` channels, concatenated to its input: (B, C) -> (B, C + k)."""

    def __init__(self, in_channels: int, growth_rate: int, droprate: float = 0.0):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, growth_rate, 3, padding=1, bias=False)
        self.droprate = droprate

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1(F.relu(self.bn1(x)))
        if self.droprate > 0:  # DenseNet paper's dropout after each conv; the official model uses none
            out = F.dropout(out, p=self.droprate, training=self.training)
        return torch.cat((x, out), 1)


class Transition(nn.Module):
    """BN-ReLU-conv1x1 (same width: no compression) then 2x2 average pooling."""

    def __init__(self, in_channels: int, out_channels: int, droprate: float = 0.0):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.droprate = droprate

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1(F.relu(self.bn1(x)))
        if self.droprate > 0:
            out = F.dropout(out, p=self.droprate, training=self.training)
        return F.avg_pool2d(out, 2)


class DenseNet(nn.Module):
    """Non-BC DenseNet for 32x32 inputs: conv3x3 3->2k, three dense blocks of n layers with two transitions,
    BN-ReLU, 8x8 average pool, linear.

    Args:
        depth: 3n + 4 (40 -> 12 layers per block).
        growth_rate: k, channels added by every layer (12).
        droprate: dropout after every conv but the stem; 0 (official) disables it.
        num_classes: K.
    """

    def __init__(self, depth: int = 40, growth_rate: int = 12, droprate: float = 0.0, num_classes: int = 10):
        super().__init__()
        if not isinstance(depth, int) or isinstance(depth, bool) or depth < 7 or (depth - 4) % 3:
            raise ValueError(f"densenet40_12: depth must be 3n+4 with n >= 1 layers per dense block (7, 10, ..., 40); "
                             f"got {depth!r}")
        check_positive_int(growth_rate, "densenet40_12: width (growth rate)")
        check_positive_int(num_classes, "densenet40_12: num_classes")
        droprate = check_droprate(droprate, "densenet40_12: droprate")
        n = (depth - 4) // 3
        channels = 2 * growth_rate
        self.conv1 = nn.Conv2d(3, channels, 3, padding=1, bias=False)
        self.dense1 = self._dense_block(channels, growth_rate, n, droprate)
        channels += n * growth_rate
        self.trans1 = Transition(channels, channels, droprate)
        self.dense2 = self._dense_block(channels, growth_rate, n, droprate)
        channels += n * growth_rate
        self.trans2 = Transition(channels, channels, droprate)
        self.dense3 = self._dense_block(channels, growth_rate, n, droprate)
        channels += n * growth_rate
        self.bn1 = nn.BatchNorm2d(channels)
        self.fc = nn.Linear(channels, num_classes)
        init_official_cifar(self)

    @staticmethod
    def _dense_block(channels: int, growth_rate: int, n: int, droprate: float) -> nn.Sequential:
        return nn.Sequential(*[SingleLayer(channels + i * growth_rate, growth_rate, droprate) for i in range(n)])

    def forward(self, images: Tensor) -> Tensor:
        """images: (B, 3, 32, 32) float, normalised, any device -> logits (B, K) float, same device."""
        out = self.trans1(self.dense1(self.conv1(images)))
        out = self.trans2(self.dense2(out))
        out = F.avg_pool2d(F.relu(self.bn1(self.dense3(out))), 8)  # (B, C, 8, 8) -> (B, C, 1, 1)
        # Upstream squeezes every singleton dim here, which breaks a batch of one (docs/augmix.md §9, defect 9).
        return self.fc(flatten_pooled(out, "densenet40_12", "32x32 inputs"))


def densenet40_12(num_classes: int = 10, depth: int = 40, width: int = 12, droprate: float = 0.0) -> DenseNet:
    """DenseNet-40 (k = 12), non-BC (1,059,298 parameters at 10 classes). depth: 3n+4; width: growth rate;
    droprate: after every conv (official: 0)."""
    return DenseNet(depth=depth, growth_rate=width, droprate=droprate, num_classes=num_classes)
