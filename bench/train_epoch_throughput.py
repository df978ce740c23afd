"""How fast is a whole training epoch, and how long would the paper's 100-epoch recipe take? Training images/s of
``train.py`` (the path users run) on a CIFAR-shaped synthetic dataset, and the projected time of 100 epochs.

    python bench/train_epoch_throughput.py [--quick] [--device cpu|cuda] [--images 50000] [--epochs 2]

The recipe is configs/cifar10_wrn.yaml (WRN-40-2, AugMix + JSD: 3 views per image, batch 128, tensor backend with
the data resident on the device; bf16 autocast on CUDA) on --images synthetic 32x32 training images written once in
CIFAR-10's on-disk format (loaders/synthetic.py). The figure is the last epoch's images/s as train.py logs it
(unique training images per second, the first epoch being the warm-up: cuDNN autotuning, allocator growth); the
projection is 50,000 x 100 / that rate, training only (no per-epoch test pass, no evaluation).

A good result on one modern GPU: the 100-epoch CIFAR recipe within a few hours, i.e. several thousand images/s.
Last line: ``BENCH {json}``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from loaders.synthetic import write_cifar_pickles  # noqa: E402
from runtime.environment import environment_record  # noqa: E402

CIFAR_TRAIN_IMAGES = 50_000
RECIPE_EPOCHS = 100


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], add_help=add_help)
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 256 images, WRN-10-2, batch 32, 2 epochs (default off)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                        help="train.device (default: cuda if available, else cpu)")
    parser.add_argument("--images", type=int, default=CIFAR_TRAIN_IMAGES,
                        help=f"synthetic training images (default {CIFAR_TRAIN_IMAGES:,}, CIFAR-10's)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs; the last one is timed (default 2)")
    parser.add_argument("--depth", type=int, default=40, help="WRN depth (default 40)")
    parser.add_argument("--batch", type=int, default=128, help="unique images per step (default 128)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds before train.py is stopped (1800)")
    return parser


def train_images_per_s(args: argparse.Namespace, data_root: Path, out_dir: Path) -> list[dict]:
    """Run train.py on the synthetic data; returns its per-epoch records (metrics.jsonl)."""
    overrides = [f"data.root={data_root}", f"train.out_dir={out_dir}", f"train.epochs={args.epochs}",
                 f"train.batch_size={args.batch}", f"train.device={args.device}", f"model.depth={args.depth}",
                 "data.limit_test=256", "eval.suites=[]", "train.image_grid=0", "train.log_every=100000",
                 f"train.eval_every={args.epochs}"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, str(ROOT / "train.py"), "--config", "cifar10_wrn.yaml", *overrides],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=args.timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"train.py failed (exit {proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]


def main(args: argparse.Namespace) -> dict:
    if args.quick:
        args.images, args.depth, args.batch, args.epochs = min(args.images, 256), 10, 32, 2
    with tempfile.TemporaryDirectory() as tmp:
        write_cifar_pickles(Path(tmp) / "data", "cifar10", num_train=args.images, num_test=256)
        records = train_images_per_s(args, Path(tmp) / "data", Path(tmp) / "run")
    rate = records[-1]["images_per_s"]
    projected_s = CIFAR_TRAIN_IMAGES * RECIPE_EPOCHS / rate
    env = environment_record(args.device, model=f"wrn40_2 depth={args.depth} width=2", batch=args.batch,
                             images=args.images, recipe="cifar10_wrn.yaml, AugMix + JSD")
    print(f"# Training epoch throughput: WRN-{args.depth}-2 AugMix + JSD, batch {args.batch}, {args.images:,} "
          f"synthetic images, {args.device}\n\nEnvironment: " + ", ".join(f"{k}={v}" for k, v in env.items()) + "\n")
    print("| epoch | images/s | seconds |\n|---:|---:|---:|")
    for record in records:
        print(f"| {record['epoch']} | {record['images_per_s']:.0f} | {record['epoch_s']:.1f} |")
    print(f"\nprojected {RECIPE_EPOCHS}-epoch CIFAR recipe ({CIFAR_TRAIN_IMAGES:,} images/epoch), training only: "
          f"{projected_s / 3600:.2f} h at {rate:.0f} images/s")
    summary = {"bench": "train_epoch_throughput", "images_per_s": rate, "epochs": [r["images_per_s"] for r in records],
               "projected_100_epochs_s": projected_s, "depth": args.depth, "batch": args.batch,
               "images": args.images, "env": env}
    print("BENCH " + json.dumps(summary))
    return summary


if __name__ == "__main__":
    main(get_args_parser().parse_args())
