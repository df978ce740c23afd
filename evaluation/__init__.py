"""The robustness evaluator: metrics.py (pure functions of logits and labels), inference.py (batched uint8 ->
logits), suites.py (clean, -C, -P, calibration; ``run_evaluation``), report.py (results.json, results.md, plots)."""
