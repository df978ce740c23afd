"""How well does training scale out with torchrun + DDP? Training images/s of 1 process against N processes (gloo
on CPU, NCCL on GPUs), each process with the same thread count, on the real path users run: ``train.py``.

    python bench/ddp_scaling.py [--quick] [--ranks 2] [--threads 1] [--images 512] [--batch 64] [--device cpu]
                                [--measure train,evaluate] [--eval-images 500]

Each variant trains WRN-16-2 (wrn40_2 with depth 16, width 2) with AugMix + JSD on a synthetic CIFAR-10 of --images
images (written once in the real on-disk format) for 2 epochs at the same global batch; the figure is the second
epoch's images/s as train.py logs it (summed over ranks, the first epoch is the warm-up). Variants alternate over
--repeats rounds so both see the same machine load; median and spread (min-max). A good result on CPU with one
thread per process: N ranks reach close to N x the images/s of one process while the machine has N free cores.

Evaluation scales out by splitting a suite's cells across the ranks (evaluation/sharding.py). The "evaluate"
measurement runs ``evaluate.py`` on a random WRN-16-2 checkpoint over a generated CIFAR-10-C of --eval-images test
images (4 corruptions x 5 severities = 20 cells; --quick: x 2 severities, 8 cells, 128 images); the figure is cells
computed over results.json's run time (start-up excluded). A good result: N ranks approach N x the cells/s of one
process while the cells outnumber the ranks and N cores are free. Last line: ``BENCH {json}``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from loaders.synthetic import write_cifar_pickles  # noqa: E402
from runtime.environment import environment_record  # noqa: E402


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], add_help=add_help)
    parser.add_argument("--quick", action="store_true", help="smoke run: 128 images, batch 32, 1 round (default off)")
    parser.add_argument("--ranks", type=int, default=2, help="processes of the scaled-out variant (default 2)")
    parser.add_argument("--threads", type=int, default=1, help="OMP/torch threads per process (default 1)")
    parser.add_argument("--images", type=int, default=512, help="training images (default 512)")
    parser.add_argument("--batch", type=int, default=64, help="global batch (default 64)")
    parser.add_argument("--repeats", type=int, default=2, help="rounds of both variants (default 2)")
    parser.add_argument("--device", default="cpu", help="train.device: cpu, or cuda for NCCL (default cpu)")
    parser.add_argument("--measure", default="train,evaluate", help="comma list of measurements: train, evaluate "
                        "(default both)")
    parser.add_argument("--eval-images", type=int, default=500, help="test images per evaluation cell (default 500)")
    return parser


def _launcher(ranks: int) -> list[str]:
    """Plain python for one process, torchrun for several."""
    return [sys.executable] if ranks == 1 else [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                                "--nproc_per_node", str(ranks)]


def train_images_per_s(ranks: int, data_root: Path, out_dir: Path, args: argparse.Namespace) -> float:
    """Second-epoch training images/s of ``train.py`` on ``ranks`` processes (1 = plain python, no torchrun)."""
    launcher = _launcher(ranks)
    overrides = [f"data.root={data_root}", f"train.out_dir={out_dir}", "train.epochs=2",
                 f"train.batch_size={args.batch}", f"train.device={args.device}", "data.limit_test=64",
                 "model.depth=16", "model.width=2", "eval.suites=[]", "train.image_grid=0", "train.log_every=1000"]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([*launcher, str(ROOT / "train.py"), "--config", "cifar10_wrn.yaml", *overrides], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"train.py on {ranks} rank(s) failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    records = [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]
    return records[-1]["images_per_s"]


EVAL_CORRUPTIONS = "gaussian_noise,contrast,fog,pixelate"  # cheap to generate on a CPU, so the model's share shows


def eval_cells_per_s(ranks: int, data_root: Path, out_dir: Path, args: argparse.Namespace) -> float:
    """Evaluation cells/s of ``evaluate.py`` on ``ranks`` processes (1 = plain python, no torchrun): generated
    CIFAR-10-C cells split across the ranks, counted over the run time results.json records."""
    from models import build_model
    from training.checkpoint import save_checkpoint

    torch.manual_seed(0)
    model_args = {"name": "wrn40_2", "num_classes": 10, "depth": 16, "width": 2}
    out_dir.mkdir(parents=True)
    ckpt = out_dir / "wrn16_2.pt"
    save_checkpoint(ckpt, model_args=model_args, model=build_model(**model_args).state_dict(),
                    normalization={"mean": [0.5] * 3, "std": [0.5] * 3}, dataset="cifar10", image_size=32, epoch=1,
                    global_step=1, config={"model": model_args}, metrics={})
    severities = "1,2" if args.quick else "1,2,3,4,5"
    cmd = [*_launcher(ranks), str(ROOT / "evaluate.py"), "--ckpt", str(ckpt), "--suite", "cifar10-c", "--generate",
           "--corruptions", EVAL_CORRUPTIONS, "--severities", severities, "--data-root", str(data_root),
           "--out", str(out_dir / "eval"), "--device", args.device, "--batch-size", "100", "--workers", "0",
           "--no-plots"]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"evaluate.py on {ranks} rank(s) failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    results = json.loads((out_dir / "eval" / "results.json").read_text())
    cells = results["suites"]["cifar10-c"]["timing"]["cells_computed"]
    return cells / results["timing"]["seconds"]


# One entry per question this benchmark answers: name -> function(ranks, data_root, scratch, args) -> items/s.
MEASUREMENTS = {"train": train_images_per_s, "evaluate": eval_cells_per_s}
UNITS = {"train": "images/s", "evaluate": "cells/s"}


def main(args: argparse.Namespace) -> dict:
    if args.quick:
        args.images, args.batch, args.repeats, args.eval_images = 128, 32, 1, 128
    unknown = set(args.measure.split(",")) - set(MEASUREMENTS)
    if unknown:
        raise SystemExit(f"--measure: unknown {', '.join(sorted(unknown))}; valid: {', '.join(MEASUREMENTS)}")
    if args.batch % args.ranks:
        raise SystemExit(f"--batch {args.batch} must be a multiple of --ranks {args.ranks} (the global batch splits)")
    torch.set_num_threads(args.threads)
    load_start = os.getloadavg()[0]
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        data_root = Path(tmp) / "data"
        write_cifar_pickles(data_root, "cifar10", num_train=args.images, num_test=max(64, args.eval_images))
        for name, measure in MEASUREMENTS.items():
            if name not in args.measure.split(","):
                continue
            rates: dict[int, list[float]] = {1: [], args.ranks: []}
            for round_ in range(args.repeats):
                for ranks in rates:
                    rates[ranks].append(measure(ranks, data_root, Path(tmp) / f"{name}-{ranks}-{round_}", args))
            results[name] = {str(r): {"median": statistics.median(v), "min": min(v), "max": max(v)}
                             for r, v in rates.items()}
    env = environment_record(args.device, peer="1 process", load_avg_start=load_start)
    print(f"DDP scaling on {env['cpu']} ({env['cores']} cores, load {load_start:.1f} at start), torch "
          f"{env['torch']}, {args.threads} thread(s) per process, WRN-16-2 AugMix+JSD, global batch {args.batch}, "
          f"{args.images} images; evaluation: {args.eval_images} images per cell; {args.repeats} round(s)\n")
    print(f"| measurement | 1 process | {args.ranks} ranks | speed-up |\n|---|---|---|---|")
    for name, by_ranks in results.items():
        one, many = by_ranks["1"], by_ranks[str(args.ranks)]
        print(f"| {name} {UNITS[name]} | {one['median']:.2f} ({one['min']:.2f}-{one['max']:.2f}) | "
              f"{many['median']:.2f} ({many['min']:.2f}-{many['max']:.2f}) | {many['median'] / one['median']:.2f}x |")
    summary = {"bench": "ddp_scaling", "ranks": args.ranks, "threads": args.threads, "batch": args.batch,
               "images": args.images, "eval_images": args.eval_images, "results": results, "environment": env}
    print("BENCH " + json.dumps(summary))
    return summary


if __name__ == "__main__":
    main(get_args_parser().parse_args())
