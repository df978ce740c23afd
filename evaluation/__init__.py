"""The robustness evaluator: ``evaluate()`` (api.py, the Python door for any nn.Module), suites.py (clean, -C, -P,
calibration), sources.py (released files or generated in memory), inference.py (batched uint8 -> logits),
metrics.py (pure functions of logits and labels), store.py (finished cells, resume), report.py (results.json,
results.md, plots)."""

from evaluation.api import evaluate

__all__ = ["evaluate"]
