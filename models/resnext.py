"""ResNeXt-29 (Xie et al., CVPR 2017) as the official AugMix code builds it for ``-m resnext``: 4 groups of width 32.

Module and parameter names follow google-research/augmix ``third_party/ResNeXt_DenseNet/models/resnext.py``; see
docs/augmix.md §8 (the paper's "32x4d" naming is uncertain; the code's cardinality 4, base width 32 is
what the published recipes trained).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from models.wrn import check_positive_int, flatten_pooled, init_official_cifar

EXPANSION = 4  # a bottleneck's output has 4 x planes channels


class ResNeXtBottleneck(nn.Module):
    """Type-C bottleneck: 1x1 reduce to D = cardinality * floor(planes * base_width / 64), BN, ReLU; grouped 3x3
    (carries the stride), BN, ReLU; 1x1 expand to 4 * planes, BN; add the (projected) input; ReLU."""

    def __init__(self, in_planes: int, planes: int, cardinality: int, base_width: int, stride: int = 1,
                 downsample: nn.Module | None = None):
        super().__init__()
        dim = (planes * base_width // 64) * cardinality  # floor(planes * base_width / 64), as upstream
        self.conv_reduce = nn.Conv2d(in_planes, dim, 1, bias=False)
        self.bn_reduce = nn.BatchNorm2d(dim)
        self.conv_conv = nn.Conv2d(dim, dim, 3, stride=stride, padding=1, groups=cardinality, bias=False)
        self.bn = nn.BatchNorm2d(dim)
        self.conv_expand = nn.Conv2d(dim, planes * EXPANSION, 1, bias=False)
        self.bn_expand = nn.BatchNorm2d(planes * EXPANSION)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn_reduce(self.conv_reduce(x)), inplace=True)
        out = F.relu(self.bn(self.conv_conv(out)), inplace=True)
        out = self.bn_expand(self.conv_expand(out))
        residual = x if self.downsample is None else self.downsample(x)
        return F.relu(residual + out, inplace=True)


class CifarResNeXt(nn.Module):
    """ResNeXt for 32x32 inputs: conv3x3 3->64, BN, ReLU; three stages of n bottlenecks (planes 64/128/256, strides
    1/2/2, projection shortcut on each stage's first block); 8x8 average pool; linear 1024->K.

    Args:
        depth: 9n + 2 (29 -> 3 blocks per stage).
        cardinality: number of groups in the 3x3 convs (4).
        base_width: channels per group at planes = 64 (32); later stages scale it with planes.
        num_classes: K.
    """

    def __init__(self, depth: int = 29, cardinality: int = 4, base_width: int = 32, num_classes: int = 10):
        super().__init__()
        if not isinstance(depth, int) or isinstance(depth, bool) or depth < 11 or (depth - 2) % 9:
            raise ValueError(f"resnext29: depth must be 9n+2 with n >= 1 blocks per stage (11, 20, 29, 38, ...); "
                             f"got {depth!r}")
        check_positive_int(base_width, "resnext29: width (base width per group)")
        check_positive_int(cardinality, "resnext29: cardinality")
        check_positive_int(num_classes, "resnext29: num_classes")
        n = (depth - 2) // 9
        self.cardinality, self.base_width = cardinality, base_width
        self.conv_1_3x3 = nn.Conv2d(3, 64, 3, stride=1, padding=1, bias=False)
        self.bn_1 = nn.BatchNorm2d(64)
        self.in_planes = 64
        self.stage_1 = self._stage(64, n, 1)
        self.stage_2 = self._stage(128, n, 2)
        self.stage_3 = self._stage(256, n, 2)
        self.classifier = nn.Linear(256 * EXPANSION, num_classes)
        init_official_cifar(self, linear_fan_in=True)  # upstream: init.kaiming_normal on the classifier weight

    def _stage(self, planes: int, n: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.in_planes != planes * EXPANSION:
            downsample = nn.Sequential(nn.Conv2d(self.in_planes, planes * EXPANSION, 1, stride=stride, bias=False),
                                       nn.BatchNorm2d(planes * EXPANSION))
        blocks = [ResNeXtBottleneck(self.in_planes, planes, self.cardinality, self.base_width, stride, downsample)]
        self.in_planes = planes * EXPANSION
        blocks += [ResNeXtBottleneck(self.in_planes, planes, self.cardinality, self.base_width) for _ in range(1, n)]
        return nn.Sequential(*blocks)

    def forward(self, images: Tensor) -> Tensor:
        """images: (B, 3, 32, 32) float, normalised, any device -> logits (B, K) float, same device."""
        out = F.relu(self.bn_1(self.conv_1_3x3(images)), inplace=True)
        out = self.stage_3(self.stage_2(self.stage_1(out)))
        out = F.avg_pool2d(out, 8)  # (B, 1024, 8, 8) -> (B, 1024, 1, 1)
        return self.classifier(flatten_pooled(out, "resnext29", "32x32 inputs"))


def resnext29(num_classes: int = 10, depth: int = 29, width: int = 32) -> CifarResNeXt:
    """ResNeXt-29, 4 groups x 32 channels (6,807,882 parameters at 10 classes). depth: 9n+2; width: base width per
    group; cardinality is fixed at 4."""
    return CifarResNeXt(depth=depth, cardinality=4, base_width=width, num_classes=num_classes)
