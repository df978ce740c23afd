"""AlexNet, torchvision's layout: the baseline of ImageNet-C mCE and of the ImageNet-P normalisers.

The reference evaluators load torchvision's ``alexnet-owt-4df8aa71`` weights (docs/metrics.md §3.2, §4.4); with them
``evaluate.py --baseline-ckpt alexnet-owt-4df8aa71.pth --baseline-arch alexnet`` computes the -P normalisers and the
AlexNet clean error of relative mCE on the same data and pre-processing as the evaluated model.
"""

from __future__ import annotations

import torchvision

from models.wrn import check_positive_int


def alexnet(num_classes: int = 1000) -> torchvision.models.AlexNet:
    """torchvision's AlexNet (61,100,840 parameters at 1000 classes) with its default initialisation.

    Parameter names are torchvision's (``features.0`` ... ``classifier.6``), so its released state dict loads as is.
    Takes (B, 3, H, W) float with H, W >= 63 (adaptive average pooling to 6x6), ImageNet normalisation.
    """
    check_positive_int(num_classes, "alexnet: num_classes")
    return torchvision.models.alexnet(weights=None, num_classes=num_classes)
