"""Classifiers: the AugMix CIFAR architectures, ResNet-50 for ImageNet, a CIFAR ResNet-18; ``MODELS`` and
``build_model``. Checkpoint loading lives in ``models.weights``.

Size keys per model (``None`` keeps the model's default):

| model           | depth                      | width                                  | droprate                |
|-----------------|----------------------------|----------------------------------------|-------------------------|
| wrn40_2         | 6n+4 (40)                  | widen factor (2)                       | in-block dropout (0)    |
| densenet40_12   | 3n+4 (40)                  | growth rate (12)                       | after each conv (0)     |
| resnext29       | 9n+2 (29)                  | base width per group (32); 4 groups    | -                       |
| allconv         | -                          | first-stage channels (96; then 2x)     | after max-pools (0.5)   |
| resnet50        | -                          | width_per_group (64)                   | -                       |
| resnet18        | -                          | first-stage channels (64)              | -                       |
| alexnet         | -                          | -                                      | -                       |
"""

from __future__ import annotations

import inspect

from torch import nn

from models.alexnet import alexnet
from models.allconv import allconv
from models.densenet import densenet40_12
from models.resnet import resnet18, resnet50
from models.resnext import resnext29
from models.wrn import wrn40_2

__all__ = ["MODELS", "SIZE_KEYS", "build_model"]

# name -> constructor(num_classes, **size keys). Listing a model here gets it tested by tests/test_models.py.
MODELS = {
    "wrn40_2": wrn40_2,
    "densenet40_12": densenet40_12,
    "resnext29": resnext29,
    "allconv": allconv,
    "resnet50": resnet50,
    "resnet18": resnet18,
    "alexnet": alexnet,  # the ImageNet-C / -P baseline
}

SIZE_KEYS: tuple[str, ...] = ("depth", "width", "droprate")


def build_model(name: str, num_classes: int, depth: int | None = None, width: int | None = None,
                droprate: float | None = None) -> nn.Module:
    """Build ``MODELS[name]`` on the CPU with freshly initialised weights (train mode); the caller moves it.

    Args:
        name: a key of ``MODELS``.
        num_classes: K, the number of logits.
        depth, width, droprate: size keys, meaning per model in the table of this module's docstring; ``None``
            values are dropped so the model's defaults win (e.g. ``build_model("wrn40_2", 10, depth=10, width=1)``).

    Returns:
        An ``nn.Module`` mapping (B, 3, H, W) float images to (B, K) float logits.

    Raises:
        ValueError: unknown name (lists the valid ones), a size key the model does not take (names the model and
            its keys), or an invalid value (states the rule, e.g. WRN depth 6n+4).
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; valid names: {', '.join(MODELS)}")
    constructor = MODELS[name]
    given = {k: v for k, v in (("depth", depth), ("width", width), ("droprate", droprate)) if v is not None}
    accepted = [k for k in inspect.signature(constructor).parameters if k in SIZE_KEYS]
    unsupported = [k for k in given if k not in accepted]
    if unsupported:
        raise ValueError(f"model {name!r} does not take {', '.join(unsupported)}; its keys are num_classes"
                         f"{''.join(', ' + k for k in accepted)}")
    return constructor(num_classes=num_classes, **given)
