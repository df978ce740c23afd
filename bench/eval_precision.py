"""How much does bf16 autocast change the evaluator's numbers? The same checkpoint evaluated twice on the same data,
once in float32 (the default, as the reference evaluators) and once with ``--amp bf16``.

    python bench/eval_precision.py --ckpt runs/quickstart/last.pt [--quick] [--device cpu|cuda] [--batch-size N]

Suites: clean, the generated -C suite of the checkpoint's dataset (digits-c for the quickstart: all 19 corruptions x
5 severities) and calibration. Reported: cells whose error differs and by how much (percentage points), predictions
whose correctness flips, the mean corruption error, per-cell NLL, and the calibration errors. bf16 autocast runs on
the CPU too, so the comparison needs no GPU. --quick: 3 corruptions x 2 severities. Last line: ``BENCH {json}``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evaluation import evaluate  # noqa: E402
from evaluation.suites import DATASET_SUITES  # noqa: E402
from models.weights import load_model  # noqa: E402
from runtime.devices import resolve_device  # noqa: E402

QUICK = {"corruptions": ("gaussian_noise", "fog", "contrast"), "severities": (1, 5)}


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], add_help=add_help)
    parser.add_argument("--ckpt", default="runs/quickstart/last.pt", help="checkpoint (default: the quickstart's)")
    parser.add_argument("--quick", action="store_true", help="3 corruptions x 2 severities instead of 19 x 5")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    parser.add_argument("--batch-size", type=int, default=500, help="images per forward pass (default 500)")
    parser.add_argument("--data-root", default=None, help="datasets (default $AUGMIX_DATA_ROOT or ./data)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated -C set (default 0)")
    return parser


def _run(model, info, suites, amp: str, args, out: Path) -> tuple[dict, float]:
    extra = QUICK if args.quick else {}
    start = time.perf_counter()
    results = evaluate(model, suites, model_info=info, device=args.device, data_root=args.data_root, out_dir=out,
                       generate=True, seed=args.seed, amp=amp, batch_size=args.batch_size, workers=0, plots=False,
                       **extra)
    return results, time.perf_counter() - start


def _correct(out: Path, suite: str, cell: str) -> np.ndarray:
    with np.load(out / "cells" / suite / f"{cell}.npz") as npz:
        return npz["correct"]


def compare(fp32: dict, bf16: dict, out32: Path, out16: Path, c_suite: str) -> dict:
    """Differences between the two runs, cell by cell and in the aggregates."""
    cells32 = fp32["suites"][c_suite]["cells"]
    cells16 = bf16["suites"][c_suite]["cells"]
    diffs, flips, nll = [], 0, []
    for a, b in zip(cells32, cells16, strict=True):
        name = f"{a['corruption']}-{a['severity']}"
        diffs.append(abs(a["error"] - b["error"]))
        flips += int((_correct(out32, c_suite, name) != _correct(out16, c_suite, name)).sum())
        nll.append(abs(a["nll"] - b["nll"]))
    images = sum(c["n"] for c in cells32)
    clean32, clean16 = fp32["suites"]["clean"]["aggregates"], bf16["suites"]["clean"]["aggregates"]
    clean_flips = int((_correct(out32, "clean", "clean") != _correct(out16, "clean", "clean")).sum())
    cal32, cal16 = fp32["suites"]["calibration"]["aggregates"], bf16["suites"]["calibration"]["aggregates"]
    agg32, agg16 = fp32["suites"][c_suite]["aggregates"], bf16["suites"][c_suite]["aggregates"]
    mean_key = next(k for k in ("corruption_error", "mce") if agg32.get(k) is not None)
    return {
        "cells": len(cells32), "cells_with_different_error": sum(d > 0 for d in diffs),
        "max_cell_error_diff_pp": 100 * max(diffs), "mean_cell_error_diff_pp": 100 * float(np.mean(diffs)),
        "c_predictions_flipped": flips, "c_images": images,
        "max_cell_nll_diff": max(nll), "mean_cell_nll_diff": float(np.mean(nll)),
        "c_mean_error_fp32": agg32[mean_key], "c_mean_error_bf16": agg16[mean_key], "c_mean_key": mean_key,
        "clean_error_fp32": clean32["error"], "clean_error_bf16": clean16["error"],
        "clean_predictions_flipped": clean_flips, "clean_nll_fp32": clean32["nll"], "clean_nll_bf16": clean16["nll"],
        **{f"calibration_{k}_{tag}": cal[k] for k in ("rms_calib_error_hendrycks", "rms_calib_error", "ece_15")
           for tag, cal in (("fp32", cal32), ("bf16", cal16))},
    }


def main(args: argparse.Namespace) -> dict:
    device = str(resolve_device(args.device, "--device"))
    args.device = device
    model, info = load_model(args.ckpt, map_location=device)
    c_suite = next(s for s in DATASET_SUITES[info.dataset] if s.endswith("-c"))
    suites = ["clean", c_suite, "calibration"]
    with tempfile.TemporaryDirectory() as tmp:
        out32, out16 = Path(tmp) / "fp32", Path(tmp) / "bf16"
        fp32, t32 = _run(model, info, suites, "off", args, out32)
        bf16, t16 = _run(model, info, suites, "bf16", args, out16)
        figures = compare(fp32, bf16, out32, out16, c_suite)
    figures.update(seconds_fp32=t32, seconds_bf16=t16, device=device, checkpoint=str(args.ckpt), suite=c_suite,
                   quick=args.quick, torch=torch.__version__, python=platform.python_version(),
                   precision_fp32=fp32["config"]["precision"]["summary"],
                   precision_bf16=bf16["config"]["precision"]["summary"])
    f = figures
    print(f"\n{c_suite}: {f['cells_with_different_error']} of {f['cells']} cells differ in error; max "
          f"{f['max_cell_error_diff_pp']:.2f} pp, mean {f['mean_cell_error_diff_pp']:.3f} pp; "
          f"{f['c_predictions_flipped']} of {f['c_images']} predictions change correctness")
    print(f"{c_suite} {f['c_mean_key']}: fp32 {100 * f['c_mean_error_fp32']:.3f} %, bf16 "
          f"{100 * f['c_mean_error_bf16']:.3f} %; per-cell NLL diff max {f['max_cell_nll_diff']:.4f}, mean "
          f"{f['mean_cell_nll_diff']:.5f}")
    print(f"clean error: fp32 {100 * f['clean_error_fp32']:.2f} %, bf16 {100 * f['clean_error_bf16']:.2f} % "
          f"({f['clean_predictions_flipped']} predictions flipped); NLL {f['clean_nll_fp32']:.4f} vs "
          f"{f['clean_nll_bf16']:.4f}")
    for key in ("rms_calib_error_hendrycks", "rms_calib_error", "ece_15"):
        print(f"calibration {key}: fp32 {100 * f[f'calibration_{key}_fp32']:.3f} %, bf16 "
              f"{100 * f[f'calibration_{key}_bf16']:.3f} %")
    print(f"time: fp32 {t32:.1f} s, bf16 {t16:.1f} s on {device}")
    print("BENCH " + json.dumps(figures, sort_keys=True))
    return figures


if __name__ == "__main__":
    main(get_args_parser().parse_args())
