"""evaluation/compare.py and evaluate.py --compare / --group: side by side, grouped mean ± sample std over seeds,
differences only between runs that measured the same cells, partial runs marked, files written once."""

from __future__ import annotations

import json

import pytest

import evaluate
from corruptions import CORRUPTIONS, EXTRA_CORRUPTIONS
from evaluation import compare as C
from evaluation import metrics as M
from evaluation import report as R


def _run(argv: list[str]) -> int:
    return evaluate.main(evaluate.get_args_parser().parse_args(argv))


def _errors(offset: float, corruptions=CORRUPTIONS + EXTRA_CORRUPTIONS) -> dict:
    # error 0.1 * severity + offset in every cell: mean over the 15 x 5 benchmark cells = 0.3 + offset
    return {c: {s: 0.1 * s + offset for s in range(1, 6)} for c in corruptions}


def _results(clean_error: float, offset: float, nll: float = 0.3, brier: float = 0.1, dataset: str = "digits",
             corruptions=CORRUPTIONS + EXTRA_CORRUPTIONS, rms_corrupted: float = 0.2, name: str = "wrn40_2") -> dict:
    errors = _errors(offset, corruptions)
    aggregates = M.cifar_c_summary(errors)
    aggregates["per_severity"] = {str(s): v for s, v in aggregates["per_severity"].items()}
    aggregates["calibration"] = {"mean_over_cells": {"rms_calib_error_hendrycks": rms_corrupted,
                                                     "rms_calib_error": rms_corrupted},
                                 "pooled": {"rms_calib_error_hendrycks": rms_corrupted}}
    suite = f"{dataset}-c"
    source = {"kind": "generated", "seed": 0, "preset": "cifar"}
    results = R.new_results({"name": name, "model": "WRN-10-2", "dataset": dataset, "sha256": "ab" * 32},
                            {"limit": None}, {"device": "cpu"})
    results["suites"] = {
        "clean": {"kind": "clean", "cells": [], "source": {"kind": "clean"},
                  "aggregates": {"n": 500, "error": clean_error, "nll": nll, "brier": brier}},
        suite: {"kind": "corruption", "benchmark": "cifar", "source": source, "aggregates": aggregates,
                "cells": [{"corruption": c, "severity": s, "n": 500, "error": e}
                          for c, per in errors.items() for s, e in per.items()]},
        "calibration": {"kind": "calibration", "cells": [], "source": {"kind": "clean"},
                        "aggregates": {"n": 500, "rms_calib_error_hendrycks": clean_error / 2,
                                       "rms_calib_error": clean_error / 2, "nll": nll, "brier": brier}},
    }
    return results


def _write(folder, results) -> None:
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps(results))


def _row(text: str, start: str) -> list[str]:
    (line,) = [ln for ln in text.splitlines() if ln.startswith(f"| {start} |")]
    return [cell.strip() for cell in line.strip("|").split("|")]


@pytest.fixture
def seeds(tmp_path):
    """Three standard and three augmix runs, with hand-picked numbers (see the test for the arithmetic)."""
    standard = [(0.10, 0.10, 0.3000), (0.12, 0.20, 0.3010), (0.14, 0.30, 0.3050)]
    augmix = [(0.11, 0.00, 0.2500), (0.11, 0.01, 0.2510), (0.14, 0.02, 0.2530)]
    for label, runs in (("standard", standard), ("augmix", augmix)):
        for seed, (clean, offset, nll) in enumerate(runs, 1):
            _write(tmp_path / "runs" / f"{label}_s{seed}" / "eval", _results(clean, offset, nll))
    return tmp_path


def test_grouped_compare_gives_mean_sample_std_and_difference(seeds, capsys):
    out = seeds / "report"
    code = _run(["--group", f"standard={seeds}/runs/standard_s*/eval", "--group",
                 f"augmix={seeds}/runs/augmix_s*/eval", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert (out / "compare.md").read_text() == printed
    header = _row(printed, "metric")
    assert header == ["metric", "standard (n=3)", "augmix (n=3)", "augmix - standard"]
    # clean error, standard: 10, 12, 14 -> mean 12, sample std sqrt((4 + 0 + 4) / 2) = 2
    #              augmix:   11, 11, 14 -> mean 12, sample std sqrt((1 + 1 + 4) / 2) = sqrt(3) = 1.73
    # difference 0 +- sqrt(4/3 + 3/3) = 1.53
    assert _row(printed, "clean: top-1 error (%)")[1:] == ["12.00 ± 2.00", "12.00 ± 1.73", "0.00 ± 1.53"]
    # mean corruption error = 30 % + offset: standard 40, 50, 60 -> 50 +- 10; augmix 30, 31, 32 -> 31 +- 1;
    # difference -19 +- sqrt(100/3 + 1/3) = 5.80, more than 2 standard errors: starred
    row = _row(printed, "digits-c: mean corruption error, 15 corruptions x 5 severities (%)")
    assert row[1:] == ["50.00 ± 10.00", "31.00 ± 1.00", "-19.00 ± 5.80*"]
    # NLL with 4 decimals: standard (0.3 + 0.301 + 0.305) / 3 = 0.3020, std sqrt((4e-6 + 1e-6 + 9e-6) / 2) = 0.0026
    assert _row(printed, "clean: NLL (nats)")[1:3] == ["0.3020 ± 0.0026", "0.2513 ± 0.0015"]
    # per corruption: fog, mean over severities = 0.3 + offset, the same arithmetic as the mean corruption error
    assert _row(printed, "fog")[1:] == ["50.00 ± 10.00", "31.00 ± 1.00", "-19.00 ± 5.80*"]
    assert _row(printed, "saturate (extra, not in the mean)")[1] == "50.00 ± 10.00"
    assert "SAMPLE standard deviation (ddof=1" in printed
    assert "RMS calibration error on corrupted data, paper-compatible, mean over cells (%)" in printed
    data = json.loads((out / "compare.json").read_text())
    assert data["schema"] == C.COMPARE_SCHEMA and data["grouped"] is True
    assert [(g["label"], g["n"]) for g in data["groups"]] == [("standard", 3), ("augmix", 3)]
    clean = next(m for m in data["metrics"] if m["key"] == "clean/error")
    assert clean["groups"]["standard"]["values"] == pytest.approx([10.0, 12.0, 14.0])
    assert clean["groups"]["standard"]["std"] == pytest.approx(2.0)
    png = out / "compare_digits-c.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    # never replaces files without --overwrite; with it, it does
    before = (out / "compare.md").read_text()
    (out / "compare.md").write_text("a user's notes")
    assert _run(["--group", f"standard={seeds}/runs/standard_s*/eval", "--out", str(out)]) == 2
    assert "refusing to replace" in capsys.readouterr().err and (out / "compare.md").read_text() == "a user's notes"
    assert _run(["--group", f"standard={seeds}/runs/standard_s*/eval", "--group",
                 f"augmix={seeds}/runs/augmix_s*/eval", "--out", str(out), "--overwrite"]) == 0
    assert (out / "compare.md").read_text() == before


def test_labels_group_compare_runs_and_a_wrong_count_names_both(seeds, capsys):
    runs = [str(seeds / "runs" / f"{label}_s{s}" / "eval") for label in ("standard", "augmix") for s in (1, 2)]
    assert _run(["--compare", *runs, "--labels", "std,std,aug,aug"]) == 0
    row = _row(capsys.readouterr().out, "clean: top-1 error (%)")
    # standard s1, s2: 10, 12 -> 11 +- 1.41; augmix s1, s2: 11, 11 -> 11 +- 0
    assert row[1:3] == ["11.00 ± 1.41", "11.00 ± 0.00"]
    assert _run(["--compare", *runs, "--labels", "std,aug"]) == 2
    err = capsys.readouterr().err
    assert "--labels gives 2 label(s) for 4 run(s)" in err
    assert _run(["--group", f"augmix={seeds}/nowhere_*"]) == 2
    assert f"--group augmix={seeds}/nowhere_*: the pattern matches no file or folder" in capsys.readouterr().err
    assert _run(["--group", "augmix"]) == 2
    assert "expected NAME=GLOB" in capsys.readouterr().err


def test_partial_run_is_marked_and_not_differenced_with_a_full_one():
    full = _results(0.10, 0.10)
    partial = _results(0.10, 0.00, corruptions=CORRUPTIONS[:3])
    text = C.compare_results([full, partial], ["full", "partial"])
    row = _row(text, "digits-c: mean corruption error, 15 corruptions x 5 severities (%)")
    assert row[1] == "40.00" and row[2] == "30.00 (partial)"
    assert row[3] == "n/a [1]"
    assert ("[1] partial - full not computed: different cells: full: 75 cells (15 of 15 benchmark corruptions); "
            "partial: 15 cells (3 of 15 benchmark corruptions)") in text
    assert "PARTIAL: digits-c: 3 of 15 benchmark corruptions" in text
    # the corrupted-data calibration is averaged over other cells too: refused the same way
    assert _row(text, "digits-c: RMS calibration error on corrupted data, paper-compatible, mean over cells (%)")[3] \
        == "n/a [1]"
    # per corruption: gaussian_noise was measured on the same 5 cells by both, so it is differenced
    assert _row(text, "gaussian_noise")[1:] == ["40.00", "30.00", "-10.00"]
    assert _row(text, "fog")[1:] == ["40.00", "-", "-"]
    assert _row(text, "clean: top-1 error (%)")[1:] == ["10.00", "10.00", "0.00"]


def test_runs_that_measured_different_things_are_neither_averaged_nor_differenced():
    digits = _results(0.10, 0.10)
    other_data = _results(0.10, 0.10)
    other_data["suites"]["digits-c"]["source"]["seed"] = 5  # another generated set
    cifar = _results(0.10, 0.10, dataset="cifar10")
    text = C.compare_results([digits, other_data, digits, cifar], ["a", "a", "b", "b"])
    # group a mixes two generated sets: its -C numbers are not averaged; group b mixes two datasets: nothing is
    assert _row(text, "digits-c: mean corruption error, 15 corruptions x 5 severities (%)")[1:] == \
        ["n/a [2]", "n/a [3]", "-"]
    assert ("[2] a: its runs measured different things, not averaged: different data: run 1: generated (seed 0, "
            "preset cifar); run 2: generated (seed 5, preset cifar)") in text
    assert "[3] b: 1 of 2 runs lack this number (run 4)" in text
    assert _row(text, "clean: top-1 error (%)")[1:] == ["10.00 ± 0.00", "n/a [1]", "-"]
    assert "[1] b: its runs measured different things, not averaged: different dataset: run 3: digits; run 4: " \
        "cifar10" in text


def test_side_by_side_without_grouping_keeps_the_difference_column():
    standard = _results(0.10, 0.10, nll=0.31234, brier=0.07)
    augmix = _results(0.10, 0.00, nll=0.30001, brier=0.06)
    text = C.compare_results([standard, augmix], ["standard", "augmix"])
    assert text.splitlines()[0] == "| metric | standard | augmix | difference |"
    # mean corruption error 40 % vs 30 %: difference -10
    assert _row(text, "digits-c: mean corruption error, 15 corruptions x 5 severities (%)")[1:] == \
        ["40.00", "30.00", "-10.00"]
    assert _row(text, "clean: NLL (nats)")[1:] == ["0.3123", "0.3000", "-0.0123"]
    assert _row(text, "clean: Brier score")[1:] == ["0.0700", "0.0600", "-0.0100"]
    # without labels, runs of the same model stay apart (numbered), never grouped by accident
    assert C.compare_results([standard, augmix]).splitlines()[0] == \
        "| metric | wrn40_2#1 | wrn40_2#2 | difference |"
    three = C.compare_results([standard, augmix, augmix], ["s", "a", "b"])
    assert three.splitlines()[0] == "| metric | s | a | b |"
    with pytest.raises(ValueError, match=r"2 label\(s\) for 3 run\(s\)"):
        C.compare_results([standard, augmix, augmix], ["s", "a"])
