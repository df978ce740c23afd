"""SGD and the per-iteration learning-rate schedules of the AugMix recipes (docs/augmix.md §7)."""

from __future__ import annotations

import math

import torch
from torch import nn


def build_optimizer(model: nn.Module, lr: float, momentum: float, nesterov: bool, weight_decay: float,
                    batch_size: int, scale_lr_by_batch: bool) -> torch.optim.SGD:
    """SGD with weight decay on all parameters (BN affine and biases included, as the official scripts)."""
    base_lr = lr * batch_size / 256 if scale_lr_by_batch else lr
    return torch.optim.SGD(model.parameters(), lr=base_lr, momentum=momentum, nesterov=nesterov,
                           weight_decay=weight_decay)


def cosine_factor(step: int, total_steps: int, min_factor: float) -> float:
    """Official CIFAR schedule: ``r + (1 - r) * (1 + cos(pi * t / T)) / 2`` with ``r = min_lr / lr``.

    Stepped after every optimiser step, so the first step uses the base lr and step T reaches min_lr.
    """
    return min_factor + (1 - min_factor) * 0.5 * (1 + math.cos(math.pi * step / total_steps))


def step_factor(step: int, steps_per_epoch: int, epochs: int) -> float:
    """Official ImageNet schedule (recipe A): x1, then x0.1 from epoch ``epochs // 3``, x0.01 from
    ``2 * (epochs // 3)``."""
    epoch = step // steps_per_epoch
    k = max(epochs // 3, 1)
    return 1.0 if epoch < k else 0.1 if epoch < 2 * k else 0.01


def build_scheduler(optimizer: torch.optim.Optimizer, schedule: str, epochs: int, steps_per_epoch: int,
                    min_lr: float) -> torch.optim.lr_scheduler.LambdaLR:
    """A LambdaLR over global steps; its state (the step count) goes into every checkpoint, so a resumed run
    continues the same curve (the official CIFAR resume restarted it, docs/augmix.md §9 defect 1)."""
    total = epochs * steps_per_epoch
    base_lr = optimizer.param_groups[0]["lr"]
    if schedule == "cosine":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda t: cosine_factor(t, total, min_lr / base_lr))
    if schedule == "step":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda t: step_factor(t, steps_per_epoch, epochs))
    raise ValueError(f"unknown schedule {schedule!r}; valid: cosine, step")
