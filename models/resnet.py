"""ResNets (He et al., CVPR 2016): torchvision's ImageNet ResNet-50 (the AugMix ImageNet model) and the usual CIFAR
ResNet-18 (3x3 stride-1 stem, no max-pool; the layout and parameter names of kuangliu/pytorch-cifar).
"""

from __future__ import annotations

import torch.nn.functional as F
import torchvision
from torch import Tensor, nn

from models.wrn import check_positive_int


def resnet50(num_classes: int = 1000, width: int = 64) -> torchvision.models.ResNet:
    """torchvision's ResNet-50 with its default initialisation (25,557,032 parameters at 1000 classes).

    Parameter names are torchvision's (``conv1``, ``layer1.0.conv1``, ..., ``fc``), which the official AugMix
    ImageNet script also used. width: ``width_per_group`` (64); the bottleneck inner width is planes * width / 64.
    Takes (B, 3, H, W) float with H, W >= 32 (adaptive average pooling), normalised with the ImageNet statistics.
    """
    check_positive_int(num_classes, "resnet50: num_classes")
    check_positive_int(width, "resnet50: width (width_per_group)")
    return torchvision.models.resnet50(weights=None, num_classes=num_classes, width_per_group=width)


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN, plus the input (through a 1x1 conv + BN when stride or width changes), ReLU."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(planes))

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x), inplace=True)


class CifarResNet18(nn.Module):
    """ResNet-18 for small images: conv3x3 3->w (stride 1, no max-pool), four stages of two basic blocks with widths
    w/2w/4w/8w and strides 1/2/2/2, global average pool, linear 8w->K.

    Initialisation follows torchvision's ResNets: conv weights Kaiming-normal fan-out (std sqrt(2 / (k*k*out))),
    BN weight 1 and bias 0, Linear PyTorch's default.

    Args:
        width: w, channels of the first stage (64).
        num_classes: K.
    """

    def __init__(self, width: int = 64, num_classes: int = 10):
        super().__init__()
        check_positive_int(width, "resnet18: width (first-stage channels)")
        check_positive_int(num_classes, "resnet18: num_classes")
        self.conv1 = nn.Conv2d(3, width, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        widths = (width, 2 * width, 4 * width, 8 * width)
        self.layer1 = self._stage(width, widths[0], 1)
        self.layer2 = self._stage(widths[0], widths[1], 2)
        self.layer3 = self._stage(widths[1], widths[2], 2)
        self.layer4 = self._stage(widths[2], widths[3], 2)
        self.linear = nn.Linear(widths[3], num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    @staticmethod
    def _stage(in_planes: int, planes: int, stride: int) -> nn.Sequential:
        return nn.Sequential(BasicBlock(in_planes, planes, stride), BasicBlock(planes, planes, 1))

    def forward(self, images: Tensor) -> Tensor:
        """images: (B, 3, H, W) float, normalised, H, W >= 8, any device -> logits (B, K) float, same device."""
        out = F.relu(self.bn1(self.conv1(images)), inplace=True)
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)  # (B, 8w, H/8, W/8) -> (B, 8w)
        return self.linear(out)


def resnet18(num_classes: int = 10, width: int = 64) -> CifarResNet18:
    """CIFAR ResNet-18 (11,173,962 parameters at 10 classes). width: first-stage channels (64)."""
    return CifarResNet18(width=width, num_classes=num_classes)
