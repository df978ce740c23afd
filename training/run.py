"""A training run: build the parts from a RunConfig, resume if asked, fit, checkpoint, report.

``prepare_run`` builds everything (nothing below it sees the config object); ``fit`` loops over epochs.
Under torchrun every rank runs both: DistributedDataParallel, each rank its share of every global batch; rank 0
alone writes checkpoints, logs, TensorBoard and progress bars.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import shlex
import shutil
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from models import display_name
from models.weights import Normalization, checkpoint_model_fields, rename_legacy_keys
from models.weights import unwrap_model as unwrap
from runtime.devices import resolve_device
from runtime.distributed import (
    DistEnv,
    all_gather_values,
    barrier,
    broadcast_tensors,
    dist_env,
    init_distributed,
    print_main,
)
from runtime.files import atomic_write_text
from runtime.locks import FolderLockedError, folder_lock
from runtime.seeding import capture_rng_state, derive_seed, restore_rng_state, seed_everything
from training.checkpoint import load_checkpoint, save_checkpoint, state_digest
from training.config import RUNS_DIR, RUNTIME_KEYS, ConfigError, RunConfig, to_dict
from training.data import TrainData, build_data
from training.loop import (
    EpochResult,
    EpochSums,
    NonFiniteLossError,
    RankVote,
    Stepper,
    StopRequest,
    ViewMaker,
    evaluate_error,
    train_one_epoch,
)
from training.optim import build_optimizer, build_scheduler
from training.precision import amp_dtype, keep_head_float32, precision_label
from training.tracking import RunTracker

# Keys that may differ between a checkpoint's config and the resuming command (they do not change the maths).
RESUMABLE_CHANGES = RUNTIME_KEYS
# What a run writes into its folder; a fresh run refuses a folder holding any of them (--overwrite removes them).
RUN_FILES = ("last.pt", "best.pt", "metrics.jsonl", "config.yaml", "tb", "eval")
# Keys whose "all" was 0 in older checkpoints and is null now.
ZERO_WAS_NULL = (("data", "limit_train"), ("data", "limit_test"), ("train", "max_steps_per_epoch"))
# Errors of the machine rather than of the command: a full disk, a read-only or forbidden folder.
ENVIRONMENT_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO)


class RunFolderError(ValueError):
    """The run folder already holds a run and the command neither resumes nor overwrites it."""


class CheckpointWriteError(RuntimeError):
    """A checkpoint could not be written (disk full, read-only folder); the message names the path and what is
    left intact."""

TENSORBOARD_TAGS = {"lr": "train/lr", "train_loss": "train/loss", "train_ce": "train/ce", "train_jsd": "train/jsd",
                    "train_error": "train/error", "images_per_s": "perf/images_per_s", "epoch_s": "perf/epoch_s",
                    "test_error": "test/error", "test_loss": "test/loss", "val_error": "val/error",
                    "val_loss": "val/loss"}


@dataclass
class Run:
    cfg: RunConfig
    run_dir: Path
    device: torch.device
    data: TrainData
    stepper: Stepper
    views: ViewMaker
    tracker: RunTracker
    model_args: dict[str, Any]
    env: DistEnv = DistEnv()
    epoch: int = 0                  # completed epochs
    step_in_epoch: int = 0          # steps already done in epoch ``epoch`` (non-zero after a mid-epoch stop)
    best: dict[str, Any] | None = None
    history: list[dict[str, Any]] | None = None
    epoch_sums: EpochSums | None = None  # the partial sums of epoch ``epoch`` after a mid-epoch stop
    precision: str = "float32"
    saved: dict[str, str] = dataclasses.field(default_factory=dict)  # file name -> "epoch E step S" last written
    lock: contextlib.ExitStack = dataclasses.field(default_factory=contextlib.ExitStack)  # the run folder's lock

    def close(self) -> None:
        """Release the run folder (its lock); idempotent."""
        self.lock.close()


def select_device(name: str, env: DistEnv | None = None) -> torch.device:
    """The device of ``train.device``; under torchrun on CUDA, every rank's own ``cuda:LOCAL_RANK``.

    Raises:
        DeviceError: not a device name, or a device this machine lacks (the message names train.device).
    """
    env = env or DistEnv()
    device = resolve_device(name, option="train.device")
    if env.enabled and device.type == "cuda":
        if name not in ("auto", "cuda"):
            raise ConfigError(f"train.device={name}: under torchrun each rank uses cuda:LOCAL_RANK; set "
                              f"train.device=cuda (or auto) and choose GPUs with CUDA_VISIBLE_DEVICES")
        if env.local_rank >= torch.cuda.device_count():
            raise ConfigError(f"LOCAL_RANK={env.local_rank} but this node has {torch.cuda.device_count()} visible "
                              f"GPUs; lower --nproc-per-node")
        device = torch.device("cuda", env.local_rank)
    return device


def check_distributed(cfg: RunConfig, env: DistEnv, device: torch.device) -> None:
    """Configuration errors that only show with several ranks."""
    t = cfg.train
    if t.batch_size % env.world_size:
        raise ConfigError(f"train.batch_size={t.batch_size} is the global batch and must split evenly over "
                          f"WORLD_SIZE={env.world_size} ranks ({t.batch_size} / {env.world_size} is not whole); "
                          f"use a multiple of {env.world_size}")
    if t.sync_bn and env.enabled and device.type != "cuda":
        raise ConfigError("train.sync_bn=true needs CUDA (SyncBatchNorm runs on GPUs); set train.sync_bn=false on CPU")


def run_directory(cfg: RunConfig) -> Path:
    """``train.out_dir`` (load_config fills it with ``runs/<name>[-<recipe overrides>]`` when not given)."""
    return Path(cfg.train.out_dir) if cfg.train.out_dir else Path(RUNS_DIR) / cfg.name


def prepare_run(cfg: RunConfig, resume: str | None = None, overwrite: bool = False) -> Run:
    """Build data, model, AugMix, loss, optimiser, schedule and tracking; load the checkpoint to resume from.

    The run folder is locked (rank 0) until ``fit`` returns or ``Run.close()``. A fresh run (no ``resume``) refuses a
    folder that already holds a run unless ``overwrite``, which removes only the files of ``RUN_FILES``.
    """
    env = dist_env()
    run_dir = run_directory(cfg)
    if resume and overwrite:
        raise ConfigError("--overwrite starts a fresh run and --resume continues one; give only one of them")
    device = select_device(cfg.train.device, env)
    check_distributed(cfg, env, device)
    init_distributed(env, device, cfg.train.dist_timeout)
    new_folders = [p for p in (run_dir, *run_dir.parents) if not p.exists()]  # deepest first
    lock = _claim_run_folder(run_dir, env, resume, overwrite)
    try:
        run = _build_run(cfg, run_dir, device, env, resume)
    except BaseException:
        lock.close()
        if env.is_main:  # a run that never started leaves no empty folders behind
            for folder in new_folders:
                try:
                    folder.rmdir()
                except OSError:
                    break
        raise
    run.lock = lock
    return run


def _build_run(cfg: RunConfig, run_dir: Path, device: torch.device, env: DistEnv, resume: str | None) -> Run:
    from augment.augmix import build_augmix, normalize
    from augment.jsd import AugMixLoss
    from models import build_model

    ckpt_path = _resume_path(resume, run_dir)
    state = load_checkpoint(ckpt_path) if ckpt_path else None  # every rank loads the same file
    if state is not None:
        _check_resume_config(state["config"], to_dict(cfg), ckpt_path)
    seed_everything(cfg.train.seed)  # the same initial weights on every rank (DDP also broadcasts rank 0's)
    a = cfg.augment
    use_augmix = a.mode == "augmix"
    mean_std = _mean_std(cfg)
    augmix = build_augmix(a.backend, severity=a.severity, width=a.width, depth=a.depth, alpha=a.alpha,
                          all_ops=a.all_ops, fill=a.fill, mean=mean_std[0], std=mean_std[1],
                          compile=a.compile) if use_augmix else None
    data = build_data(cfg, device, augmix if a.backend == "pil" else None, env.rank, env.world_size)
    model_args = {"name": cfg.model.name, "num_classes": data.num_classes,
                  **{k: v for k, v in (("depth", cfg.model.depth), ("width", cfg.model.width),
                                       ("droprate", cfg.model.droprate)) if v is not None}}
    model = build_model(**model_args).to(device)
    keep_head_float32(model)  # autocast covers the body; logits and loss stay float32 (training/precision.py)
    if cfg.train.sync_bn and env.enabled:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)  # same state_dict keys as BatchNorm2d
    if env.rank > 0:
        seed_everything(derive_seed(cfg.train.seed, env.rank))  # dropout masks differ between ranks
    if cfg.train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    o, t = cfg.optim, cfg.train
    optimizer = build_optimizer(model, o.lr, o.momentum, o.nesterov, o.weight_decay, t.batch_size,
                                o.scale_lr_by_batch)
    steps = data.train.steps_per_epoch() if not t.max_steps_per_epoch else min(t.max_steps_per_epoch,
                                                                                 data.train.steps_per_epoch())
    scheduler = build_scheduler(optimizer, o.schedule, t.epochs, steps, o.min_lr)
    dtype = amp_dtype(t.amp, device)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    compiled = torch.compile(model) if t.compile else model
    stepper = Stepper(compiled, AugMixLoss(jsd_weight=cfg.loss.jsd_weight, jsd=cfg.loss.jsd and use_augmix),
                      optimizer, scheduler, scaler, dtype, t.channels_last)
    to_float = lambda images: normalize(images, data.mean, data.std)
    views = ViewMaker(a.backend, a.mode, cfg.loss.jsd, augmix if a.backend == "tensor" else None, to_float,
                      device, t.seed)
    run = Run(cfg, run_dir, device, data, stepper, views, None, model_args, env, history=[],
              precision=precision_label(dtype))
    if state is not None:
        _restore(run, state, ckpt_path)
    if env.enabled:  # after the restore: DDP starts by broadcasting rank 0's weights and buffers
        stepper.model = DistributedDataParallel(compiled, device_ids=[device.index] if device.type == "cuda" else None)
    run.tracker = RunTracker(run_dir, enabled=env.is_main, resume_epoch=run.epoch if state is not None else None)
    if env.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_dir / "config.yaml", yaml.safe_dump(to_dict(cfg), sort_keys=False))
    return run


def _claim_run_folder(run_dir: Path, env: DistEnv, resume: str | None, overwrite: bool) -> contextlib.ExitStack:
    """Rank 0 takes the run folder's lock and checks that a fresh run does not land on an earlier one; every rank
    learns the outcome (one gather), so a refusal ends all ranks with the same message instead of a hang."""
    lock = contextlib.ExitStack()
    problem: tuple[str, str] | None = None
    if env.is_main:
        try:
            lock.enter_context(folder_lock(run_dir, "run folder"))
            _check_run_folder(run_dir, resume, overwrite)
        except (FolderLockedError, RunFolderError) as exc:
            lock.close()
            problem = (type(exc).__name__, str(exc))
    problem = all_gather_values(problem)[0] if env.enabled else problem
    if problem is not None:
        kind, message = problem
        raise (FolderLockedError if kind == FolderLockedError.__name__ else RunFolderError)(message)
    return lock


def _check_run_folder(run_dir: Path, resume: str | None, overwrite: bool) -> None:
    present = [name for name in RUN_FILES if (run_dir / name).exists()]
    if not present or (resume and resume != "auto"):
        return
    if resume == "auto" and (run_dir / "last.pt").is_file():
        return
    if overwrite:
        for name in present:
            path = run_dir / name
            shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
        print_main(f"--overwrite: removed {', '.join(present)} from {run_dir}")
        return
    listed = ", ".join(f"{n}/" if (run_dir / n).is_dir() else n for n in present)
    if resume == "auto":
        raise RunFolderError(f"run folder {run_dir} holds an earlier run ({listed}) but no last.pt to resume; start "
                             f"over with --overwrite (removes {', '.join(RUN_FILES)} only) or choose a new "
                             f"train.out_dir=...")
    raise RunFolderError(f"run folder {run_dir} already holds a run ({listed}); continue it with --resume auto, "
                         f"start this one elsewhere with train.out_dir=..., or replace it with --overwrite (removes "
                         f"{', '.join(RUN_FILES)} only)")


def fit(run: Run, stop_after_epochs: int | None = None, resume_command: str | None = None) -> dict[str, Any]:
    """Train until ``train.epochs`` (or ``stop_after_epochs`` more epochs, or a SIGTERM/SIGINT), checkpointing each
    epoch, then release the run folder. Returns a summary; ``summary["stopped_by"]`` names a signal or
    ``stop-after`` when the run ended early. ``resume_command``: the command that continues the run, printed then."""
    try:
        return _fit(run, stop_after_epochs, resume_command or "--resume auto")
    finally:
        run.close()


def _fit(run: Run, stop_after_epochs: int | None, resume_command: str) -> dict[str, Any]:
    t = run.cfg.train
    if stop_after_epochs is not None and stop_after_epochs < 1:
        raise ValueError(f"--stop-after {stop_after_epochs}: expected a number of epochs >= 1")
    _log_start(run)
    epochs_this_run, stopped_by = 0, None
    hint = f"Resume with: {resume_command}"
    with StopRequest() as signals:
        stop = RankVote(signals, run.env.rank, run.env.world_size, run.device) if run.env.enabled else signals
        while run.epoch < t.epochs:
            if stop_after_epochs is not None and epochs_this_run >= stop_after_epochs:
                stopped_by = "stop-after"
                print_main(f"--stop-after {stop_after_epochs}: stopped after epoch {run.epoch}/{t.epochs}; "
                           f"{run.run_dir / 'last.pt'} is up to date. {hint}")
                break
            on_log = lambda step, values, e=run.epoch: _on_log(run, e, step, values)
            try:
                result = train_one_epoch(run.stepper, run.views, run.data.train, run.epoch, run.step_in_epoch,
                                         stop, on_log, t.log_every, t.max_steps_per_epoch or 0, run.env.is_main,
                                         carried=run.epoch_sums)
            except NonFiniteLossError as exc:
                raise NonFiniteLossError(
                    f"{exc} at epoch {run.epoch + 1}: stopping; the last good checkpoint "
                    f"{run.run_dir / 'last.pt'} is untouched. Lower optim.lr, or try train.amp=off.") from exc
            if not result.completed:
                run.step_in_epoch, run.epoch_sums = result.steps_done, result.sums
                stopped_by = signal.Signals(stop.signum).name
                _save(run, "last.pt", {"interrupted_by": stopped_by})
                print_main(f"{stopped_by}: stopped at epoch {run.epoch + 1} step {result.steps_done}; wrote "
                           f"{run.run_dir / 'last.pt'}. {hint}")
                break
            run.epoch, run.step_in_epoch, run.epoch_sums = run.epoch + 1, 0, None
            epochs_this_run += 1
            _end_of_epoch(run, result)
            if stop.requested:
                stopped_by = signal.Signals(stop.signum).name
                print_main(f"{stopped_by}: stopped after epoch {run.epoch}; {run.run_dir / 'last.pt'} is up to date. "
                           f"{hint}")
                break
    run.tracker.close()
    barrier()  # rank 0's files are complete before any rank returns
    last = run.history[-1] if run.history else {}
    return {"run_dir": str(run.run_dir), "epoch": run.epoch, "stopped_by": stopped_by, "last": last,
            "best": run.best, "precision": run.precision}


def resume_command(argv: list[str], distributed: bool = False) -> str:
    """The command line that continues a run started with ``train.py argv``: the same config and overrides (so the
    same run folder) with ``--resume auto``, without --overwrite / --stop-after / an earlier --resume."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in ("--resume", "--stop-after"):
            skip = True
            continue
        if arg == "--overwrite" or arg.startswith(("--resume=", "--stop-after=")):
            continue
        kept.append(arg)
    launcher = "torchrun ... train.py" if distributed else "python train.py"
    return " ".join([launcher, *map(shlex.quote, kept), "--resume", "auto"])


def _end_of_epoch(run: Run, result: EpochResult) -> dict[str, Any]:
    t, s = run.cfg.train, run.stepper
    record = {"epoch": run.epoch, "step": s.scheduler.last_epoch, "lr": s.optimizer.param_groups[0]["lr"],
              "train_loss": result.loss, "train_ce": result.ce, "train_jsd": result.jsd,
              "train_error": result.train_error, "images_per_s": result.images_per_s, "epoch_s": result.seconds,
              "precision": run.precision}
    _agree_on_weights(run)
    if run.epoch % t.eval_every == 0 or run.epoch == t.epochs:
        to_float, model = run.views.normalize, _local_model(s.model)
        record["test_error"], record["test_loss"] = evaluate_error(model, run.data.test, to_float, run.device,
                                                                   s.amp_dtype, t.channels_last)
        if run.data.val is not None:
            record["val_error"], record["val_loss"] = evaluate_error(model, run.data.val, to_float, run.device,
                                                                     s.amp_dtype, t.channels_last)
    run.history.append(record)
    run.tracker.log_epoch(record)
    run.tracker.scalars(record["step"], {TENSORBOARD_TAGS[k]: 100 * v if k.endswith("_error") else v  # errors in %
                                         for k, v in record.items() if k in TENSORBOARD_TAGS})
    selection = _selection_set(run)
    improved = False
    if selection and f"{selection}_error" in record:
        value = record[f"{selection}_error"]
        if run.best is None or value < run.best["error"]:
            run.best = {"epoch": run.epoch, "error": value, "selected_on": selection}
            improved = True
    _save(run, "last.pt", {})
    if improved:
        _save(run, "best.pt", {})
    test = f" test err {100 * record['test_error']:.2f}%" if "test_error" in record else ""
    val = f" val err {100 * record['val_error']:.2f}%" if "val_error" in record else ""
    print_main(f"epoch {run.epoch}/{t.epochs}: loss {result.loss:.4f} (ce {result.ce:.4f}, jsd {result.jsd:.4f}) "
               f"train err {100 * result.train_error:.2f}%{test}{val} lr {record['lr']:.3g} "
               f"{result.images_per_s:.0f} img/s {result.seconds:.1f}s")
    return record


def _local_model(model: nn.Module) -> nn.Module:
    """The (possibly compiled) model inside DDP: evaluation runs per rank on shards of different lengths, which
    DDP's forward (it broadcasts buffers, a collective) must not see."""
    return model.module if isinstance(model, DistributedDataParallel) else model


def _agree_on_weights(run: Run) -> None:
    """Under torchrun: give every rank rank 0's buffers (BatchNorm running statistics are updated from each rank's
    own batches; DDP only broadcasts them at the next forward), then check that all ranks hold identical weights."""
    if not run.env.enabled:
        return
    model = unwrap(run.stepper.model)
    broadcast_tensors(list(model.buffers()))
    digests = all_gather_values(state_digest(model.state_dict()))
    if len(set(digests)) > 1:
        raise RuntimeError(f"ranks hold different weights after epoch {run.epoch} (sha256 per rank: "
                           f"{', '.join(d[:12] for d in digests)}); a rank diverged")
    print_main(f"weights identical on all {run.env.world_size} ranks (sha256 {digests[0]})")


def _selection_set(run: Run) -> str | None:
    """Which split picks best.pt: the held-out split, the test set (the official code's choice, optimistic), or
    none (then best.pt is not written; CIFAR-C results use the final epoch anyway)."""
    choice = run.cfg.train.select_on
    if choice == "auto":
        return "val" if run.data.val is not None else None
    return None if choice == "none" else choice


def _save(run: Run, name: str, extra: dict[str, Any]) -> None:
    """Called on every rank (it gathers each rank's RNG state); rank 0 alone writes.

    Raises:
        CheckpointWriteError: the file could not be written; the previous one at that path is intact.
    """
    s = run.stepper
    rng = capture_rng_state()
    rng_ranks = all_gather_values(rng) if run.env.enabled else None
    if not run.env.is_main:
        return
    if rng_ranks is not None:
        extra = {**extra, "rng_ranks": rng_ranks}
    if run.epoch_sums is not None:
        extra = {**extra, "epoch_sums": dataclasses.asdict(run.epoch_sums)}
    model_fields = checkpoint_model_fields(s.model, run.model_args, run.cfg.data.dataset,
                                           Normalization(run.data.mean, run.data.std), run.data.image_size, run.epoch)
    path = run.run_dir / name
    try:
        save_checkpoint(
            path, **model_fields, optimizer=s.optimizer.state_dict(), scheduler=s.scheduler.state_dict(),
            scaler=s.scaler.state_dict(), step_in_epoch=run.step_in_epoch,
            global_step=s.scheduler.last_epoch, rng=rng, world_size=run.env.world_size, config=to_dict(run.cfg),
            metrics={"history": run.history, "best": run.best}, precision=run.precision, saved_at=time.time(),
            **extra)
    except OSError as exc:
        kept = (f"the last good checkpoint {path} ({run.saved[name]}) is intact" if name in run.saved else
                f"no earlier {name} exists" if not path.exists() else f"the earlier {path} is intact")
        raise CheckpointWriteError(f"cannot write checkpoint {path}: {exc.strerror or exc}; {kept}. Free "
                                   f"space or make the folder writable, then rerun with --resume auto") from exc
    run.saved[name] = f"epoch {run.epoch} step {run.step_in_epoch}" if run.step_in_epoch else f"epoch {run.epoch}"


def _restore(run: Run, state: dict[str, Any], path: Path) -> None:
    s = run.stepper
    unwrap(s.model).load_state_dict(rename_legacy_keys(state["model"], run.model_args["name"], path))
    s.optimizer.load_state_dict(state["optimizer"])
    s.scheduler.load_state_dict(state["scheduler"])
    s.scaler.load_state_dict(state["scaler"])
    run.epoch, run.step_in_epoch = state["epoch"], state["step_in_epoch"]
    run.history = list(state["metrics"]["history"])
    run.best = state["metrics"]["best"]
    if run.step_in_epoch and "epoch_sums" in state:
        run.epoch_sums = EpochSums(**state["epoch_sums"])
    elif run.step_in_epoch:
        print_main(f"note: {path} predates stored epoch sums: epoch {run.epoch + 1}'s train loss and error will "
                   f"cover only the steps after step {run.step_in_epoch}")
    run.saved["last.pt"] = (f"epoch {run.epoch} step {run.step_in_epoch}" if run.step_in_epoch
                            else f"epoch {run.epoch}")
    saved_world, world = int(state.get("world_size", 1)), run.env.world_size
    if saved_world == world:
        restore_rng_state(state["rng_ranks"][run.env.rank] if "rng_ranks" in state else state["rng"])
        return
    restore_rng_state(state["rng"])
    if run.env.rank > 0:
        seed_everything(derive_seed(run.cfg.train.seed, run.env.rank, s.scheduler.last_epoch))
    per_rank = lambda n: f"{run.cfg.train.batch_size // n} images per rank"
    print_main(f"note: the checkpoint was written by {saved_world} rank(s) and resumes on {world}: the global batches, "
               f"their order and AugMix draws are the same, but BatchNorm statistics now come from "
               f"{per_rank(world)} (was {per_rank(saved_world)}) and dropout masks differ, so the run will not match "
               f"an uninterrupted {saved_world}-rank run bit for bit.")


def _resume_path(resume: str | None, run_dir: Path) -> Path | None:
    if not resume:
        return None
    if resume == "auto":
        path = run_dir / "last.pt"
        return path if path.is_file() else None
    path = Path(resume)
    if not path.is_file():
        raise FileNotFoundError(f"--resume {resume}: no such checkpoint (use --resume auto to pick "
                                f"{run_dir / 'last.pt'} when it exists)")
    return path


def _check_resume_config(saved: dict, current: dict, path: Path) -> None:
    saved = _with_defaults(saved, to_dict(RunConfig()))  # keys added since the checkpoint was written
    for section, key in ZERO_WAS_NULL:
        if saved.get(section, {}).get(key) == 0:
            saved[section] = {**saved[section], key: None}
    diffs = [f"{key}: {a!r} in the checkpoint, {b!r} now" for key, a, b in _flat_diff(saved, current)
             if not key.startswith(RESUMABLE_CHANGES)]
    if diffs:
        raise ConfigError(f"cannot resume {path} with a different config ({'; '.join(diffs)}). Drop those "
                          f"overrides, or start a new run with another train.out_dir.")


def _with_defaults(saved: dict, defaults: dict) -> dict:
    merged = dict(saved)
    for key, value in defaults.items():
        if key not in merged:
            merged[key] = value
        elif isinstance(value, dict) and isinstance(merged[key], dict):
            merged[key] = _with_defaults(merged[key], value)
    return merged


def _flat_diff(a: dict, b: dict, prefix: str = ""):
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key), b.get(key)
        if isinstance(va, dict) and isinstance(vb, dict):
            yield from _flat_diff(va, vb, f"{prefix}{key}.")
        elif va != vb:
            yield f"{prefix}{key}", va, vb


def _mean_std(cfg: RunConfig):
    from training.data import normalization

    return normalization(cfg.data.dataset, cfg.data.mean, cfg.data.std)


def _on_log(run: Run, epoch: int, step: int, values: dict[str, float]) -> None:
    global_step = run.stepper.scheduler.last_epoch
    run.tracker.scalars(global_step, {f"train/{k}_step": v for k, v in values.items()})


def _log_start(run: Run) -> None:
    if not run.env.is_main:
        return
    cfg = run.cfg
    a = cfg.augment
    aug = (f"AugMix ({a.backend} backend{', compiled' if a.compile else ''}, severity {a.severity}, width {a.width}, "
           f"depth {a.depth}, alpha {a.alpha}{', all ops' if a.all_ops else ''}) + "
           f"{'JSD x' + str(cfg.loss.jsd_weight) if cfg.loss.jsd else 'CE'}"
           if a.mode == "augmix" else "standard augmentation (flip + crop), CE")
    n_params = sum(p.numel() for p in run.stepper.model.parameters())
    where = f"resuming at epoch {run.epoch + 1} step {run.step_in_epoch}" if run.epoch or run.step_in_epoch \
        else "starting"
    args = ", ".join(f"{k}={v}" for k, v in run.model_args.items() if k != "name")
    print(f"run {cfg.name} -> {run.run_dir} ({where})\n  data: {run.data.description}\n  model: "
          f"{display_name(run.model_args)} ({run.model_args['name']}, {args}; {n_params:,} parameters) on "
          f"{run.device}\n  precision: {run.precision}\n"
          f"  augmentation: {aug}\n  {_scale_line(run)}", flush=True)
    if run.epoch == 0 and run.step_in_epoch == 0 and cfg.train.image_grid and a.mode == "augmix":
        _log_views(run)


def _scale_line(run: Run) -> str:
    """World size, global and per-rank batch, and the learning rate these imply."""
    o, t, world = run.cfg.optim, run.cfg.train, run.env.world_size
    base = run.stepper.scheduler.base_lrs[0]
    lr = f"lr {base:.4g}" + (f" (= {o.lr:g} x {t.batch_size} / 256)" if o.scale_lr_by_batch else "")
    sync = ", SyncBatchNorm" if t.sync_bn and run.env.enabled else ""
    return f"scale: {world} rank(s){sync}; global batch {t.batch_size}, {t.batch_size // world} per rank; {lr}"


def _log_views(run: Run) -> None:
    """A TensorBoard grid of clean images and AugMix views at the start (row 1 clean, then one row per view)."""
    images = run.data.preview.to(run.device)
    mean = torch.tensor(run.data.mean, device=run.device).view(1, 3, 1, 1)
    std = torch.tensor(run.data.std, device=run.device).view(1, 3, 1, 1)
    rows = [images.float() / 255]
    if run.views.augmix is not None:
        g = torch.Generator(device=run.device).manual_seed(run.cfg.train.seed)
        for _ in range(2):
            rows.append((run.views.augmix(images, generator=g) * std + mean).clamp(0, 1))
    else:
        import numpy as np
        from PIL import Image

        augmix = run.data.train.dataset.augmix
        for r in range(2):
            views = [augmix(Image.fromarray(im.permute(1, 2, 0).cpu().numpy()), np.random.RandomState(r))
                     for im in images]
            rows.append((torch.stack(views).to(run.device) * std + mean).clamp(0, 1))
    run.tracker.image_grid("augmix/clean_then_views", torch.cat(rows), 0, nrow=len(images))
