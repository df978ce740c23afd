"""evaluation/report.py: results.json schema, the markdown tables, plots, TensorBoard."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from corruptions import CORRUPTIONS, EXTRA_CORRUPTIONS
from evaluation import metrics as M
from evaluation import report as R
from evaluation.inference import InferenceSettings
from evaluation.suites import EvalOptions, run_evaluation


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


def test_headlines_go_to_tensorboard(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    R.write_tensorboard(_results({"cifar10-c": _corruption_suite(_cifar_errors())}), tmp_path, step=7)
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    (scalar,) = events.Scalars("eval/cifar10-c/corruption_error")
    assert scalar.step == 7 and scalar.value == pytest.approx(30.0)


def test_tensorboard_errors_are_percent_and_other_units_are_kept(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    clean = {"kind": "clean", "cells": [], "source": {"kind": "clean", "path": "t"},
             "aggregates": {"n": 100, "error": 0.042, "nll": 0.31, "brier": 0.07}}
    R.write_tensorboard(_results({"clean": clean}), tmp_path)
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    assert events.Scalars("eval/clean/error")[0].value == pytest.approx(4.2)  # percent, as train/test/val error
    assert events.Scalars("eval/clean/nll")[0].value == pytest.approx(0.31)
    assert events.Scalars("eval/clean/brier")[0].value == pytest.approx(0.07)


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


def _perturbation_suite(fp: dict, t5d: dict, baseline: dict | None, baseline_name: str = "standard") -> dict:
    cells = [{"perturbation": p, "difficulty": 1, "videos": 10, "frames": 31, "flip_probability": fp[p],
              "top5_distance": t5d[p], "zipf_distance": 0.1, "file": p} for p in fp]
    return {"kind": "perturbation", "benchmark": "imagenet", "cells": cells,
            "source": {"kind": "released", "path": "p"}, "aggregates": M.perturbation_summary(fp, t5d, baseline),
            "baseline": None if baseline is None else {"name": "alexnet", "model": baseline_name}}


def test_mfr_over_an_incomplete_baseline_is_reported_partial_naming_what_is_missing(tmp_path):
    fp = {p: 0.02 for p in M.IMAGENET_P_TEST}
    t5d = {p: 1.0 for p in M.IMAGENET_P_TEST}
    baseline = {"flip_probability": {p: 0.04 for p in M.IMAGENET_P_TEST[:-2]},
                "top5_distance": {p: 2.0 for p in M.IMAGENET_P_TEST[:-2]}}
    results = _results({"imagenet-p": _perturbation_suite(fp, t5d, baseline, "AlexNet")})
    text = R.render_markdown(results)
    missing = ", ".join(M.IMAGENET_P_TEST[-2:])
    assert (f"mFR, normalised by the baseline: **50.000 %** (PARTIAL: mean over 8 of the 10 ImageNet-P test "
            f"perturbations; not in the baseline: {missing}; not the published metric)") in text
    assert "mT5D, normalised by the baseline: **50.000 %** (PARTIAL" in text
    assert "mFP: mean flip probability, ImageNet-P test list, unnormalised: **2.000 %**\n" in text  # complete
    assert f"- **PARTIAL**: imagenet-p: mFR / mT5D: the baseline has no value for {missing}" in text
    assert "baseline for FR/T5D ratios: AlexNet" in text
    heads = R.headline_metrics(results)
    assert heads["imagenet-p/mfr"][0].endswith("[partial]") and heads["imagenet-p/mt5d"][0].endswith("[partial]")
    assert not heads["imagenet-p/mfp"][0].endswith("[partial]")
    R.write_report(tmp_path, results, plots=False)
    agg = R.load_results(tmp_path)["suites"]["imagenet-p"]["aggregates"]
    assert agg["normalised_complete"] is False and agg["baseline_missing"] == list(M.IMAGENET_P_TEST[-2:])
    complete = {"flip_probability": {p: 0.04 for p in fp}, "top5_distance": {p: 2.0 for p in fp}}
    text = R.render_markdown(_results({"imagenet-p": _perturbation_suite(fp, t5d, complete)}))
    assert "PARTIAL" not in text and "- complete: every headline number covers its whole benchmark" in text
    short = {p: fp[p] for p in M.IMAGENET_P_TEST if p != "snow"}
    text = R.render_markdown(_results({"imagenet-p": _perturbation_suite(short, t5d, complete)}))
    assert "(PARTIAL: mean over 9 of the 10 ImageNet-P test perturbations; not run: snow)" in text


def test_header_states_model_precision_device_data_and_partial():
    results = _results({"cifar10-c": _corruption_suite({c: _cifar_errors()[c] for c in CORRUPTIONS[:2]}),
                        "cifar10-p": {**_perturbation_suite({"translate": 0.01}, {"translate": 0.1}, None),
                                      "source": {"kind": "generated_files", "path": "/g/P", "manifest": "/g/P/m.json",
                                                 "seed": 3}}})
    results["checkpoint"].update(model="WRN-10-2")
    results["config"].update(precision="bf16", autocast_dtype="bfloat16", channels_last=True)
    results["environment"].update(device="cuda:0", gpu="NVIDIA H100", cuda="12.4")
    text = R.render_markdown(results)
    assert text.startswith("# Robustness evaluation: WRN-10-2 (cifar10)\n")
    assert "- model: **WRN-10-2** (registry name `wrn40_2`), checkpoint `x.pt`" in text
    assert "- device: cuda:0 (NVIDIA H100, CUDA 12.4); torch 2.x" in text
    assert "- precision: bf16 (autocast bfloat16); batch size 8, channels_last True" in text
    assert ("- data: cifar10-c: released files; cifar10-p: generated files (seed 3, manifest /g/P/m.json)"
            in text)
    assert ("- **PARTIAL**: cifar10-c: 2 of 15 benchmark corruptions (13 missing): not the published metric; "
            "cifar10-p: mFP / mean top-5 distance over 1 of the 10 ImageNet-P test perturbations") in text
    assert "generated files (seed 3, manifest /g/P/m.json) at `/g/P`: generated by corruptions/" in text
    results["config"] = {"batch_size": 8, "limit": 50}
    results["environment"] = {"device": "cpu", "cpu": "AMD EPYC 7B13", "cores": 2}
    text = R.render_markdown(results)
    assert "- precision: float32 (no autocast)" in text and "- device: cpu (AMD EPYC 7B13, 2 cores)" in text
    assert "**PARTIAL**: every cell uses only the first 50 images / videos (--limit)" in text


def _legend(fig) -> list[str]:
    legend = fig.legends[0] if fig.legends else fig.axes[0].get_legend()
    return [t.get_text() for t in legend.get_texts()]


def test_corruption_error_plot_draws_the_baseline_bars_with_model_names():
    results = _results({"cifar10-c": _corruption_suite(_cifar_errors())})
    results["checkpoint"]["model"] = "WRN-10-2"
    baseline = R.perturbation_baseline(_results({"cifar10-c": _corruption_suite(_cifar_errors(0.1))}, "allconv"))
    fig = R.plot_corruption_errors("cifar10-c", results["suites"]["cifar10-c"], results,
                                   baseline["suites"]["cifar10-c"], R.model_label(baseline))
    ax = fig.axes[0]
    assert len(ax.containers) == 2 and all(len(c) == 19 for c in ax.containers)
    assert _legend(fig) == ["benchmark mean, WRN-10-2 (30.0 %)", "baseline: allconv", "WRN-10-2"]
    assert [b.get_height() for b in ax.containers[0]][:1] == [pytest.approx(40.0)]  # baseline: 0.1 * s + 0.1
    alone = R.plot_corruption_errors("cifar10-c", results["suites"]["cifar10-c"], results)
    assert len(alone.axes[0].containers) == 1


def test_error_vs_severity_has_a_panel_per_family_with_distinct_lines():
    from corruptions import SUBSETS

    results = _results({"cifar10-c": _corruption_suite(_cifar_errors())})
    fig = R.plot_error_vs_severity("cifar10-c", results["suites"]["cifar10-c"], results)
    assert [ax.get_title() for ax in fig.axes] == ["noise", "blur", "weather", "digital", "extra (not in the mean)"]
    for ax, family in zip(fig.axes, ("noise", "blur", "weather", "digital", "extra"), strict=True):
        *lines, mean = ax.get_lines()
        assert [line.get_label() for line in lines] == [c.replace("_", " ") for c in SUBSETS[family]]
        assert len({line.get_color() for line in lines}) == len(lines)
        assert len({line.get_marker() for line in lines}) == len(lines)
        assert mean.get_label() == "benchmark mean" and mean.get_color() == "k"
        assert mean.get_linestyle() == "--" and mean.get_linewidth() >= 2.5
        assert list(ax.get_xticks()) == [1, 2, 3, 4, 5]


def test_reliability_diagram_leaves_out_empty_bins():
    bins = M.reliability_bins(np.linspace(0.7, 1, 300), np.ones(300))
    fig = R.plot_reliability(bins, "WRN-10-2")
    accuracy_bars = fig.axes[0].containers[0]
    assert len(accuracy_bars) == sum(c > 0 for c in bins["count"])
    assert "WRN-10-2" in fig.axes[0].get_title()


def test_the_runner_hands_the_baseline_and_display_name_to_the_report(tmp_path, monkeypatch, capsys):
    from models.weights import ModelInfo
    from tests._evaluation_data import tiny_classifier

    info = ModelInfo(name="wrn40_2", num_classes=10, dataset="digits", mean=(0.5,) * 3, std=(0.5,) * 3,
                     image_size=32, source="test", epoch=1, sha256="1" * 64,
                     model_args={"name": "wrn40_2", "num_classes": 10, "depth": 10, "width": 2})
    options = EvalOptions(data_root=str(tmp_path), inference=InferenceSettings(device="cpu", batch_size=10, workers=0),
                          generate=True, limit=20, corruptions=("gaussian_noise", "fog"), severities=(1, 2),
                          perturbations=("translate",))
    other = run_evaluation(tiny_classifier(seed=1), dataclasses.replace(info, name="allconv", model_args={}),
                           ["digits-c", "digits-p"], options)
    figures = {}
    save = R._save
    monkeypatch.setattr(R, "_save", lambda fig, path: figures.setdefault(path.name, fig) and save(fig, path))
    capsys.readouterr()
    results = run_evaluation(tiny_classifier(), info, ["digits-c", "digits-p"], dataclasses.replace(
        options, out_dir=str(tmp_path / "out"), baseline=R.perturbation_baseline(other)))
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[") and line[1].isdigit()]
    assert lines[0].startswith("[1/4] digits-c gaussian_noise s1: error ") and lines[0].endswith(" s)")
    assert lines[3].startswith("[4/4] digits-c fog s2: error ")
    assert lines[4].startswith("[1/1] digits-p translate: FP ")
    written = json.loads((tmp_path / "out" / "results.json").read_text())
    assert written["checkpoint"]["model"] == "WRN-10-2" and written["checkpoint"]["name"] == "wrn40_2"
    assert results["suites"]["digits-p"]["baseline"]["model"] == "AllConvNet"
    assert (tmp_path / "out" / "results.md").read_text().startswith("# Robustness evaluation: WRN-10-2 (digits)")
    errors = figures["digits-c_errors.png"]
    assert len(errors.axes[0].containers) == 2  # the baseline's bars beside ours
    assert "baseline: AllConvNet" in _legend(errors) and "WRN-10-2" in _legend(errors)
    assert _legend(figures["digits-p_flip.png"]) == ["baseline: AllConvNet", "WRN-10-2"]
    assert "WRN-10-2" in figures["digits-c_severity.png"]._suptitle.get_text()
