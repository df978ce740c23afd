"""What does building the AugMix views inside the training step cost? AugMix + JSD step time over the same step on
pre-made view tensors.

    python bench/train_step_overhead.py [--quick] [--device cpu|cuda] [--batch N] [--model wrn40_2 --depth D
        --width K] [--amp none|bf16] [--compile] [--threads N] [--save]

Both steps run the same model, loss (``augment.jsd.AugMixLoss``: CE on the clean view + 12 JSD), Nesterov SGD step
and batch of B uint8 32x32 images with labels (random: --synthetic is implied, the cost does not depend on the
content). Both run training's own code: ``training.loop.ViewMaker`` builds the [clean; aug1; aug2] batch (tensor
backend, ``AugMix.jsd_views``, every sample its own chains, seeded per step as in a run) and
``training.loop.train_step`` takes the step. "ours" builds the views inside the step; "pre-made" feeds a view
tensor made once before timing, which is the cost of the step with augmentation done elsewhere (e.g. by DataLoader
workers). Defaults: WRN-16-2 (wrn40_2 with depth 16,
width 2), batch 128 (384 images per forward) on CPU; WRN-40-2, batch 128, bf16 autocast and channels_last on CUDA.

A good result: ratio ours / pre-made below 1.15. Steps alternate between the two variants after a warm-up, so both
see the same machine load; median and spread (min-max) over --steps timed steps of each; CUDA events on a GPU.
Last line: ``BENCH {json}``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from augment.augmix import AugMix, normalize  # noqa: E402
from augment.jsd import AugMixLoss  # noqa: E402
from models import build_model  # noqa: E402
from runtime.environment import environment_record, torch_version_tag  # noqa: E402
from runtime.files import atomic_write_text  # noqa: E402
from training.loop import Stepper, ViewMaker, train_step  # noqa: E402
from training.optim import build_optimizer, build_scheduler  # noqa: E402

MEAN = STD = (0.5, 0.5, 0.5)  # the CIFAR configs' normalisation


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], add_help=add_help)
    parser.add_argument("--quick", action="store_true", help="smoke run: batch 16, 3 timed steps (default off)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                        help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--batch", type=int, default=128, help="unique images per step (default 128)")
    parser.add_argument("--model", default="wrn40_2", help="a models.MODELS name (default wrn40_2)")
    parser.add_argument("--depth", type=int, default=None, help="model depth (default 16 on CPU, 40 on CUDA)")
    parser.add_argument("--width", type=int, default=2, help="model width (default 2)")
    parser.add_argument("--amp", choices=("none", "bf16"), default=None,
                        help="autocast dtype (default bf16 on CUDA, none on CPU)")
    parser.add_argument("--compile", action="store_true", help="AugMix(compile=True) (default off)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps of each variant (default 10)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps of each variant first (default 3)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(),
                        help=f"intra-op threads on CPU (default {torch.get_num_threads()})")
    parser.add_argument("--save", action="store_true", help="write the table to bench/results/ (default off)")
    return parser


def make_stepper(model: torch.nn.Module, args: argparse.Namespace) -> Stepper:
    """Training's step state: AugMixLoss (CE + 12 JSD), Nesterov SGD with a cosine schedule, autocast as asked."""
    device = torch.device(args.device)
    # lr 0.01, not 0.1: the timing does not depend on it, and random labels must never diverge (train_step stops
    # on a non-finite loss).
    optimizer = build_optimizer(model, 0.01, 0.9, True, 5e-4, args.batch, False)
    scheduler = build_scheduler(optimizer, "cosine", 1, args.warmup + args.steps, 1e-6)
    scaler = torch.amp.GradScaler(device.type, enabled=False)
    amp = torch.bfloat16 if args.amp == "bf16" else None
    return Stepper(model, AugMixLoss(), optimizer, scheduler, scaler, amp, channels_last=device.type == "cuda")


def time_step(run: Callable[[], None], device: torch.device) -> float:
    if device.type != "cuda":
        start = time.perf_counter()
        run()
        return time.perf_counter() - start
    begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    begin.record()
    run()
    end.record()
    end.synchronize()
    return begin.elapsed_time(end) / 1000


def main(args: argparse.Namespace) -> dict:
    device = torch.device(args.device)
    if args.quick:
        args.batch, args.steps, args.warmup = min(args.batch, 16), 3, 1
    args.depth = args.depth or (40 if device.type == "cuda" else 16)
    args.amp = args.amp or ("bf16" if device.type == "cuda" else "none")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build_model(args.model, 10, depth=args.depth, width=args.width).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    stepper = make_stepper(model, args)
    generator = torch.Generator(device).manual_seed(0)
    images = torch.randint(0, 256, (args.batch, 3, 32, 32), dtype=torch.uint8, generator=generator, device=device)
    labels = torch.randint(0, 10, (args.batch,), generator=generator, device=device)
    augmix = AugMix(severity=3, mean=MEAN, std=STD, compile=args.compile)
    views = ViewMaker("tensor", "augmix", True, augmix, lambda x: normalize(x, MEAN, STD), device, seed=0)
    counter = iter(range(10**9))  # a new step index per call: fresh draws, as in training
    make_views = lambda: views((images, labels), epoch=0, step=next(counter))[0]
    premade = make_views()
    variants = {
        "ours": lambda: train_step(stepper, make_views(), labels),
        "pre-made": lambda: train_step(stepper, premade, labels),
        "views only": make_views,
    }
    seconds = {name: [] for name in variants}
    for round_ in range(args.warmup + args.steps):
        for name, run in variants.items():  # interleaved: both variants see the same load
            elapsed = time_step(run, device)
            if round_ >= args.warmup:
                seconds[name].append(elapsed)
    return report(args, seconds)


def report(args: argparse.Namespace, seconds: dict[str, list[float]]) -> dict:
    device = torch.device(args.device)
    median = {name: statistics.median(values) for name, values in seconds.items()}
    ratio = median["ours"] / median["pre-made"]
    env = environment_record(device, model=f"{args.model} depth={args.depth} width={args.width}", batch=args.batch,
                             forward_batch=3 * args.batch, amp=args.amp, channels_last=device.type == "cuda",
                             augmix=f"tensor backend, severity 3, compile={args.compile}")
    lines = ["# Training-step overhead of AugMix + JSD", "",
             "Environment: " + ", ".join(f"{k}={v}" for k, v in env.items()), "",
             "| step | median ms | min-max ms | / pre-made |", "|---|---:|---:|---:|"]
    for name, values in seconds.items():
        lines.append(f"| {name} | {1e3 * median[name]:.1f} | {1e3 * min(values):.1f}-{1e3 * max(values):.1f} | "
                     f"{median[name] / median['pre-made']:.3f} |")
    table = "\n".join(lines) + f"\n\nRatio ours / pre-made: {ratio:.3f} (target < 1.15)\n"
    print(table)
    if args.save:
        tag = "cpu" if device.type == "cpu" else torch.cuda.get_device_name(device).split()[-1].lower()
        name = f"train_step_overhead-{tag}-{torch_version_tag()}.md"
        atomic_write_text(Path(__file__).resolve().parent / "results" / name, table)
    result = {"bench": "train_step_overhead", "env": env, "ratio": ratio,
              "median_s": median, "min_s": {k: min(v) for k, v in seconds.items()},
              "max_s": {k: max(v) for k, v in seconds.items()}}
    print("BENCH " + json.dumps(result))
    return result


if __name__ == "__main__":
    from runtime.allocator import retain_freed_memory

    retain_freed_memory()  # large temporaries reuse freed heap memory instead of fresh pages (runtime/allocator.py)
    main(get_args_parser().parse_args())
