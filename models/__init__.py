"""Classifiers: the AugMix CIFAR architectures, ResNet-50 for ImageNet, a CIFAR ResNet-18; ``MODELS``,
``build_model`` and ``display_name`` (what a model is called in logs, reports and plots: ``WRN-40-2``, ``WRN-10-2``,
``ResNeXt-29 (4x32d)``). Checkpoint loading lives in ``models.weights``.

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
from collections.abc import Mapping
from typing import Any

from torch import nn

from models.alexnet import alexnet
from models.allconv import allconv
from models.densenet import densenet40_12
from models.resnet import resnet18, resnet50
from models.resnext import resnext29
from models.wrn import wrn40_2

__all__ = ["MODELS", "SIZE_KEYS", "build_model", "display_name"]

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


def _default_sizes(name: str) -> dict[str, Any]:
    """The depth/width keys ``MODELS[name]`` takes, with its defaults (droprate does not change what a model is)."""
    params = inspect.signature(MODELS[name]).parameters
    return {k: p.default for k, p in params.items() if k in ("depth", "width")}


def display_name(model_args: Mapping[str, Any]) -> str:
    """What a model is, in the literature's naming, for start-up lines, report titles, legends and results files.

    Args:
        model_args: ``build_model`` arguments: ``name`` (a key of ``MODELS``) and optionally depth/width/droprate
            (``None`` keeps the default) and num_classes. Only the architecture and its size show in the name.

    Returns:
        e.g. ``WRN-40-2``, ``WRN-10-2`` (depth 10), ``DenseNet-40-12`` (depth 40, growth rate 12; not the BC
        variant), ``ResNeXt-29 (4x32d)`` (4 groups of base width 32), ``AllConvNet``, ``AllConvNet (width 16)``,
        ``ResNet-50``, ``Wide ResNet-50-2`` (width 128, torchvision's name), ``ResNet-18 (width 8)``, ``AlexNet``.

    Raises:
        ValueError: no or unknown name, a size key the model does not take, or a size that is not a positive int.
    """
    if not isinstance(model_args, Mapping):
        raise ValueError(f"model_args must be a mapping with a 'name' key; got {type(model_args).__name__}")
    name = model_args.get("name")
    if name not in MODELS:
        raise ValueError(f"model_args name {name!r} is not a model; valid names: {', '.join(MODELS)}")
    sizes = _default_sizes(name)
    for key in ("depth", "width"):
        value = model_args.get(key)
        if value is None:
            continue
        if key not in sizes:
            raise ValueError(f"model {name!r} does not take {key}; its size keys are "
                             f"{', '.join(sizes) or 'none'}")
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"model {name!r}: {key} must be a positive int; got {value!r}")
        sizes[key] = value
    return _DISPLAY_NAMES[name](sizes, _default_sizes(name))


def _resnet50_name(sizes: dict, defaults: dict) -> str:
    if sizes["width"] == 128:  # torchvision's wide_resnet50_2 is ResNet-50 with width_per_group 128
        return "Wide ResNet-50-2"
    return "ResNet-50" if sizes["width"] == defaults["width"] else f"ResNet-50 (width {sizes['width']})"


# name -> (sizes, defaults) -> display name; every key of MODELS has one (tests/test_models.py checks).
_DISPLAY_NAMES = {
    "wrn40_2": lambda s, d: f"WRN-{s['depth']}-{s['width']}",  # WRN-depth-widen factor
    "densenet40_12": lambda s, d: f"DenseNet-{s['depth']}-{s['width']}",  # DenseNet-depth-growth rate, non-BC
    "resnext29": lambda s, d: f"ResNeXt-{s['depth']} (4x{s['width']}d)",  # cardinality x base width
    "allconv": lambda s, d: "AllConvNet" if s == d else f"AllConvNet (width {s['width']})",
    "resnet50": _resnet50_name,
    "resnet18": lambda s, d: "ResNet-18" if s == d else f"ResNet-18 (width {s['width']})",
    "alexnet": lambda s, d: "AlexNet",
}
