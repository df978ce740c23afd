"""All-convolutional network (Springenberg et al., 2015) as the official AugMix code builds it for ``-m allconv``.

Module indices and parameter names follow google-research/augmix ``models/cifar/allconv.py`` (one ``features``
Sequential, then ``classifier``), so official checkpoints load; structure and quirks in docs/augmix.md §8.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from models.wrn import check_droprate, check_positive_int, flatten_pooled, init_official_cifar


class SigmoidGELU(nn.Module):
    """GELU approximated as x * sigmoid(1.702 x), as upstream (not torch's erf or tanh GELU)."""

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.sigmoid(1.702 * x)


def _conv_bn_gelu(in_channels: int, out_channels: int, kernel_size: int, padding: int) -> list[nn.Module]:
    return [nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding), nn.BatchNorm2d(out_channels),
            SigmoidGELU()]


class AllConvNet(nn.Module):
    """AllConvNet for 32x32 inputs; every conv has a bias and is followed by BN and the sigmoid GELU.

    ``features`` (indices as upstream, so parameter names match): 3x conv3x3 w (pad 1) -> max-pool 2 -> dropout ->
    3x conv3x3 2w (pad 1) -> max-pool 2 -> dropout -> conv3x3 2w pad 0 (8 -> 6) -> conv1x1 2w pad 1 (6 -> 8) ->
    conv1x1 2w pad 1 (8 -> 10) -> average pool. Then linear 2w -> K.

    Args:
        width: w, channels of the first stage (96); the second stage uses 2w.
        droprate: dropout after each max-pool (0.5).
        num_classes: K.
        topleft_pool: True (official quirk, docs/augmix.md §8): AvgPool2d(8, stride 8) on the 10x10 map, which averages
            only its top-left 8x8 and ignores the last two rows and columns. False: average the whole 10x10 map.
    """

    def __init__(self, width: int = 96, droprate: float = 0.5, num_classes: int = 10, topleft_pool: bool = True):
        super().__init__()
        check_positive_int(width, "allconv: width (first-stage channels)")
        check_positive_int(num_classes, "allconv: num_classes")
        droprate = check_droprate(droprate, "allconv: droprate")
        w1, w2 = width, 2 * width
        layers: list[nn.Module] = []
        for c_in, c_out in ((3, w1), (w1, w1), (w1, w1)):
            layers += _conv_bn_gelu(c_in, c_out, 3, padding=1)
        layers += [nn.MaxPool2d(2, stride=2), nn.Dropout(droprate)]
        for c_in, c_out in ((w1, w2), (w2, w2), (w2, w2)):
            layers += _conv_bn_gelu(c_in, c_out, 3, padding=1)
        layers += [nn.MaxPool2d(2, stride=2), nn.Dropout(droprate)]
        # Upstream quirks kept: the 3x3 conv has no padding (8 -> 6) and the 1x1 convs pad by 1 (6 -> 8 -> 10).
        layers += _conv_bn_gelu(w2, w2, 3, padding=0)
        layers += _conv_bn_gelu(w2, w2, 1, padding=1)
        layers += _conv_bn_gelu(w2, w2, 1, padding=1)
        layers.append(nn.AvgPool2d(8) if topleft_pool else nn.AdaptiveAvgPool2d(1))
        self.features = nn.Sequential(*layers)  # indices 0..31, as upstream
        self.classifier = nn.Linear(w2, num_classes)
        self.topleft_pool = topleft_pool
        init_official_cifar(self)

    def forward(self, images: Tensor) -> Tensor:
        """images: (B, 3, 32, 32) float, normalised, any device -> logits (B, K) float, same device."""
        pooled = self.features(images)  # (B, 2w, 1, 1)
        return self.classifier(flatten_pooled(pooled, "allconv", "32x32 inputs"))


def allconv(num_classes: int = 10, width: int = 96, droprate: float = 0.5) -> AllConvNet:
    """AllConvNet (1,409,674 parameters at 10 classes). width: first-stage channels (second stage 2x);
    droprate: dropout after the two max-pools (0.5)."""
    return AllConvNet(width=width, droprate=droprate, num_classes=num_classes)
