"""How many AugMix views per second: the official-style PIL backend, torchvision's AugMix, and our batched tensor one?

    python bench/augmix_throughput.py [--quick] [--device cpu|cuda] [--synthetic] [--threads N] [--compile] [--save]

Same images for every backend (scikit-image photographs resized to 32 and 224 px, or random ones with --synthetic),
severity 3 / 1 at 32 / 224 px, width 3, depth -1, alpha 1, the paper's 9 ops, mean = std = 0.5. The PIL backend
(``AugMixPIL``, one image per call, as in a DataLoader worker) and torchvision's ``transforms.AugMix`` on PIL
images (then ToTensor + Normalize) run on one core. Ours (``augment.AugMix``) runs on whole batches on --device
with --threads intra-op threads on CPU; "per core" divides its rate by that thread count. On CUDA, ours is timed
with CUDA events after a warm-up and "per core" is not meaningful (the ratio uses the whole GPU).

A good result: ours per core >= 10x the PIL backend per core at 32 px on a CPU, and far above both on a GPU
(every sample still draws its own chain, unlike torchvision's one chain per batch). Median and spread (min-max)
over --repeats timed rounds, each backend once per round (interleaved, so all see the same machine load), after a
warm-up round. Last line: ``BENCH {json}``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import skimage.data
import torch
from PIL import Image
from torchvision import transforms

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from augment.augmix import AugMix  # noqa: E402
from augment.pil_reference import AugMixPIL  # noqa: E402
from runtime.environment import environment_record, torch_version_tag  # noqa: E402
from runtime.files import atomic_write_text  # noqa: E402

SEVERITY = {32: 3, 224: 1}  # the official CIFAR and ImageNet scripts' severities
MEAN = STD = (0.5, 0.5, 0.5)


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], add_help=add_help)
    parser.add_argument("--quick", action="store_true", help="smoke run: few views, 2 repeats (default off)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                        help="device for our backend (default: cuda if available, else cpu)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 224], help="image sides (default 32 224)")
    parser.add_argument("--batch", type=int, default=None,
                        help="images per call of ours (default 256 at 32 px: the two JSD views of a batch of 128; "
                             "32 at 224 px; 4x / 8x on CUDA)")
    parser.add_argument("--pil-views", type=int, default=None,
                        help="views per timed run of the per-image backends (default 1000 at 32 px, 60 at 224 px)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each backend (default 5)")
    parser.add_argument("--threads", type=int, default=1,
                        help="intra-op threads for ours on CPU (default 1; per core divides by it)")
    parser.add_argument("--compile", action="store_true", help="also time ours with compile=True (default off)")
    parser.add_argument("--synthetic", action="store_true", help="random images instead of photographs")
    parser.add_argument("--save", action="store_true", help="write the table to bench/results/ (default off)")
    return parser


def source_images(size: int, count: int, synthetic: bool) -> np.ndarray:
    """(count, size, size, 3) uint8: photographs from scikit-image (cycled), or random images with ``synthetic``."""
    if synthetic:
        arrays = list(np.random.default_rng(0).integers(0, 256, (4, size, size, 3), dtype=np.uint8))
    else:
        arrays = []
        for name in ("astronaut", "chelsea", "coffee", "rocket"):
            arr = getattr(skimage.data, name)()
            side = min(arr.shape[:2])
            arrays.append(np.asarray(Image.fromarray(arr[:side, :side]).resize((size, size), Image.BILINEAR)))
    return np.stack([arrays[i % len(arrays)] for i in range(count)])


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_once(run: Callable[[], None], device: torch.device) -> float:
    """Seconds for one run: CUDA events on a GPU, wall clock otherwise."""
    if device.type != "cuda":
        begin = time.perf_counter()
        run()
        return time.perf_counter() - begin
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    run()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / 1000


def per_image_runner(kind: str, pictures: list[Image.Image], severity: int) -> Callable[[], None]:
    """One timed run of a per-image backend over ``pictures``: official-style PIL, or torchvision's AugMix."""
    if kind == "pil":
        backend, rng = AugMixPIL(severity=severity, mean=MEAN, std=STD), np.random.RandomState(0)
        return lambda: [backend(p, rng) for p in pictures]
    augment = transforms.AugMix(severity=severity, mixture_width=3, chain_depth=-1, alpha=1.0, all_ops=False)
    finish = transforms.Compose([transforms.ToTensor(), transforms.Normalize(MEAN, STD)])
    return lambda: [finish(augment(p)) for p in pictures]


def measure(args: argparse.Namespace, size: int) -> list[dict]:
    """Time every backend at one image size. Runs are interleaved (one of each per round, after a warm-up round),
    so that all backends see the same machine load."""
    device = torch.device(args.device)
    on_gpu = device.type == "cuda"
    batch = args.batch or (256 * (4 if on_gpu else 1) if size <= 64 else 32 * (8 if on_gpu else 1))
    views = args.pil_views or (1000 if size <= 64 else 60)
    if args.quick:
        batch, views = min(batch, 64 if size <= 64 else 8), min(views, 200 if size <= 64 else 12)
    arrays = source_images(size, max(batch, views), args.synthetic)
    pictures = [Image.fromarray(a) for a in arrays[:views]]
    images = torch.from_numpy(arrays[:batch]).permute(0, 3, 1, 2).contiguous().to(device)
    generator = torch.Generator(device).manual_seed(0)
    where = torch.cuda.get_device_name(device) if on_gpu else f"CPU, {args.threads} threads"
    # (label, run, views per run, threads, device, cores for "per core")
    runners = [("PIL backend (official-style), 1 core", per_image_runner("pil", pictures, SEVERITY[size]), views,
                1, torch.device("cpu"), 1),
               ("torchvision AugMix, 1 core", per_image_runner("torchvision", pictures, SEVERITY[size]), views,
                1, torch.device("cpu"), 1)]
    for compiled in (False, True) if args.compile else (False,):
        model = AugMix(severity=SEVERITY[size], mean=MEAN, std=STD, compile=compiled)
        runners.append((f"ours, batched, {where}" + (", compiled" if compiled else ""),
                        lambda model=model: model(images, generator), batch, args.threads, device,
                        None if on_gpu else args.threads))
    seconds: list[list[float]] = [[] for _ in runners]
    for round_ in range(1 + args.repeats):
        for times, (_, run, _, threads, run_device, _) in zip(seconds, runners):
            torch.set_num_threads(threads)  # the per-image backends: one core, as one DataLoader worker
            _sync(run_device)
            elapsed = time_once(run, run_device)
            if round_ > 0:
                times.append(elapsed)
    return [_row(label, size, n, times, cores) for times, (label, _, n, _, _, cores) in zip(seconds, runners)]


def _row(label: str, size: int, views: int, seconds: list[float], cores: int | None) -> dict:
    median = statistics.median(seconds)
    return {"backend": label, "size": size, "views_per_run": views, "views_per_s": views / median,
            "views_per_s_min": views / max(seconds), "views_per_s_max": views / min(seconds),
            "per_core": views / median / cores if cores else None}


def environment(args: argparse.Namespace) -> dict:
    return environment_record(args.device, torch_threads_ours=args.threads, dtype="uint8 ops, float32 mixing",
                              inputs="synthetic" if args.synthetic else "photographs")


def render(rows: list[dict], env: dict) -> str:
    lines = ["# AugMix throughput", "", "Environment: " + ", ".join(f"{k}={v}" for k, v in env.items()), "",
             "| size | backend | views/s (median) | min-max | per core | ours per core / PIL per core |",
             "|---:|---|---:|---:|---:|---:|"]
    for size in sorted({r["size"] for r in rows}):
        pil_rate = next(r["views_per_s"] for r in rows if r["size"] == size and r["backend"].startswith("PIL"))
        for r in (r for r in rows if r["size"] == size):
            per_core = f"{r['per_core']:.0f}" if r["per_core"] else "-"
            ratio = (r["per_core"] or r["views_per_s"]) / pil_rate
            lines.append(f"| {size} | {r['backend']} | {r['views_per_s']:.0f} | {r['views_per_s_min']:.0f}-"
                         f"{r['views_per_s_max']:.0f} | {per_core} | {ratio:.2f}x |")
    return "\n".join(lines) + "\n"


def main(args: argparse.Namespace) -> dict:
    if args.quick:
        args.repeats = min(args.repeats, 2)
    torch.manual_seed(0)
    rows = [row for size in args.sizes for row in measure(args, size)]
    env = environment(args)
    table = render(rows, env)
    print(table)
    if args.save:
        device = "cpu" if args.device == "cpu" else torch.cuda.get_device_name(args.device).split()[-1].lower()
        name = f"augmix_throughput-{device}-{torch_version_tag()}.md"
        atomic_write_text(Path(__file__).resolve().parent / "results" / name, table)
    result = {"bench": "augmix_throughput", "env": env, "rows": rows}
    print("BENCH " + json.dumps(result))
    return result


if __name__ == "__main__":
    from runtime.allocator import retain_freed_memory

    retain_freed_memory()  # large temporaries reuse freed heap memory instead of fresh pages (runtime/allocator.py)
    main(get_args_parser().parse_args())
