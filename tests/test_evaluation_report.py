"""evaluation/report.py: results.json schema, the markdown tables, plots, compare, TensorBoard."""

from __future__ import annotations

import json

import numpy as np
import pytest

from corruptions import CORRUPTIONS, EXTRA_CORRUPTIONS
from evaluation import metrics as M
from evaluation import report as R


def _corruption_suite(errors: dict, benchmark: str = "cifar", clean_error: float | None = None) -> dict:
    cells = [{"corruption": c, "severity": s, "n": 100, "error": e}
             for c, per in errors.items() for s, e in per.items()]
    if benchmark == "imagenet":
        aggregates = M.imagenet_c_summary(errors, clean_error)
        aggregates["clean_error"] = clean_error
    else:
        aggregates = M.cifar_c_summary(errors)
    aggregates["per_severity"] = {str(s): v for s, v in aggregates["per_severity"].items()}
    return {"kind": "corruption", "benchmark": benchmark, "dataset": "x", "cells": cells, "aggregates": aggregates,
            "source": {"kind": "released", "path": "/data/X-C"}, "timing": {}}


def _results(suites: dict, name: str = "wrn40_2") -> dict:
    results = R.new_results({"name": name, "dataset": "cifar10", "sha256": "ab" * 32, "path": "x.pt"},
                            {"batch_size": 8, "amp": "auto"}, {"device": "cpu", "torch": "2.x"})
    results["suites"] = suites
    return results


def _cifar_errors(offset: float = 0.0) -> dict:
    # 15 benchmark corruptions with error 0.1 * severity + offset (mean 0.3 + offset); extras at 0.9
    errors = {c: {s: 0.1 * s + offset for s in range(1, 6)} for c in CORRUPTIONS}
    errors.update({c: {s: 0.9 for s in range(1, 6)} for c in EXTRA_CORRUPTIONS})
    return errors


def test_markdown_prints_the_cifar_table_and_labelled_means():
    text = R.render_markdown(_results({"cifar10-c": _corruption_suite(_cifar_errors())}))
    assert "| fog | 10.00 | 20.00 | 30.00 | 40.00 | 50.00 | 30.00 |" in text
    assert "| saturate (extra) | 90.00 |" in text
    # 15 x 5 mean = 30 %; 19-corruption mean (15 * 0.3 + 4 * 0.9) / 19 = 42.63 %, labelled as such
    assert "**mean corruption error** (15 corruptions x 5 severities, unnormalised): **30.00 %**" in text
    assert "mean corruption error over all 19 corruptions (incl. extra): 42.63 %" in text
    assert "PARTIAL" not in text


def test_markdown_prints_mce_with_the_alexnet_clean_error_and_flags_partial_runs():
    alexnet = {c: {s: M.ALEXNET_ERRORS[c][s - 1] for s in range(1, 6)} for c in CORRUPTIONS}
    text = R.render_markdown(_results({"imagenet-c": _corruption_suite(alexnet, "imagenet", M.ALEXNET_CLEAN_ERROR)}))
    assert "- **mCE** (AlexNet-normalised, mean CE over the 15 benchmark corruptions): **100.00 %**" in text
    assert "relative mCE**: 100.00 % (AlexNet clean error used: 43.478 %" in text
    assert "| brightness | 45.14 | 48.50 | 54.05 | 62.17 | 72.44 | 56.46 | 100.0 | 100.0 |" in text
    partial = {c: alexnet[c] for c in CORRUPTIONS[:3]}
    text = R.render_markdown(_results({"imagenet-c": _corruption_suite(partial, "imagenet")}))
    assert "PARTIAL: 3 of 15 benchmark corruptions" in text


def test_report_files_round_trip_and_schema_is_checked(tmp_path):
    results = _results({"cifar10-c": _corruption_suite(_cifar_errors()),
                        "calibration": {"kind": "calibration", "cells": [], "source": {"kind": "clean", "path": "t"},
                                        "aggregates": {"n": 300, "rms_calib_error": 0.1, "ece_15": 0.05},
                                        "reliability": M.reliability_bins(np.linspace(0.05, 1, 300), np.ones(300))}})
    written = R.write_report(tmp_path, results, baseline=_results({"cifar10-c": _corruption_suite(_cifar_errors(0.1))}))
    assert sorted(p.name for p in written) == ["cifar10-c_errors.png", "cifar10-c_severity.png", "reliability.png",
                                               "results.json", "results.md"]
    for png in (p for p in written if p.suffix == ".png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    loaded = R.load_results(tmp_path)
    assert loaded["suites"]["cifar10-c"]["aggregates"]["corruption_error"] == pytest.approx(0.3)
    (tmp_path / "bad.json").write_text(json.dumps({**results, "schema_version": 99}))
    with pytest.raises(ValueError, match=r"bad\.json: results schema version 99 is not supported"):
        R.load_results(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text("{}")
    with pytest.raises(ValueError, match="not an evaluation results file"):
        R.load_results(tmp_path / "other.json")


def test_compare_puts_runs_side_by_side_with_the_difference():
    standard = _results({"cifar10-c": _corruption_suite(_cifar_errors(0.1))}, name="standard")
    augmix = _results({"cifar10-c": _corruption_suite(_cifar_errors())}, name="augmix")
    text = R.compare_results([standard, augmix], ["standard", "augmix"])
    # mean corruption error 40 % vs 30 %: difference -10
    assert ("| cifar10-c: mean corruption error, 15 corruptions x 5 severities (%) | 40.00 | 30.00 | -10.00 |"
            in text)
    assert "| fog | 40.00 | 30.00 |" in text


def test_headlines_go_to_tensorboard(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    R.write_tensorboard(_results({"cifar10-c": _corruption_suite(_cifar_errors())}), tmp_path, step=7)
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    (scalar,) = events.Scalars("eval/cifar10-c/corruption_error")
    assert scalar.step == 7 and scalar.value == pytest.approx(30.0)


def test_markdown_prints_perturbation_tables_and_named_means():
    names = M.CIFAR_P_SCRIPT + ("snow",)
    fp = {p: 0.01 for p in names}
    fp["spatter"], fp["snow"] = 0.03, 0.02
    t5d = {p: 0.5 for p in names}
    baseline = {"flip_probability": {p: 0.02 for p in names}, "top5_distance": {p: 1.0 for p in names}}
    cells = [{"perturbation": p, "difficulty": 1, "videos": 10, "frames": 31, "flip_probability": fp[p],
              "top5_distance": t5d[p], "zipf_distance": 0.1, "file": p} for p in names]
    suite = {"kind": "perturbation", "benchmark": "cifar", "cells": cells, "source": {"kind": "released", "path": "p"},
             "aggregates": M.perturbation_summary(fp, t5d, baseline, cifar=True), "baseline": {"name": "standard"}}
    text = R.render_markdown(_results({"cifar10-p": suite}))
    # spatter: FP 3 %, FR = 0.03 / 0.02 = 150 %; T5D ratio 0.5 / 1 = 50 %
    assert "| spatter | 1 | 10 | 31 | 3.000 | 0.500 | 0.1000 | 150.0 | 50.0 |" in text
    # script mean (spatter): (9 * 1 + 3) / 10 = 1.2 %; benchmark mean (snow): (9 * 1 + 2) / 10 = 1.1 %
    assert "cifar_p_mfp_script: mean FP, authors' CIFAR-P list (spatter): **1.200 %**" in text
    assert "cifar_p_mfp_benchmark: mean FP, ImageNet-P test list (snow): **1.100 %**" in text
    # mFR over the 10 ImageNet-P test perturbations: (9 * 0.5 + 1.0) / 10 = 55 %
    assert "mFR, normalised by the baseline: **55.000 %**" in text and "baseline for FR/T5D ratios: standard" in text
