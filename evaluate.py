"""Evaluate a checkpoint on clean data, the -C / -P robustness benchmarks and calibration.

    python evaluate.py --ckpt runs/quickstart/last.pt --suite all --generate
    python evaluate.py --ckpt augmix_wrn.pt --suite cifar10-c --data-root /data     # released CIFAR-10-C
    python evaluate.py --compare results/standard results/augmix                    # side by side
    torchrun --standalone --nproc-per-node 8 evaluate.py --ckpt runs/r50/last.pt --suite imagenet-c   # 8 GPUs
    python evaluate.py --group standard='runs/standard_s*/eval' --group augmix='runs/augmix_s*/eval'  # mean +- std

Writes results.json (versioned schema), results.md (the tables a paper prints) and PNG plots to --out; finished
(suite, corruption, severity) cells are kept in --out/cells, so an interrupted run continues where it stopped.
Default --out: <run>/eval for a run's last.pt, <run>/eval-best for its best.pt, results/<stem>-<first 8 hex digits
of the file's SHA-256> for any other file. An output folder belongs to one checkpoint: another checkpoint's results
there are refused (choose a new --out, or --overwrite). Reads our checkpoints, the official AugMix CIFAR / ImageNet
releases and torchvision ResNet-50 state dicts (models/weights.py), always with torch.load(weights_only=True).
Precision: float32 by default (as the reference evaluators; TF32 matmuls allowed on CUDA); --amp bf16 is a speed
option, recorded in results.json (config.precision) and the report.
Under torchrun every rank checks the whole command first, then the ranks split the unfinished cells (each on its
cuda:LOCAL_RANK, or the CPU with gloo) and store them in --out/cells; rank 0 writes the report once all are in, with
the numbers one process would give. A --baseline-ckpt evaluation is split the same way, before the main one.

Exit codes: 0 done, 2 a usage or data mistake (the message names it), 1 the environment (no GPU, a folder in use by
another process, a file that cannot be written).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, NamedTuple

import torch

from corruptions import ALL_CORRUPTIONS, SEVERITIES, SUBSETS
from corruptions.sequences import ALL_PERTURBATION_NAMES
from evaluation import evaluate, plan_evaluation
from evaluation.compare import collect_runs, parse_group, render_compare, summarise, write_compare
from evaluation.inference import AMP_DTYPES, AMP_HELP, InferenceSettings
from evaluation.report import headline_metrics, load_results, perturbation_baseline
from evaluation.sharding import DIST_TIMEOUT_S, CellShare, RankFailed, rank_device
from evaluation.suites import SUITES, EvalOptions, did_you_mean, resolve_suites
from models.weights import CheckpointError, load_model
from runtime.arguments import int_in
from runtime.devices import resolve_device
from runtime.distributed import DistEnv, all_gather_values, close_distributed, dist_env, init_distributed
from runtime.locks import FolderLockedError

RUN_CHECKPOINTS = {"last.pt": "eval", "best.pt": "eval-best"}  # a run's checkpoints -> their output folder


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction in (0, 1), got {text!r}") from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a fraction in (0, 1) (e.g. 0.43478), got {value}")
    return value


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Robustness evaluation (clean, -C, -P, calibration)", add_help=add_help)
    p.add_argument("--ckpt", help="checkpoint: ours, official AugMix (CIFAR/ImageNet) or a torchvision state dict")
    p.add_argument("--suite", action="append", default=None,
                   help=f"suite to run, repeatable: all, {', '.join(SUITES)} (default: clean)")
    p.add_argument("--data-root", default=None, help="datasets and released -C/-P folders (default: "
                   "$AUGMIX_DATA_ROOT or ./data)")
    p.add_argument("--root", action="append", default=[], metavar="NAME=DIR",
                   help="folder of one suite or dataset, e.g. imagenet-c=/data/ImageNet-C, imagenet=/data/val")
    p.add_argument("--out", default=None,
                   help="output folder (default: <run>/eval for a run's last.pt, <run>/eval-best for best.pt, else "
                        "results/<checkpoint stem>-<8 hex digits of its SHA-256>); it must not hold another "
                        "checkpoint's results")
    p.add_argument("--overwrite", action="store_true",
                   help="--out may hold another checkpoint's results: replace the files the evaluator wrote there "
                        "(results.json/.md, plots, cells/, baseline/); other files stay. With --compare/--group: "
                        "replace existing compare.md/.json/PNGs (default: refuse)")
    p.add_argument("--batch-size", type=int_in(1, what="images per forward pass"), default=1000,
                   help="images per forward pass, >= 1 (default: 1000)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto = cuda if available, "
                   "else cpu)")
    p.add_argument("--amp", default="off", choices=list(AMP_DTYPES), help=f"precision: {AMP_HELP}")
    p.add_argument("--dist-timeout", type=int_in(1, what="seconds"), default=int(DIST_TIMEOUT_S),
                   help="torchrun: seconds a rank waits for the others at a collective before giving up; the ranks "
                        f"meet once all cells are stored, so keep it above the longest cell (default: "
                        f"{int(DIST_TIMEOUT_S)})")
    p.add_argument("--workers", type=int_in(0, what="decode workers"), default=4,
                   help="decode workers for JPEG / MP4 sets, >= 0 (default: 4)")
    p.add_argument("--generate", action="store_true",
                   help="build -C/-P in memory from the clean test set (seeded; marked 'generated' in the report)")
    p.add_argument("--seed", type=int_in(0, what="seed"), default=0, help="seed of generated sets, >= 0 (default: 0)")
    p.add_argument("--limit", type=int_in(1, what="images per cell"), default=None,
                   help="first N images / videos per cell, >= 1 (default: all)")
    p.add_argument("--corruptions", default=None,
                   help="comma list or subset (common, extra, all, noise, blur, weather, digital); default: all 19")
    p.add_argument("--severities", default=None, help="comma list of severities in 1..5 (default: 1,2,3,4,5)")
    p.add_argument("--perturbations", default=None, help="comma list of -P perturbations (default: all available)")
    p.add_argument("--difficulty", type=int, default=1, choices=[1, 2, 3], help="-P frame step, 1..3 (default: 1)")
    p.add_argument("--recompute", action="store_true", help="recompute cells already finished in --out/cells")
    p.add_argument("--baseline-ckpt", default=None,
                   help="model whose -P flip probabilities / top-5 distances normalise mFR / mT5D (same data)")
    p.add_argument("--baseline-arch", default=None,
                   help="architecture of a plain --baseline-ckpt state dict, e.g. alexnet for torchvision's "
                        "alexnet-owt-4df8aa71.pth (the reference normaliser); default: read from the file")
    p.add_argument("--baseline-results", default=None,
                   help="results.json of a baseline run: -P normalisers and the baseline bars of the plots")
    p.add_argument("--alexnet-clean-error", type=_fraction, default=None,
                   help="AlexNet clean error for relative mCE, a fraction in (0, 1) (default: 0.43478, torchvision's)")
    p.add_argument("--imagenet-c-resize", action="store_true",
                   help="NON-STANDARD: Resize(256)+CenterCrop(224) on ImageNet-C, as the official AugMix script "
                        "(labelled in the report; not comparable with published mCE)")
    p.add_argument("--arch", default=None, help="architecture of a plain state dict (see models.MODELS)")
    p.add_argument("--num-classes", type=int_in(1, what="classes"), default=None,
                   help="classes of a plain state dict, >= 1")
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
        hint = did_you_mean(unknown[0], valid) if unknown else ""
        raise ValueError(f"{flag}: unknown value(s) {', '.join(unknown) or '(none given)'}{hint}; valid: "
                         f"{', '.join(map(str, valid))}")
    return names


def options_from_args(args: argparse.Namespace, baseline: dict | None = None,
                      device: torch.device | None = None) -> EvalOptions:
    """The EvalOptions a command line asks for; ``device`` (this rank's, under torchrun) replaces --device."""
    roots = {}
    for item in args.root:
        if "=" not in item:
            raise ValueError(f"--root {item!r}: expected NAME=DIR, e.g. imagenet-c=/data/ImageNet-C")
        key, value = item.split("=", 1)
        roots[key.strip()] = value
    severities = _names(args.severities, "--severities", tuple(str(s) for s in SEVERITIES))
    device = str(device or resolve_device(args.device, "--device"))
    inference = InferenceSettings(device=device, batch_size=args.batch_size, amp=args.amp, workers=args.workers,
                                  channels_last=None)
    extra = {} if args.alexnet_clean_error is None else {"alexnet_clean_error": args.alexnet_clean_error}
    return EvalOptions(data_root=args.data_root, out_dir=args.out, inference=inference, generate=args.generate,
                       seed=args.seed, limit=args.limit,
                       corruptions=_names(args.corruptions, "--corruptions", ALL_CORRUPTIONS),
                       severities=tuple(int(s) for s in severities) if severities else SEVERITIES,
                       perturbations=_names(args.perturbations, "--perturbations", ALL_PERTURBATION_NAMES),
                       difficulty=args.difficulty,
                       roots=roots, recompute=args.recompute, overwrite=args.overwrite, baseline=baseline,
                       imagenet_c_resize=args.imagenet_c_resize, tensorboard=args.tensorboard,
                       plots=not args.no_plots, **extra)


def default_out(ckpt: str | Path, info) -> Path:
    """The output folder of a checkpoint when --out is not given: ``<run>/eval`` for a run's ``last.pt``,
    ``<run>/eval-best`` for its ``best.pt``, else ``results/<stem>-<first 8 hex digits of the file's SHA-256>``
    (so two checkpoints never share a folder, and the same file always comes back to its own)."""
    path = Path(ckpt)
    if info.source == "ours" and path.name in RUN_CHECKPOINTS:
        return path.parent / RUN_CHECKPOINTS[path.name]
    return Path("results") / f"{path.stem}-{info.sha256[:8]}"


def evaluate_checkpoint(ckpt: str | Path, suites: list[str], options: EvalOptions, arch: str | None = None,
                        num_classes: int | None = None, dataset: str | None = None) -> dict:
    """Load ``ckpt`` (any supported format) and run ``suites`` through evaluation.evaluate()."""
    model, info = load_model(ckpt, map_location=options.inference.device, arch=arch, num_classes=num_classes,
                             dataset=dataset)
    return evaluate(model, suites, model_info=info, options=options, checkpoint_path=ckpt)


def _check_device(name: str) -> None:
    """A CUDA device asked for on a machine without one is the environment's fault (exit 1), not a usage error."""
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        return  # resolve_device names it as a usage error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise EnvironmentProblem(f"--device={name} but CUDA is not available on this machine (torch "
                                 f"{torch.__version__}, CUDA build {torch.version.cuda or 'none'}); use --device cpu "
                                 "or auto")


class EnvironmentProblem(RuntimeError):
    """The machine, not the command, is at fault (no GPU): exit 1."""


class _Baseline(NamedTuple):
    """The -P normalisers of --baseline-results, or a loaded --baseline-ckpt whose plan is checked but not run."""

    normalisers: dict | None = None
    model: Any = None
    info: Any = None
    suites: tuple[str, ...] = ()
    options: EvalOptions | None = None


def _plan_baseline(args: argparse.Namespace, suites: list[str], options: EvalOptions) -> _Baseline:
    """Read --baseline-results, or load --baseline-ckpt and check its evaluation: the -P suites requested, and, when
    that baseline is AlexNet and the clean suite is requested, the clean suite for its clean error (relative mCE,
    docs/metrics.md §3.3: computed with the same pipeline when the weights are available)."""
    if args.baseline_results:
        return _Baseline(perturbation_baseline(load_results(args.baseline_results)))
    if not args.baseline_ckpt:
        return _Baseline()
    model, info = load_model(args.baseline_ckpt, map_location=options.inference.device, arch=args.baseline_arch)
    resolved = resolve_suites(suites, info.dataset)
    wanted = [s for s in resolved if SUITES[s].kind == "perturbation"]
    if info.name == "alexnet" and "clean" in resolved and args.alexnet_clean_error is None:
        wanted.append("clean")
    if not wanted:
        return _Baseline()
    out = None if options.out_dir is None else str(Path(options.out_dir) / "baseline")
    options = replace(options, out_dir=out, baseline=None, tensorboard=None)
    plan_evaluation(wanted, options, info.dataset, info.num_classes, checkpoint_sha256=info.sha256,
                    checkpoint_path=args.baseline_ckpt)
    return _Baseline(None, model, info, tuple(wanted), options)


def _run_baseline(baseline: _Baseline, args: argparse.Namespace, share: CellShare) -> tuple[dict | None, float | None]:
    """The baseline's -P normalisers and AlexNet clean error. Under torchrun the baseline's cells are split across
    the ranks like the main evaluation's (into <out>/baseline), and every rank gets rank 0's figures."""
    if baseline.model is None:
        return baseline.normalisers, None
    results = evaluate(baseline.model, list(baseline.suites), model_info=baseline.info, options=baseline.options,
                       checkpoint_path=args.baseline_ckpt, share=share)
    figures = (None, None)
    if results is not None:
        clean = results["suites"].get("clean", {}).get("aggregates", {}).get("error")
        perturbation = len(baseline.suites) > ("clean" in baseline.suites)
        figures = (perturbation_baseline(results) if perturbation else None, clean)
    return all_gather_values(figures)[0]


def _prepare(args: argparse.Namespace, device: torch.device) -> tuple:
    """Everything checked before any work, on every rank: options, checkpoint, output folder, the plan of the
    evaluation and of its baseline."""
    suites = args.suite or ["clean"]
    options = options_from_args(args, device=device)
    model, info = load_model(args.ckpt, map_location=options.inference.device, arch=args.arch,
                             num_classes=args.num_classes, dataset=args.dataset)
    args.out = str(args.out or default_out(args.ckpt, info))
    options = replace(options, out_dir=args.out)
    plan_evaluation(suites, options, info.dataset, info.num_classes, checkpoint_sha256=info.sha256,
                    checkpoint_path=args.ckpt)
    return suites, model, info, _plan_baseline(args, suites, options)


def _exit_code(exc: BaseException) -> int | None:
    """2 for a usage or data mistake, 1 for the environment, None for anything else (a bug: its traceback shows)."""
    if isinstance(exc, _Reported):
        return exc.code
    if isinstance(exc, (EnvironmentProblem, FolderLockedError, RankFailed)):
        return 1
    if isinstance(exc, (FileNotFoundError, FileExistsError, ValueError, CheckpointError)):  # DeviceError, ...
        return 2
    return 1 if isinstance(exc, OSError) else None  # cannot write the output folder, disk full, ...


class _Reported(Exception):
    """An error already printed (once, by rank 0, for all ranks); exit with ``code``."""

    def __init__(self, code: int):
        super().__init__(code)
        self.code = code


def _on_all_ranks(env: DistEnv, step):
    """``step()`` on every rank; when any rank fails, every rank stops with the highest exit code and rank 0 prints
    each distinct message once (naming the ranks unless all of them failed alike), so a bad input under torchrun
    reads as one message instead of N copies or a hang."""
    try:
        value, failure = step(), None
    except Exception as exc:
        if _exit_code(exc) is None:
            raise
        value, failure = None, (_exit_code(exc), str(exc))
    failures = all_gather_values(failure)
    failed = {rank: f for rank, f in enumerate(failures) if f is not None}
    if not failed:
        return value
    if env.is_main:
        for message in dict.fromkeys(message for _, message in failed.values()):
            ranks = [rank for rank, (_, m) in failed.items() if m == message]
            where = "" if len(ranks) == env.world_size else f" (rank {', '.join(map(str, ranks))})"
            sys.stderr.write(f"error{where}: {message}\n")
    raise _Reported(max(code for code, _ in failed.values()))


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
    env = DistEnv()
    try:
        env = dist_env()
        if args.compare or args.group:
            return compare_runs(args) if env.is_main else 0
        if not args.ckpt:
            raise ValueError("--ckpt is required (or --compare RESULTS ...)")
        _check_device(args.device)
        device = rank_device(args.device, env)  # under torchrun: cuda:LOCAL_RANK, or the CPU (gloo)
        init_distributed(env, device, args.dist_timeout)
        try:
            suites, model, info, baseline = _on_all_ranks(env, lambda: _prepare(args, device))
            share = CellShare.from_env(env)
            normalisers, alexnet_clean = _run_baseline(baseline, args, share)
            if alexnet_clean is not None:
                args.alexnet_clean_error = alexnet_clean  # measured on this data: used instead of the 0.43478 constant
            options = replace(options_from_args(args, normalisers, device), out_dir=args.out)
            results = evaluate(model, suites, model_info=info, options=options, checkpoint_path=args.ckpt,
                               share=share)
        finally:
            close_distributed()
    except Exception as exc:
        code = _exit_code(exc)
        if code is None:
            raise
        if not isinstance(exc, _Reported):
            sys.stderr.write(f"{f'rank {env.rank}: ' if env.enabled else ''}error: {exc}\n")  # one write per line
        return code
    if results is None:  # another rank than 0: its cells are stored, rank 0 writes the report
        return 0
    _print_headline(results)
    print(f"wrote {args.out}/results.json, results.md and plots ({results['timing']['seconds']:.1f} s"
          f"{f' on {env.world_size} ranks' if env.enabled else ''}); precision "
          f"{results['config']['precision']['summary']}")
    return 0


if __name__ == "__main__":
    from runtime.allocator import retain_freed_memory

    retain_freed_memory()  # large temporaries reuse freed heap memory instead of fresh pages (runtime/allocator.py)
    sys.exit(main(get_args_parser().parse_args()))
