"""Train a classifier with AugMix + the Jensen-Shannon consistency loss (Hendrycks et al., ICLR 2020).

    python train.py --config cifar10_wrn.yaml                       # the paper's WRN-40-2 recipe
    python train.py --config cifar10_wrn.yaml optim.lr=0.05 train.epochs=1
    python train.py --config cifar10_wrn.yaml augment.mode=standard # the baseline, in runs/cifar10_wrn-standard
    python train.py --config cifar10_wrn.yaml --resume auto         # continue runs/cifar10_wrn/last.pt exactly
    python train.py --config quickstart.yaml                        # digits, CPU, a few minutes
    torchrun --standalone --nproc-per-node 8 train.py --config imagenet_resnet50.yaml   # one node, 8 GPUs

Under torchrun (DistributedDataParallel; NCCL on GPUs, gloo on CPU) train.batch_size stays the global batch and
each rank takes batch_size / WORLD_SIZE; rank 0 writes the run directory. See README "Multi-GPU and clusters".

Config: code defaults (training/config.py) <- YAML (configs/) <- dotted overrides. The resolved config is printed,
written to the run directory and stored in every checkpoint. The run directory defaults to runs/<config name> plus
the recipe overrides (runs/cifar10_wrn-nojsd); a fresh run refuses a directory that holds a run (--resume auto
continues it, --overwrite replaces it).

Exit codes: 0 done or stopped by --stop-after; 2 a mistake in the command, config or data; 1 the machine (no GPU, a
full or read-only disk, the run folder in use); 3 a non-finite loss; 143 / 130 after SIGTERM / SIGINT (checkpointed).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from evaluation import plan_evaluation
from runtime.devices import DeviceError
from runtime.distributed import close_distributed, dist_env
from runtime.locks import FolderLockedError
from training.config import ConfigError, RunConfig, load_config, to_dict
from training.loop import NonFiniteLossError
from training.run import (
    ENVIRONMENT_ERRNOS,
    CheckpointWriteError,
    fit,
    prepare_run,
    resume_command,
    run_directory,
    select_device,
)

EXIT_USAGE = 2        # the command, the config or the data: the user can fix it
EXIT_ENVIRONMENT = 1  # the machine: no GPU, disk full, read-only folder, run folder in use
EXIT_NONFINITE = 3
EXIT_SIGNAL = {"SIGTERM": 143, "SIGINT": 130}  # 128 + signal number, after a clean checkpoint


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="AugMix + JSD training", add_help=add_help,
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--config", default=None,
                        help="YAML config: a name in configs/ (e.g. cifar10_wrn.yaml) or a path (default: code "
                             "defaults = the CIFAR-10 WRN-40-2 recipe)")
    parser.add_argument("overrides", nargs="*", metavar="section.key=value",
                        help="dotted overrides, YAML-typed (e.g. optim.lr=0.05 train.epochs=1 augment.backend=pil)")
    parser.add_argument("--resume", default=None,
                        help="checkpoint to continue from, or 'auto' for last.pt in the run directory when it "
                             "exists (default: start fresh)")
    parser.add_argument("--overwrite", action="store_true",
                        help="start fresh in a run folder that holds an earlier run, removing only its files "
                             "(last.pt, best.pt, metrics.jsonl, config.yaml, tb/, eval/); default: refuse")
    parser.add_argument("--stop-after", type=_epochs, default=None, metavar="EPOCHS",
                        help="train at most this many epochs (>= 1) in this invocation, then checkpoint, print the "
                             "command that continues, and exit (for time-limited jobs; default: run to train.epochs)")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    return parser


def _epochs(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of epochs >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number of epochs >= 1, got {value} (to train to the end, "
                                         "leave --stop-after out)")
    return value


def _device_exit(name: str) -> int:
    """A device this machine lacks is the environment's fault; a name that is not a device is the command's."""
    import torch

    try:
        kind = torch.device(name).type
    except (RuntimeError, ValueError):
        return EXIT_USAGE
    return EXIT_ENVIRONMENT if kind in ("cuda", "mps") else EXIT_USAGE


def _command_line(args: argparse.Namespace) -> list[str]:
    """The arguments that rebuild this run's config (for the resume hint)."""
    return [*(["--config", str(args.config)] if args.config else []), *args.overrides]


def main(args: argparse.Namespace) -> int:
    env = dist_env()
    who = f"rank {env.rank}: " if env.enabled else ""  # torchrun interleaves the ranks' output
    try:
        cfg = load_config(args.config, args.overrides)
    except ConfigError as exc:
        print(f"{who}config error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if env.is_main:
        print(yaml.safe_dump(to_dict(cfg), sort_keys=False).rstrip(), flush=True)
    if args.print_config:
        return 0
    try:
        if cfg.eval.suites:
            check_evaluation_plan(cfg)
        run = prepare_run(cfg, resume=args.resume, overwrite=args.overwrite)
        summary = fit(run, stop_after_epochs=args.stop_after,
                      resume_command=resume_command(_command_line(args), distributed=env.enabled))
    except DeviceError as exc:
        print(f"{who}error: {exc}", file=sys.stderr)
        return _device_exit(cfg.train.device)
    except (FolderLockedError, CheckpointWriteError) as exc:
        print(f"{who}error: {exc}", file=sys.stderr)
        return EXIT_ENVIRONMENT
    except (ConfigError, ValueError) as exc:
        print(f"{who}error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:  # a missing data file is the command's; a full or read-only disk is the machine's
        where = f" {exc.filename}" if exc.filename else ""
        print(f"{who}error:{where} {exc.strerror or exc}", file=sys.stderr)
        return EXIT_ENVIRONMENT if exc.errno in ENVIRONMENT_ERRNOS else EXIT_USAGE
    except NonFiniteLossError as exc:
        print(f"{who}error: {exc}", file=sys.stderr)
        return EXIT_NONFINITE
    finally:
        close_distributed()
    if summary["stopped_by"] in EXIT_SIGNAL:
        return EXIT_SIGNAL[summary["stopped_by"]]
    if not env.is_main:
        return 0
    last = summary["last"]
    if "test_error" in last and summary["epoch"] == cfg.train.epochs:
        print(f"final clean test error: {100 * last['test_error']:.2f}% after {summary['epoch']} epochs "
              f"(checkpoint: {summary['run_dir']}/last.pt)", flush=True)
    if cfg.eval.suites and summary["epoch"] == cfg.train.epochs:
        if env.enabled:
            print(f"evaluating on rank 0 only; for a multi-GPU evaluation run torchrun ... evaluate.py --ckpt "
                  f"{summary['run_dir']}/last.pt (or set eval.suites=[] to skip this step)", flush=True)
        evaluate_run(Path(summary["run_dir"]), cfg)
    return 0


def evaluate_run(run_dir: Path, cfg: RunConfig) -> dict:
    """The end-of-training hook: evaluate ``<run>/last.pt`` (the final epoch, as the official CIFAR script does) on
    ``eval.suites`` into ``<run>/eval`` (the files evaluate.py writes) and log the headline numbers to ``<run>/tb``."""
    from evaluation.suites import run_evaluation
    from models.weights import load_model

    model, info = load_model(run_dir / "last.pt", map_location=str(select_device(cfg.train.device)))
    options = eval_options(run_dir, cfg, epoch=int(info.epoch or 0))
    e = cfg.eval
    print(f"evaluating {run_dir / 'last.pt'} on {', '.join(e.suites)} -> {run_dir / 'eval'}", flush=True)
    results = run_evaluation(model, info, list(e.suites), options, checkpoint_path=run_dir / "last.pt")
    print((run_dir / "eval" / "results.md").read_text(), flush=True)
    return results


def check_evaluation_plan(cfg: RunConfig) -> None:
    """The whole end-of-training evaluation (suites, their data, options) checked before any training.

    Raises:
        ConfigError: naming eval.suites, the evaluator's reason, and the train.py keys that fix it.
    """
    try:
        plan_evaluation(list(cfg.eval.suites), eval_options(run_directory(cfg), cfg), cfg.data.dataset)
    except (ValueError, FileNotFoundError) as exc:
        if isinstance(exc, DeviceError):
            raise
        raise ConfigError(f"eval.suites={cfg.eval.suites}: {exc}. In a training config: eval.data_root=DIR, "
                          f"eval.generate=true, or eval.suites=[] to skip the evaluation after training") from None


def eval_options(run_dir: Path, cfg: RunConfig, epoch: int = 0):
    """The evaluator's options for ``cfg.eval`` on the run in ``run_dir`` (results in ``<run>/eval``)."""
    from evaluation.inference import InferenceSettings
    from evaluation.suites import EvalOptions

    e = cfg.eval
    return EvalOptions(data_root=e.data_root or cfg.data.root, out_dir=str(run_dir / "eval"),
                       inference=InferenceSettings(device=str(select_device(cfg.train.device)),
                                                   batch_size=e.batch_size, workers=cfg.data.num_workers),
                       generate=e.generate, seed=e.seed, limit=e.limit or None,
                       corruptions=tuple(e.corruptions) if e.corruptions else None,
                       severities=tuple(e.severities), tensorboard=str(run_dir / "tb"), tensorboard_step=epoch)


if __name__ == "__main__":
    from runtime.allocator import retain_freed_memory

    retain_freed_memory()  # large temporaries reuse freed heap memory instead of fresh pages (runtime/allocator.py)
    sys.exit(main(get_args_parser().parse_args()))
