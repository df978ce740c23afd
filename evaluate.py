"""Evaluate a checkpoint on clean data, the -C / -P robustness benchmarks and calibration.

    python evaluate.py --ckpt runs/quickstart/last.pt --suite all --generate
    python evaluate.py --ckpt augmix_wrn.pt --suite cifar10-c --data-root /data     # released CIFAR-10-C
    python evaluate.py --compare results/standard results/augmix                    # side by side
    python evaluate.py --group standard='runs/standard_s*/eval' --group augmix='runs/augmix_s*/eval'  # mean +- std

Writes results.json (versioned schema), results.md (the tables a paper prints) and PNG plots to --out; finished
(suite, corruption, severity) cells are kept in --out/cells, so an interrupted run continues where it stopped.
Reads our checkpoints, the official AugMix CIFAR / ImageNet releases and torchvision ResNet-50 state dicts
(models/weights.py), always with torch.load(weights_only=True).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from corruptions import ALL_CORRUPTIONS, SEVERITIES, SUBSETS
from corruptions.sequences import ALL_PERTURBATION_NAMES
from evaluation import evaluate
from evaluation.compare import collect_runs, parse_group, render_compare, summarise, write_compare
from evaluation.inference import AMP_DTYPES, InferenceSettings
from evaluation.report import headline_metrics, load_results, perturbation_baseline
from evaluation.suites import SUITES, EvalOptions, resolve_suites
from models.weights import CheckpointError, load_model
from runtime.devices import resolve_device


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Robustness evaluation (clean, -C, -P, calibration)", add_help=add_help)
    p.add_argument("--ckpt", help="checkpoint: ours, official AugMix (CIFAR/ImageNet) or a torchvision state dict")
    p.add_argument("--suite", action="append", default=None,
                   help=f"suite to run, repeatable: all, {', '.join(SUITES)} (default: clean)")
    p.add_argument("--data-root", default=None, help="datasets and released -C/-P folders (default: "
                   "$AUGMIX_DATA_ROOT or ./data)")
    p.add_argument("--root", action="append", default=[], metavar="NAME=DIR",
                   help="folder of one suite or dataset, e.g. imagenet-c=/data/ImageNet-C, imagenet=/data/val")
    p.add_argument("--out", default=None, help="output folder (default: results/<checkpoint stem>)")
    p.add_argument("--batch-size", type=int, default=1000, help="images per forward pass (default: 1000)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto = cuda if available, "
                   "else cpu)")
    p.add_argument("--amp", default="auto", choices=["auto", *AMP_DTYPES],
                   help="autocast dtype (default: auto = bf16 on CUDA, off on CPU)")
    p.add_argument("--workers", type=int, default=4, help="decode workers for JPEG / MP4 sets (default: 4)")
    p.add_argument("--generate", action="store_true",
                   help="build -C/-P in memory from the clean test set (seeded; marked 'generated' in the report)")
    p.add_argument("--seed", type=int, default=0, help="seed of generated sets (default: 0)")
    p.add_argument("--limit", type=int, default=None, help="first N images / videos per cell (default: all)")
    p.add_argument("--corruptions", default=None,
                   help="comma list or subset (common, extra, all, noise, blur, weather, digital); default: all 19")
    p.add_argument("--severities", default=None, help="comma list of severities (default: 1,2,3,4,5)")
    p.add_argument("--perturbations", default=None, help="comma list of -P perturbations (default: all available)")
    p.add_argument("--difficulty", type=int, default=1, choices=[1, 2, 3], help="-P frame step (default: 1)")
    p.add_argument("--recompute", action="store_true", help="recompute cells already finished in --out/cells")
    p.add_argument("--baseline-ckpt", default=None,
                   help="model whose -P flip probabilities / top-5 distances normalise mFR / mT5D (same data)")
    p.add_argument("--baseline-arch", default=None,
                   help="architecture of a plain --baseline-ckpt state dict, e.g. alexnet for torchvision's "
                        "alexnet-owt-4df8aa71.pth (the reference normaliser); default: read from the file")
    p.add_argument("--baseline-results", default=None,
                   help="results.json of a baseline run: -P normalisers and the baseline bars of the plots")
    p.add_argument("--alexnet-clean-error", type=float, default=None,
                   help="AlexNet clean error for relative mCE, as a fraction (default: 0.43478, torchvision's)")
    p.add_argument("--imagenet-c-resize", action="store_true",
                   help="NON-STANDARD: Resize(256)+CenterCrop(224) on ImageNet-C, as the official AugMix script "
                        "(labelled in the report; not comparable with published mCE)")
    p.add_argument("--arch", default=None, help="architecture of a plain state dict (see models.MODELS)")
    p.add_argument("--num-classes", type=int, default=None, help="classes of a plain state dict")
    p.add_argument("--dataset", default=None, help="dataset of a plain state dict (sets normalisation)")
    p.add_argument("--tensorboard", default=None, help="also write the headline numbers to this TensorBoard dir")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    p.add_argument("--compare", nargs="+", default=None, metavar="RESULTS",
                   help="compare results.json files (or their folders): print them side by side, or as mean +- "
                        "sample std per label when --labels repeat; with --out also write compare.md, compare.json "
                        "and a PNG per corruption suite; then exit")
    p.add_argument("--labels", default=None,
                   help="comma list, one label per --compare run; runs sharing a label form a group, e.g. seeds "
                        "(default: model names)")
    p.add_argument("--group", action="append", default=[], metavar="NAME=GLOB",
                   help="compare every results folder/file matching GLOB as group NAME, repeatable, e.g. "
                        "--group standard='runs/standard_s*/eval' (quoted: expanded here, sorted)")
    p.add_argument("--overwrite", action="store_true",
                   help="with --compare/--group and --out: replace existing compare files (default: refuse)")
    return p


def _names(text: str | None, flag: str, valid: tuple) -> tuple | None:
    """A comma list (or, for --corruptions, a subset name) checked against ``valid`` (empty: anything goes)."""
    if text is None:
        return None
    if flag == "--corruptions" and text in SUBSETS:
        return SUBSETS[text]
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if valid and n not in valid]
    if unknown or not names:
        raise ValueError(f"{flag}: unknown value(s) {', '.join(unknown) or '(none given)'}; valid: "
                         f"{', '.join(map(str, valid))}")
    return names


def options_from_args(args: argparse.Namespace, baseline: dict | None = None) -> EvalOptions:
    """The EvalOptions a command line asks for."""
    roots = {}
    for item in args.root:
        if "=" not in item:
            raise ValueError(f"--root {item!r}: expected NAME=DIR, e.g. imagenet-c=/data/ImageNet-C")
        key, value = item.split("=", 1)
        roots[key.strip()] = value
    severities = _names(args.severities, "--severities", tuple(str(s) for s in SEVERITIES))
    device = str(resolve_device(args.device, "--device"))
    inference = InferenceSettings(device=device, batch_size=args.batch_size, amp=args.amp, workers=args.workers)
    extra = {} if args.alexnet_clean_error is None else {"alexnet_clean_error": args.alexnet_clean_error}
    return EvalOptions(data_root=args.data_root, out_dir=args.out, inference=inference, generate=args.generate,
                       seed=args.seed, limit=args.limit,
                       corruptions=_names(args.corruptions, "--corruptions", ALL_CORRUPTIONS),
                       severities=tuple(int(s) for s in severities) if severities else SEVERITIES,
                       perturbations=_names(args.perturbations, "--perturbations", ALL_PERTURBATION_NAMES),
                       difficulty=args.difficulty,
                       roots=roots, recompute=args.recompute, baseline=baseline,
                       imagenet_c_resize=args.imagenet_c_resize, tensorboard=args.tensorboard,
                       plots=not args.no_plots, **extra)


def evaluate_checkpoint(ckpt: str | Path, suites: list[str], options: EvalOptions, arch: str | None = None,
                        num_classes: int | None = None, dataset: str | None = None) -> dict:
    """Load ``ckpt`` (any supported format) and run ``suites`` through evaluation.evaluate()."""
    model, info = load_model(ckpt, map_location=options.inference.device, arch=arch, num_classes=num_classes,
                             dataset=dataset)
    return evaluate(model, suites, model_info=info, options=options, checkpoint_path=ckpt)


def _baseline(args: argparse.Namespace, suites: list[str], options: EvalOptions) -> tuple[dict | None, float | None]:
    """-P normalisers from --baseline-results, or from running --baseline-ckpt on the same -P data; and, when that
    baseline is AlexNet and the clean suite is requested, its clean error for relative mCE (docs/metrics.md §3.3:
    computed
    with the same pipeline when the weights are available)."""
    if args.baseline_results:
        return perturbation_baseline(load_results(args.baseline_results)), None
    if not args.baseline_ckpt:
        return None, None
    model, info = load_model(args.baseline_ckpt, map_location=options.inference.device, arch=args.baseline_arch)
    resolved = resolve_suites(suites, info.dataset)
    wanted = [s for s in resolved if SUITES[s].kind == "perturbation"]
    if info.name == "alexnet" and "clean" in resolved and args.alexnet_clean_error is None:
        wanted.append("clean")
    if not wanted:
        return None, None
    out = None if options.out_dir is None else str(Path(options.out_dir) / "baseline")
    results = evaluate(model, wanted, model_info=info, checkpoint_path=args.baseline_ckpt,
                       options=replace(options, out_dir=out, baseline=None, tensorboard=None))
    clean = results["suites"].get("clean", {}).get("aggregates", {}).get("error")
    return (perturbation_baseline(results) if len(wanted) > ("clean" in wanted) else None), clean


def _print_headline(results: dict) -> None:
    for key, (label, value) in headline_metrics(results).items():
        print(f"{key.split('/')[0]:>14}  {label}: {value:.3f}")


def compare_runs(args: argparse.Namespace) -> int:
    """--compare / --group: print the comparison; with --out also write compare.md, compare.json and the charts."""
    runs = collect_runs(args.compare or [], args.labels.split(",") if args.labels else None,
                        [parse_group(text) for text in args.group])
    summary = summarise(runs)
    print(render_compare(summary), end="")
    if args.out:
        written = write_compare(args.out, summary, overwrite=args.overwrite)
        print(f"wrote {', '.join(map(str, written))}", file=sys.stderr)
    return 0


def main(args: argparse.Namespace) -> int:
    try:
        if args.compare or args.group:
            return compare_runs(args)
        if not args.ckpt:
            raise ValueError("--ckpt is required (or --compare RESULTS ...)")
        args.out = args.out or str(Path("results") / Path(args.ckpt).stem)
        suites = args.suite or ["clean"]
        options = options_from_args(args)
        baseline, alexnet_clean = _baseline(args, suites, options)
        if alexnet_clean is not None:
            args.alexnet_clean_error = alexnet_clean  # measured on this data: used instead of the 0.43478 constant
        if baseline is not None or alexnet_clean is not None:
            options = options_from_args(args, baseline)
        results = evaluate_checkpoint(args.ckpt, suites, options, args.arch, args.num_classes, args.dataset)
    except (FileNotFoundError, FileExistsError, ValueError, CheckpointError) as exc:  # DeviceError: a ValueError
        print(f"error: {exc}", file=sys.stderr)
        return 2
    _print_headline(results)
    print(f"wrote {args.out}/results.json, results.md and plots ({results['timing']['seconds']:.1f} s)")
    return 0


if __name__ == "__main__":
    from runtime.allocator import retain_freed_memory

    retain_freed_memory()  # large temporaries reuse freed heap memory instead of fresh pages (runtime/allocator.py)
    sys.exit(main(get_args_parser().parse_args()))
