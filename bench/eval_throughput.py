"""Is evaluation bound by the model? Evaluation throughput over bare model inference on the same inputs.

    python bench/eval_throughput.py [--quick] [--device auto|cpu|cuda] [--synthetic] [--data-root DIR] [--save]

Bare inference: the cell's images already decoded, normalised and on the device, fed to the model batch by batch
under inference_mode (bf16 autocast and channels_last on CUDA, as the evaluator). Evaluation: ``evaluation.evaluate()``
on the cifar10-c suite (the path ``evaluate.py --suite cifar10-c`` runs) over the same released-format file
(memory-mapped npy -> device in chunks -> uint8 -> normalise -> model -> per-sample statistics -> metrics), without
writing results. The input is ``<data-root>/CIFAR-10-C/<corruption>.npy`` when present, else (or with --synthetic) a
random file in that format.

A good result: ratio >= 0.9 on a CPU with a small model (WRN-16-1 here), i.e. loading and metrics cost under 10 %
of the model's time. Median and spread over --repeats runs after a warm-up. Last line: ``BENCH {json}``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from corruptions import SEVERITIES  # noqa: E402
from evaluation import evaluate  # noqa: E402
from evaluation.inference import InferenceSettings, Predictor  # noqa: E402
from evaluation.suites import EvalOptions  # noqa: E402
from loaders.released import load_cifar_c_labels, open_cifar_c  # noqa: E402
from models import build_model  # noqa: E402
from models.weights import ModelInfo  # noqa: E402
from runtime.devices import resolve_device  # noqa: E402
from runtime.files import data_root  # noqa: E402

CORRUPTION = "contrast"  # any one file: every corruption file has the same shape and cost
MEAN_STD = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], add_help=add_help)
    parser.add_argument("--quick", action="store_true", help="smoke run: 500 images per severity, 2 repeats")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto = cuda if "
                        "available, else cpu)")
    parser.add_argument("--batch-size", type=int, default=1000, help="images per forward pass (default 1000)")
    parser.add_argument("--model", default="wrn40_2", help="a models.MODELS name (default wrn40_2)")
    parser.add_argument("--depth", type=int, default=16, help="model depth (default 16: WRN-16-1)")
    parser.add_argument("--width", type=int, default=1, help="model width (default 1)")
    parser.add_argument("--images", type=int, default=10_000, help="images per severity (default 10,000)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each (default 3)")
    parser.add_argument("--synthetic", action="store_true", help="random images even when real data exists")
    parser.add_argument("--data-root", default=None, help="folder holding CIFAR-10-C/ (default $AUGMIX_DATA_ROOT)")
    parser.add_argument("--save", action="store_true", help="write the table to bench/results/ (default off)")
    return parser


def input_folder(args: argparse.Namespace, tmp: Path) -> tuple[Path, str]:
    """A CIFAR-10-C folder holding CORRUPTION: the real one, or a random one written to ``tmp``."""
    real = data_root(args.data_root) / "CIFAR-10-C"
    if not args.synthetic and (real / f"{CORRUPTION}.npy").is_file():
        return real, f"released {real}/{CORRUPTION}.npy"
    rng = np.random.default_rng(0)
    folder = tmp / "CIFAR-10-C"
    folder.mkdir()
    labels = rng.integers(0, 10, args.images)
    np.save(folder / "labels.npy", np.tile(labels, 5).astype(np.uint8))
    np.save(folder / f"{CORRUPTION}.npy", rng.integers(0, 256, (5 * args.images, 32, 32, 3), dtype=np.uint8))
    return folder, f"synthetic random images in the CIFAR-10-C format ({5 * args.images} images)"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_bare(predictor: Predictor, images: np.ndarray, batch_size: int) -> tuple[float, float]:
    """(wall, process CPU) seconds for the model alone over pre-normalised device tensors (the same memory format
    and autocast as the evaluator)."""
    device = predictor.device
    x = torch.from_numpy(np.array(images)).to(device).permute(0, 3, 1, 2)
    x = torch.addcmul(-predictor.shift, x.float(), predictor.scale).contiguous(memory_format=predictor.memory_format)
    _sync(device)
    start, cpu = time.perf_counter(), time.process_time()
    with torch.inference_mode(), torch.autocast(device.type, dtype=predictor.amp_dtype or torch.float32,
                                                enabled=predictor.amp_dtype is not None):
        for cell in x.chunk(5):  # the evaluator's batches: per severity cell, then batch_size
            for i in range(0, len(cell), batch_size):
                predictor.model(cell[i:i + batch_size])
    _sync(device)
    return time.perf_counter() - start, time.process_time() - cpu


def time_evaluation(model: torch.nn.Module, info: ModelInfo, options: EvalOptions) -> tuple[float, float]:
    """(wall, process CPU) seconds for ``evaluation.evaluate()`` on the cifar10-c suite of one corruption file
    (5 cells), results kept in memory."""
    _sync(torch.device(options.inference.device))
    start, cpu = time.perf_counter(), time.process_time()
    evaluate(model, "cifar10-c", model_info=info, options=options)
    _sync(torch.device(options.inference.device))
    return time.perf_counter() - start, time.process_time() - cpu


def main(args: argparse.Namespace) -> dict:
    if args.quick:
        args.images, args.repeats = min(args.images, 500), 2
    args.device = str(resolve_device(args.device, "--device"))
    torch.manual_seed(0)
    model = build_model(args.model, 10, depth=args.depth, width=args.width)
    info = ModelInfo(name=f"{args.model}-{args.depth}-{args.width}", num_classes=10, dataset="cifar10",
                     mean=MEAN_STD[0], std=MEAN_STD[1], image_size=32, source="bench", epoch=0, sha256="bench")
    settings = InferenceSettings(device=args.device, batch_size=args.batch_size, workers=0)
    with tempfile.TemporaryDirectory() as tmp:
        folder, described = input_folder(args, Path(tmp))
        labels = load_cifar_c_labels(folder, SEVERITIES, 10)
        images = np.asarray(open_cifar_c(folder, CORRUPTION, SEVERITIES, labels).images)
        if len(images) > 5 * args.images:  # real data: the first --images of every severity
            images = np.concatenate([images[s * len(images) // 5:][:args.images] for s in range(5)])
        options = EvalOptions(inference=settings, corruptions=(CORRUPTION,), limit=args.images, plots=False,
                              roots={"cifar10-c": str(folder)})
        predictor = Predictor(model, *MEAN_STD, settings)
        time_bare(predictor, images, args.batch_size)  # warm-up
        time_evaluation(model, info, options)
        runs = {"bare": [], "eval": []}
        for _ in range(args.repeats):  # interleaved, so a change in machine load hits both alike
            runs["bare"].append(time_bare(predictor, images, args.batch_size))
            runs["eval"].append(time_evaluation(model, info, options))
    return report(args, info, described, settings, predictor, len(images), runs)


def report(args, info, described, settings, predictor, n: int, runs: dict) -> dict:
    rate = {k: [n / wall for wall, _ in v] for k, v in runs.items()}             # images per wall second
    cpu_rate = {k: [n / cpu for _, cpu in v] for k, v in runs.items()}          # images per CPU second
    ratio = statistics.median(rate["eval"]) / statistics.median(rate["bare"])
    cpu_ratio = statistics.median(cpu_rate["eval"]) / statistics.median(cpu_rate["bare"])
    env = {"device": torch.cuda.get_device_name() if predictor.device.type == "cuda" else platform.processor() or
           "cpu", "torch": torch.__version__, "cuda": torch.version.cuda, "threads": torch.get_num_threads(),
           "dtype": str(predictor.amp_dtype or torch.float32).replace("torch.", ""),
           "channels_last": predictor.memory_format == torch.channels_last, "batch_size": settings.batch_size,
           "compile": False}
    spread = lambda xs: f"{min(xs):.0f}-{max(xs):.0f}"  # noqa: E731
    row = lambda k, text: (f"| {text} | {statistics.median(rate[k]):.0f} | {spread(rate[k])} | "  # noqa: E731
                           f"{statistics.median(cpu_rate[k]):.0f} |")
    lines = [f"# Evaluation throughput: {info.name} on {args.device}", "",
             f"input: {described}; {args.repeats} timed run(s) of each, interleaved, after a warm-up; environment: "
             f"{json.dumps(env)}", "",
             "| path | images/s (median) | range | images per CPU-second |", "|---|---|---|---|",
             row("bare", "bare model inference (pre-normalised device tensors)"),
             row("eval", "evaluator: cifar10-c suite (mmap npy -> device -> model -> metrics)"), "",
             f"**ratio evaluation / bare: {ratio:.3f}** (wall clock; target >= 0.9); by CPU time: {cpu_ratio:.3f} "
             "(less sensitive to other processes on a shared machine)"]
    print("\n".join(lines))
    if args.save:
        name = f"eval_throughput-{args.device.split(':')[0]}-pt{torch.__version__.split('+')[0]}-{env['dtype']}.md"
        out = Path(__file__).resolve().parent / "results" / name
        out.parent.mkdir(exist_ok=True)
        out.write_text("\n".join(lines) + "\n")
    summary = {"bench": "eval_throughput", "model": info.name, "images": n,
               "bare_images_per_s": statistics.median(rate["bare"]),
               "eval_images_per_s": statistics.median(rate["eval"]),
               "ratio": ratio, "cpu_time_ratio": cpu_ratio, **env}
    print("BENCH " + json.dumps(summary))
    return summary


if __name__ == "__main__":
    from runtime.allocator import retain_freed_memory

    retain_freed_memory()  # large temporaries reuse freed heap memory instead of fresh pages (runtime/allocator.py)
    main(get_args_parser().parse_args())
