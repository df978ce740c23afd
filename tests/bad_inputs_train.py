"""Bad-input rows for train.py (see tests/badinput.py): config files and overrides that are wrong, numbers out of
range, devices this machine lacks, run folders that hold another run or are in use, stale locks, killed runs, and
data that must not run code. Rows that train use a shrunk WRN on 40 tiny CIFAR-format images (one epoch ~1 s).

Faults a row cannot stage (a disk that fills while a checkpoint is written) are pinned by tests named in ``covers``.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import socket
import subprocess
import sys
from pathlib import Path

from tests.badinput import EXIT_ENVIRONMENT, EXIT_USAGE, ROOT, Row, Workspace, copy_shared
from tests.tiny_training import SHRUNK_MODEL, tiny_data_root

RUN_OUTPUTS = ("run/last.pt", "run/best.pt", "run/metrics.jsonl", "run/config.yaml", "run/tb/*", "run/.augmix.lock")


def _tiny(ws: Workspace, epochs: int = 1, out: str | None = "run") -> list[str]:
    """Overrides for a one-second run on the shared tiny CIFAR-10 set, writing into ``ws/<out>``."""
    root = ws.shared["train-tiny-cifar10"]
    args = [f"data.root={root}", f"train.epochs={epochs}", "train.batch_size=8", "train.test_batch_size=16",
            "data.num_workers=0", "train.device=cpu", "train.log_every=2", "eval.suites=[]",
            *SHRUNK_MODEL["wrn40_2"]]
    return args + ([f"train.out_dir={ws.path(out)}"] if out else [])


def _finished_run(folder: Path) -> Path:
    """A finished one-epoch run folder, written by the CLI itself."""
    import train

    root = tiny_data_root(folder, "cifar10")
    args = ["--config", "cifar10_wrn.yaml", f"data.root={root}", "train.epochs=1", "train.batch_size=8",
            "train.test_batch_size=16", "data.num_workers=0", "train.device=cpu", "eval.suites=[]",
            *SHRUNK_MODEL["wrn40_2"], f"train.out_dir={folder / 'run'}"]
    assert train.main(train.get_args_parser().parse_args(args)) == 0
    return folder / "run"


SHARED = {"train-tiny-cifar10": lambda folder: tiny_data_root(folder, "cifar10"), "train-finished-run": _finished_run}


def _config(text: str | bytes, name: str = "mine.yaml"):
    def prepare(ws: Workspace) -> None:
        ws.path(name).write_bytes(text.encode() if isinstance(text, str) else text)
    return prepare


def _with_run(ws: Workspace, relative: str = "run") -> None:
    copy_shared(ws, "train-finished-run", relative)
    ws.path(f"{relative}/notes.txt").write_text("my notes on this run")


def _lock(ws: Workspace, pid: int, start: str | None) -> None:
    ws.path("run").mkdir(exist_ok=True)
    ws.path("run/.augmix.lock").write_text(json.dumps({"host": socket.gethostname(), "pid": pid, "start": start,
                                                        "since": "2024-01-01T00:00:00", "command": "train.py other"}))


def _live_lock(ws: Workspace) -> None:
    from runtime.locks import _process_start

    _lock(ws, 1, _process_start(1))  # pid 1 lives as long as the machine


def _stale_lock(ws: Workspace) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    _lock(ws, gone.pid, "1")


def _tampered_cifar(ws: Workspace) -> None:
    """The tiny CIFAR set with a first training batch whose pickle would run a shell command if unpickled."""
    root = copy_shared(ws, "train-tiny-cifar10", "data")

    class Exploit:
        def __reduce__(self):
            return os.system, (f"touch {ws.path('pwned')}",)

    (root / "cifar-10-batches-py" / "data_batch_1").write_bytes(pickle.dumps({"data": Exploit()}))


def _killed_mid_epoch(ws: Workspace) -> None:
    """A run killed with SIGKILL during its second epoch: last.pt from epoch 1 and a lock of a dead process."""
    args = ["--config", "cifar10_wrn.yaml", *_tiny(ws, epochs=50)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, str(ROOT / "train.py"), *args], cwd=ws.root, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in proc.stdout:
        if line.startswith("epoch 1/50"):
            proc.send_signal(signal.SIGKILL)
            break
    proc.communicate(timeout=60)
    assert ws.path("run/last.pt").is_file() and ws.path("run/.augmix.lock").is_file()


def _tiny_config_and_augmix_run(ws: Workspace) -> None:
    """tiny/cifar10_wrn.yaml: the CIFAR-10 WRN recipe shrunk to the tiny set; runs/cifar10_wrn: its AugMix run."""
    recipe = {"train": {"epochs": 1, "batch_size": 8, "test_batch_size": 16, "device": "cpu"},
              "data": {"num_workers": 0}, "model": {"depth": 10, "width": 1}, "eval": {"suites": []}}
    ws.path("tiny").mkdir()
    ws.path("tiny/cifar10_wrn.yaml").write_text(json.dumps(recipe))  # JSON is YAML
    _with_run(ws, "runs/cifar10_wrn")


def _no_checkpoint(ws: Workspace) -> None:
    ws.path("run").mkdir()
    ws.path("run/metrics.jsonl").write_text('{"epoch": 1}\n')


def _range_row(override: str, valid: str) -> Row:
    key = override.split("=")[0]
    return Row(id=f"train-range-{key.replace('.', '-').replace('_', '-')}", cli="train",
               covers=f"{key} has a stated range, checked when the config is parsed",
               argv=lambda ws: ["--config", "cifar10_wrn.yaml", override],
               code=EXIT_USAGE, message=f"{override} is out of range: expected {valid}")


RANGE_ROWS = [
    ("data.val_size=-1", ">= 0"), ("data.limit_train=0", ">= 1 or null"), ("data.limit_test=0", ">= 1 or null"),
    ("train.max_steps_per_epoch=0", ">= 1 or null"), ("train.eval_every=0", ">= 1"),
    ("train.test_batch_size=0", ">= 1"), ("train.log_every=0", ">= 1"), ("train.batch_size=0", ">= 1"),
    ("train.epochs=0", ">= 1"), ("optim.lr=0", "> 0"), ("optim.momentum=1", "[0, 1)"),
    ("optim.weight_decay=-1", ">= 0"), ("augment.severity=11", "[1, 10]"), ("augment.width=0", ">= 1"),
    ("augment.depth=0", "-1 or >= 1"), ("augment.alpha=0", "> 0"), ("loss.jsd_weight=-1", ">= 0"),
    ("train.dist_timeout=0", "> 0"),
]

ROWS = [
    Row(id="train-unknown-config-key", covers="an unknown override key is named, with the valid ones", cli="train",
        argv=lambda ws: ["--config", "quickstart.yaml", "optim.lrr=0.1", "--print-config"],
        code=EXIT_USAGE, message="optim.lrr"),
    Row(id="train-missing-config-file", covers="a config path that does not exist is named", cli="train",
        argv=lambda ws: ["--config", str(ws.path("nope.yaml"))], code=EXIT_USAGE, message="nope.yaml"),
    # Config files: one line naming the file and the line.
    Row(id="train-yaml-python-tag", covers="a YAML with a Python tag is refused, nothing runs", cli="train",
        prepare=_config("train:\n  epochs: !!python/object/apply:os.system ['touch pwned']\n"),
        argv=lambda ws: ["--config", str(ws.path("mine.yaml"))], code=EXIT_USAGE,
        message="mine.yaml:2: not valid YAML: could not determine a constructor"),
    Row(id="train-yaml-malformed", covers="malformed YAML names the file and the line", cli="train",
        prepare=_config("train:\n  epochs: [3\noptim:\n  lr: 0.1\n"),
        argv=lambda ws: ["--config", str(ws.path("mine.yaml"))], code=EXIT_USAGE,
        message="mine.yaml:3: not valid YAML"),
    Row(id="train-yaml-not-utf8", covers="a config that is not UTF-8 is named", cli="train",
        prepare=_config("name: caf\xe9\n".encode("latin-1")),
        argv=lambda ws: ["--config", str(ws.path("mine.yaml"))], code=EXIT_USAGE,
        message="mine.yaml: not UTF-8 text (byte 0xe9 at offset 9)"),
    Row(id="train-yaml-duplicate-section", covers="a section given twice is refused, not merged or replaced",
        cli="train", prepare=_config("train:\n  epochs: 3\noptim:\n  lr: 0.1\ntrain:\n  seed: 2\n"),
        argv=lambda ws: ["--config", str(ws.path("mine.yaml"))], code=EXIT_USAGE,
        message="mine.yaml:5: not valid YAML: duplicate key 'train' (first given at line 1)"),
    Row(id="train-yaml-duplicate-key", covers="a key given twice in a section is refused (the last does not win)",
        cli="train", prepare=_config("optim:\n  lr: 0.1\n  lr: 0.2\n"),
        argv=lambda ws: ["--config", str(ws.path("mine.yaml"))], code=EXIT_USAGE,
        message="duplicate key 'lr' (first given at line 2)"),
    # Overrides.
    Row(id="train-override-without-value", covers="an override without = is refused", cli="train",
        argv=lambda ws: ["--config", "cifar10_wrn.yaml", "optim.lr"], code=EXIT_USAGE,
        message="override 'optim.lr' is not of the form section.key=value"),
    Row(id="train-override-without-key", covers="an override without a key is refused", cli="train",
        argv=lambda ws: ["--config", "cifar10_wrn.yaml", "=3"], code=EXIT_USAGE,
        message="override '=3' is not of the form section.key=value"),
    Row(id="train-override-too-deep", covers="an override below a value (a.b.c) is refused", cli="train",
        argv=lambda ws: ["--config", "cifar10_wrn.yaml", "optim.lr.x=1"], code=EXIT_USAGE,
        message="'optim.lr' is a value, not a section"),
    Row(id="train-override-unknown-depth", covers="an unknown dotted path is named with the valid keys", cli="train",
        argv=lambda ws: ["--config", "cifar10_wrn.yaml", "a.b.c=1"], code=EXIT_USAGE,
        message="unknown key 'a'; valid keys at top level"),
    Row(id="train-override-bad-yaml", covers="an override value that is not YAML is named", cli="train",
        argv=lambda ws: ["--config", "cifar10_wrn.yaml", "train.epochs=[1"], code=EXIT_USAGE,
        message="override 'train.epochs=[1': not valid YAML"),
    *[_range_row(override, valid) for override, valid in RANGE_ROWS],
    Row(id="train-val-size-too-large", covers="data.val_size must leave training images (checked at data load)",
        cli="train", argv=lambda ws: ["--config", "cifar10_wrn.yaml", *_tiny(ws), "data.val_size=40"],
        code=EXIT_USAGE, message="data.val_size=40 leaves no training images (the training split has 40)"),
    Row(id="train-stop-after-zero", covers="--stop-after 0 is refused", cli="train",
        argv=lambda ws: ["--config", "cifar10_wrn.yaml", "--stop-after", "0"], code=EXIT_USAGE,
        message="--stop-after: expected a number of epochs >= 1, got 0"),
    Row(id="train-stop-after-negative", covers="--stop-after -1 is refused", cli="train",
        argv=lambda ws: ["--config", "cifar10_wrn.yaml", "--stop-after", "-1"], code=EXIT_USAGE,
        message="--stop-after: expected a number of epochs >= 1, got -1"),
    Row(id="train-stop-after-prints-resume", covers="--stop-after prints the exact command that continues",
        cli="train", argv=lambda ws: ["--config", "cifar10_wrn.yaml", *_tiny(ws, epochs=2), "--stop-after", "1"],
        code=0, message="Resume with: python train.py --config cifar10_wrn.yaml data.root=", creates=RUN_OUTPUTS),
    # Devices.
    Row(id="train-device-not-a-device", covers="train.device=tpu is named as not a device", cli="train",
        argv=lambda ws: ["--config", "cifar10_wrn.yaml", *_tiny(ws), "train.device=tpu"], code=EXIT_USAGE,
        message="train.device='tpu'"),
    Row(id="train-device-missing-gpu", covers="a GPU this machine lacks exits 1 and names train.device",
        cli="train", argv=lambda ws: ["--config", "cifar10_wrn.yaml", *_tiny(ws), "train.device=cuda:99"],
        code=EXIT_ENVIRONMENT, message="train.device=cuda:99 but"),
    # Run folders.
    Row(id="train-run-folder-holds-a-run", covers="a fresh run refuses a folder holding a run and offers the ways on",
        cli="train", prepare=_with_run, argv=lambda ws: ["--config", "cifar10_wrn.yaml", *_tiny(ws)],
        code=EXIT_USAGE, message="already holds a run (last.pt, metrics.jsonl, config.yaml, tb/); continue it with "
                                 "--resume auto, start this one elsewhere with train.out_dir=..., or replace it"),
    Row(id="train-baseline-beside-augmix-run", covers="the README baseline command gets its own default folder",
        cli="train", prepare=_tiny_config_and_augmix_run,
        argv=lambda ws: ["--config", str(ws.path("tiny/cifar10_wrn.yaml")), *_tiny(ws, out=None)[:1],
                         "augment.mode=standard"],
        code=0, message="-> runs/cifar10_wrn-standard (starting)", creates=("runs/cifar10_wrn-standard/*",)),
    Row(id="train-overwrite-keeps-foreign-files", covers="--overwrite removes only the run's own files",
        cli="train", prepare=_with_run, argv=lambda ws: ["--config", "cifar10_wrn.yaml", *_tiny(ws), "--overwrite"],
        code=0, message="--overwrite: removed last.pt, metrics.jsonl, config.yaml, tb", creates=RUN_OUTPUTS),
    Row(id="train-resume-auto-without-checkpoint", covers="--resume auto on a run folder with no last.pt is refused",
        cli="train", prepare=_no_checkpoint, argv=lambda ws: ["--config", "cifar10_wrn.yaml", *_tiny(ws), "--resume",
                                                              "auto"],
        code=EXIT_USAGE, message="holds an earlier run (metrics.jsonl) but no last.pt to resume"),
    Row(id="train-run-folder-in-use", covers="a second training process on a run folder is refused, holder named",
        cli="train", prepare=_live_lock, argv=lambda ws: ["--config", "cifar10_wrn.yaml", *_tiny(ws)],
        code=EXIT_ENVIRONMENT, message="is in use by process 1 on"),
    Row(id="train-stale-lock-taken-over", covers="the lock of a process that is gone is taken over", cli="train",
        prepare=_stale_lock, argv=lambda ws: ["--config", "cifar10_wrn.yaml", *_tiny(ws)], code=0,
        message="taking over the stale lock", creates=RUN_OUTPUTS),
    Row(id="train-out-dir-is-a-file", covers="a run folder path that is a file is named", cli="train",
        prepare=lambda ws: ws.path("run").write_text("a file, not a folder"),
        argv=lambda ws: ["--config", "cifar10_wrn.yaml", *_tiny(ws)], code=EXIT_USAGE, message="run"),
    Row(id="train-killed-mid-epoch-resumes", covers="kill -9 mid-epoch: --resume auto takes over the dead lock and "
        "continues from the last checkpoint (bit-identical weights: tests/test_training_run.py::"
        "test_kill_9_mid_epoch_resumes_bit_identically)",
        cli="train", prepare=_killed_mid_epoch,
        argv=lambda ws: ["--config", "cifar10_wrn.yaml", *_tiny(ws, epochs=50), "--resume", "auto",
                         "--stop-after", "1"],
        code=0, message="resuming at epoch 2 step 0", creates=RUN_OUTPUTS),
    Row(id="train-eval-plan-unknown-suite", covers="eval.suites is checked before any training", cli="train",
        argv=lambda ws: ["--config", "cifar10_wrn.yaml", *_tiny(ws), "eval.suites=[cifar10-x]"], code=EXIT_USAGE,
        message="cifar10-x"),
    # Data.
    Row(id="train-tampered-cifar-pickle", covers="a CIFAR batch pickle cannot run code", cli="train",
        prepare=_tampered_cifar,
        argv=lambda ws: ["--config", "cifar10_wrn.yaml", *_tiny(ws), f"data.root={ws.path('data')}"],
        code=EXIT_USAGE, message="refusing to load posix.system"),
]
