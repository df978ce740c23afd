"""Mixed precision for training: the body of the network under autocast, the classifier head and the loss in float32.

Rounding logits to bf16 (8 bits of mantissa) moves the JSD term by 1-15 % when the three views nearly agree, which is
exactly the regime the consistency loss pushes towards. So the final Linear runs with autocast disabled on float32
features, and the loss sees float32 logits. The head is found, not named: every model in ``models/`` ends in one
``nn.Linear`` producing the K logits (``fc``, ``classifier``, ``linear``, ``classifier.6``), the last Linear module.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class Float32Linear(nn.Linear):
    """An ``nn.Linear`` that ignores autocast: float32 inputs, float32 weights, float32 logits. Same parameters and
    state_dict keys as the Linear it replaces (only the class of the instance changes)."""

    def forward(self, features: Tensor) -> Tensor:
        with torch.autocast(features.device.type, enabled=False):
            return super().forward(features.float())


def classifier_head(model: nn.Module) -> tuple[str, nn.Linear]:
    """(name, module) of ``model``'s output layer: its last ``nn.Linear``.

    Raises:
        ValueError: the model has no Linear layer.
    """
    linears = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"{type(model).__name__} has no nn.Linear output layer to keep in float32")
    return linears[-1]


def keep_head_float32(model: nn.Module) -> str:
    """Make ``model``'s classifier head run in float32 under autocast, in place; returns the head's name."""
    name, head = classifier_head(model)
    if type(head) is nn.Linear:
        head.__class__ = Float32Linear
    return name


def amp_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """``train.amp`` -> the autocast dtype of the body (None = full float32). auto: bf16 on CUDA, off elsewhere."""
    if amp == "auto":
        return torch.bfloat16 if device.type == "cuda" else None
    return {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}[amp]


def precision_label(dtype: torch.dtype | None) -> str:
    """What a run computes in, for the start-up line, metrics.jsonl and the checkpoint."""
    if dtype is None:
        return "float32"
    name = {torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]
    scaled = " with gradient scaling" if dtype == torch.float16 else ""
    return f"{name} autocast body{scaled}, float32 head and loss"
