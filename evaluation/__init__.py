"""The robustness evaluator: ``evaluate()`` (api.py, the Python door for any nn.Module), ``plan_evaluation()``
(suites.py: every check of an evaluation, run before any work; train.py calls it at start-up), suites.py (clean, -C,
-P, calibration), sources.py (released files or generated in memory), inference.py (batched uint8 -> logits),
metrics.py (pure functions of logits and labels), store.py (finished cells, resume, output-folder ownership),
sharding.py (the cells split across torchrun ranks), report.py (results.json, results.md, plots)."""

from evaluation.api import evaluate
from evaluation.suites import EvalOptions, EvaluationPlan, plan_evaluation

__all__ = ["evaluate", "plan_evaluation", "EvalOptions", "EvaluationPlan"]
