"""evaluation.evaluate(): any nn.Module, end to end on tiny generated data; the same numbers as the suite runner; the
report written when asked; cells never reused across different weights; clear errors."""

from __future__ import annotations

import json

import pytest
import torch

import evaluation
from evaluation import evaluate
from evaluation.api import state_dict_sha256
from evaluation.inference import InferenceSettings
from evaluation.store import OutputFolderError
from evaluation.suites import EvalOptions, run_evaluation
from runtime.devices import DeviceError
from tests._evaluation_data import model_info, tiny_classifier

MEAN, STD = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
SMALL = {"corruptions": ("gaussian_noise", "pixelate"), "severities": (1, 3), "perturbations": ("translate",),
         "limit": 100, "batch_size": 50, "workers": 0}


class _TwoLayer(torch.nn.Module):
    """Not one of our models: a plain module with its own forward."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(3)
        self.features = torch.nn.Conv2d(3, 4, 3, stride=4)
        self.head = torch.nn.Linear(4 * 8 * 8, 10)

    def forward(self, x):
        return self.head(self.features(x).relu().flatten(1))


def test_evaluate_any_module_on_generated_digits_writes_the_report(tmp_path):
    model = _TwoLayer()
    out = tmp_path / "eval"
    results = evaluate(model, "all", dataset="digits", mean=MEAN, std=STD, out_dir=out, device="cpu",
                       data_root=tmp_path, generate=True, seed=4, plots=False, **SMALL)
    assert sorted(results["suites"]) == ["calibration", "clean", "digits-c", "digits-p"]
    assert results["checkpoint"]["name"] == "_TwoLayer" and results["checkpoint"]["source"] == "nn.Module"
    assert results["checkpoint"]["sha256"] == state_dict_sha256(model)
    assert results["config"]["device"] == "cpu" and results["config"]["seed"] == 4
    cells = results["suites"]["digits-c"]["cells"]
    assert [(c["corruption"], c["severity"], c["n"]) for c in cells] == [
        ("gaussian_noise", 1, 100), ("gaussian_noise", 3, 100), ("pixelate", 1, 100), ("pixelate", 3, 100)]
    assert results["suites"]["digits-p"]["cells"][0]["frames"] == 16
    assert json.loads((out / "results.json").read_text()) == json.loads(json.dumps(results))
    assert "GENERATED in memory" in (out / "results.md").read_text()
    assert "decoders" in results["environment"] and results["environment"]["device"] == "cpu"


def test_evaluate_gives_the_numbers_of_the_suite_runner(tmp_path):
    model, info = tiny_classifier(), model_info("digits", 10, MEAN, STD)
    kw = {k: v for k, v in SMALL.items() if k not in ("batch_size", "workers", "perturbations")}
    door = evaluate(model, ["clean", "digits-c"], model_info=info, device="cpu", generate=True, **kw)
    options = EvalOptions(inference=InferenceSettings(device="cpu", batch_size=1000, workers=4), generate=True, **kw)
    runner = run_evaluation(model, info, ["clean", "digits-c"], options)
    strip = lambda suite: [{k: v for k, v in c.items() if k != "seconds"} for c in suite["cells"]]  # noqa: E731
    for name in ("clean", "digits-c"):
        assert strip(door["suites"][name]) == strip(runner["suites"][name])
        assert door["suites"][name]["aggregates"] == runner["suites"][name]["aggregates"]
    assert door["checkpoint"] == runner["checkpoint"]


def test_cells_are_reused_for_the_same_weights_only(tmp_path):
    kw = {"dataset": "digits", "mean": MEAN, "std": STD, "out_dir": tmp_path, "device": "cpu", "limit": 50,
          "plots": False}
    first = evaluate(tiny_classifier(seed=0), "clean", **kw)
    again = evaluate(tiny_classifier(seed=0), "clean", **kw)
    assert first["suites"]["clean"]["timing"]["cells_computed"] == 1
    assert again["suites"]["clean"]["timing"]["cells_reused"] == 1
    with pytest.raises(OutputFolderError, match="holds the results of another checkpoint"):  # other weights
        evaluate(tiny_classifier(seed=1), "clean", **kw)
    other = evaluate(tiny_classifier(seed=1), "clean", overwrite=True, **kw)
    assert other["suites"]["clean"]["timing"]["cells_computed"] == 1  # other weights, other fingerprint
    owner = json.loads((tmp_path / "evaluated-checkpoint.json").read_text())
    assert owner["sha256"] == other["checkpoint"]["sha256"] != first["checkpoint"]["sha256"]


def test_evaluate_rejects_bad_arguments():
    model = tiny_classifier()
    with pytest.raises(ValueError, match=r"unknown setting\(s\) batchsize; valid: .*batch_size"):
        evaluate(model, "clean", dataset="digits", mean=MEAN, std=STD, batchsize=10)
    with pytest.raises(ValueError, match="mean, std required for a model without model_info"):
        evaluate(model, "clean", dataset="digits")
    with pytest.raises(ValueError, match="suite 'cifar10-c' evaluates cifar10 models"):
        evaluate(model, "cifar10-c", dataset="digits", mean=MEAN, std=STD, device="cpu")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="device=cuda but CUDA is not available"):
            evaluate(model, "clean", dataset="digits", mean=MEAN, std=STD, device="cuda")


def test_evaluate_is_the_package_export():
    assert evaluation.evaluate is evaluate
    assert evaluation.__all__ == ["evaluate", "plan_evaluation", "EvalOptions", "EvaluationPlan"]
    from evaluation.suites import plan_evaluation

    assert evaluation.plan_evaluation is plan_evaluation
