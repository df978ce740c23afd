"""WideResNet (Zagoruyko & Komodakis, BMVC 2016) as the official AugMix code builds it; WRN-40-2 is its CIFAR default.

Module and parameter names follow google-research/augmix ``third_party/WideResNet_pytorch/wideresnet.py`` so that the
official checkpoints load once DataParallel's ``module.`` prefix is stripped (docs/augmix.md §8). The
official initialisation and the pooled-head check shared by the four CIFAR models live here too.
"""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn


def init_official_cifar(model: nn.Module, linear_fan_in: bool = False) -> None:
    """The AugMix CIFAR models' initialisation (docs/augmix.md §8), in place.

    Conv weights ~ Normal(0, sqrt(2 / (kh * kw * out_channels))) (He, fan-out; conv biases keep PyTorch's default),
    BatchNorm weight 1 and bias 0, Linear bias 0. Linear weights keep PyTorch's default unless ``linear_fan_in``
    (ResNeXt's Kaiming-normal fan-in, std sqrt(2 / in_features)).
    """
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
            nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            if linear_fan_in:
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            nn.init.zeros_(m.bias)


def flatten_pooled(pooled: Tensor, model_name: str, input_rule: str) -> Tensor:
    """(B, C, 1, 1) -> (B, C), with a clear error when the input size left a bigger pooled map.

    The official heads use ``view(-1, C)``, which silently turns a 64x64 batch into 4x as many rows; flattening
    from dim 1 also keeps a batch of one image a batch (defect 9 of docs/augmix.md §9).
    """
    if pooled.shape[-2:] != (1, 1):
        raise ValueError(f"{model_name} expects {input_rule}; the final pooling gave a {tuple(pooled.shape[-2:])} map "
                         "instead of 1x1")
    return pooled.flatten(1)


def check_positive_int(value: object, what: str) -> int:
    """``value`` if it is a positive int (not a bool), else a ValueError naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{what} must be a positive int; got {value!r}")
    return value


def check_droprate(value: object, what: str) -> float:
    """``value`` as a float in [0, 1), else a ValueError naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ValueError(f"{what} must be a float in [0, 1); got {value!r}")
    return float(value)


class BasicBlock(nn.Module):
    """Pre-activation basic block: BN-ReLU-conv3x3-BN-ReLU-[dropout]-conv3x3, plus the shortcut.

    When the width changes, the BN-ReLU output of the input feeds both the first conv and the 1x1 strided shortcut
    conv (as coded upstream); otherwise the raw input is added.
    """

    def __init__(self, in_planes: int, out_planes: int, stride: int, droprate: float = 0.0):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_planes)
        self.conv2 = nn.Conv2d(out_planes, out_planes, 3, stride=1, padding=1, bias=False)
        self.droprate = droprate
        self.equal_in_out = in_planes == out_planes
        # The official name (``conv_shortcut.weight``); files with the older ``convShortcut`` name are mapped onto
        # it by models.weights.
        self.conv_shortcut = None if self.equal_in_out else nn.Conv2d(in_planes, out_planes, 1, stride=stride,
                                                                      bias=False)

    def forward(self, x: Tensor) -> Tensor:
        act = F.relu(self.bn1(x), inplace=True)
        shortcut = x if self.conv_shortcut is None else self.conv_shortcut(act)
        out = F.relu(self.bn2(self.conv1(act)), inplace=True)
        if self.droprate > 0:
            out = F.dropout(out, p=self.droprate, training=self.training)
        return shortcut + self.conv2(out)


class NetworkBlock(nn.Module):
    """One stage of ``num_blocks`` basic blocks; the first one carries the stride and the width change."""

    def __init__(self, num_blocks: int, in_planes: int, out_planes: int, stride: int, droprate: float):
        super().__init__()
        self.layer = nn.Sequential(*[
            BasicBlock(in_planes if i == 0 else out_planes, out_planes, stride if i == 0 else 1, droprate)
            for i in range(num_blocks)
        ])

    def forward(self, x: Tensor) -> Tensor:
        return self.layer(x)


class WideResNet(nn.Module):
    """WRN-depth-k for 32x32 inputs: stem conv 3->16, three stages of widths 16k/32k/64k, BN-ReLU, 8x8 avg pool, fc.

    Args:
        depth: total depth, 6n + 4 with n >= 1 blocks per stage (40 -> 6 blocks).
        widen_factor: k, the stage width multiplier (2 for WRN-40-2).
        droprate: dropout between the two convs of every block; 0 (official default) disables it.
        num_classes: K, the number of logits.
    """

    def __init__(self, depth: int = 40, widen_factor: int = 2, droprate: float = 0.0, num_classes: int = 10):
        super().__init__()
        if not isinstance(depth, int) or isinstance(depth, bool) or depth < 10 or (depth - 4) % 6:
            raise ValueError(f"wrn40_2: depth must be 6n+4 with n >= 1 (10, 16, 22, 28, 34, 40, ...); got {depth!r}")
        check_positive_int(widen_factor, "wrn40_2: width (widen factor)")
        check_positive_int(num_classes, "wrn40_2: num_classes")
        droprate = check_droprate(droprate, "wrn40_2: droprate")
        n = (depth - 4) // 6
        widths = (16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor)
        self.conv1 = nn.Conv2d(3, widths[0], 3, stride=1, padding=1, bias=False)
        self.block1 = NetworkBlock(n, widths[0], widths[1], 1, droprate)
        self.block2 = NetworkBlock(n, widths[1], widths[2], 2, droprate)
        self.block3 = NetworkBlock(n, widths[2], widths[3], 2, droprate)
        self.bn1 = nn.BatchNorm2d(widths[3])
        self.fc = nn.Linear(widths[3], num_classes)
        init_official_cifar(self)

    def forward(self, images: Tensor) -> Tensor:
        """images: (B, 3, 32, 32) float, normalised, any device -> logits (B, K) float, same device."""
        out = self.block3(self.block2(self.block1(self.conv1(images))))
        out = F.avg_pool2d(F.relu(self.bn1(out), inplace=True), 8)  # (B, 64k, 8, 8) -> (B, 64k, 1, 1)
        return self.fc(flatten_pooled(out, "wrn40_2", "32x32 inputs"))


def wrn40_2(num_classes: int = 10, depth: int = 40, width: int = 2, droprate: float = 0.0) -> WideResNet:
    """WideResNet-40-2 (2,243,546 parameters at 10 classes). depth: 6n+4; width: widen factor; droprate: in-block
    dropout (official default 0)."""
    return WideResNet(depth=depth, widen_factor=width, droprate=droprate, num_classes=num_classes)
