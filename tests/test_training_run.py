"""training/run.py, loop.py, checkpoint.py: exact resume, SIGTERM checkpoints, NaN stops, atomic full state."""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import training.loop
from runtime.files import sha256_file
from runtime.locks import LOCK_NAME, FolderLockedError, _process_start
from tests.tiny_training import tiny_overrides
from training.checkpoint import load_checkpoint
from training.config import ConfigError, load_config
from training.loop import NonFiniteLossError, train_step
from training.precision import classifier_head
from training.run import RunFolderError, fit, prepare_run

ROOT = Path(__file__).resolve().parents[1]


def _cfg(tmp_path, *extra, epochs=2, model="wrn40_2"):
    return load_config("cifar10_wrn.yaml", tiny_overrides(tmp_path, "cifar10", model, epochs, extra))


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(run_dir / "last.pt")["model"]


def _assert_identical(a: dict, b: dict):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), f"{key} differs"


@pytest.mark.parametrize("backend_overrides", [
    ("augment.backend=tensor",),
    ("augment.backend=pil", "data.num_workers=0"),
    ("augment.backend=tensor", "model.droprate=0.3"),  # dropout draws from the global RNG: restored on resume
], ids=["tensor", "pil", "tensor-dropout"])
def test_resume_is_bit_identical(tmp_path, backend_overrides):
    straight = fit(prepare_run(_cfg(tmp_path / "a", *backend_overrides)))
    first = fit(prepare_run(_cfg(tmp_path / "b", *backend_overrides)), stop_after_epochs=1)
    assert first["epoch"] == 1 and first["stopped_by"] == "stop-after"
    resumed = fit(prepare_run(_cfg(tmp_path / "b", *backend_overrides), resume="auto"))
    assert resumed["epoch"] == 2
    _assert_identical(_weights(Path(straight["run_dir"])), _weights(Path(resumed["run_dir"])))
    lrs = lambda run_dir: [r["lr"] for r in load_checkpoint(run_dir / "last.pt")["metrics"]["history"]]
    assert lrs(Path(straight["run_dir"])) == lrs(Path(resumed["run_dir"]))  # the schedule continued, not restarted
    lines = (Path(resumed["run_dir"]) / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2  # one line per epoch, none duplicated by the resume


def test_mid_epoch_stop_checkpoints_and_resumes_exactly(tmp_path, monkeypatch):
    straight = fit(prepare_run(_cfg(tmp_path / "a")))
    real_step, calls = training.loop.train_step, {"n": 0}

    def step_then_sigterm(*args, **kwargs):
        out = real_step(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 7:  # epoch 2 (5 steps per epoch), step 2
            signal.raise_signal(signal.SIGTERM)
        return out

    monkeypatch.setattr(training.loop, "train_step", step_then_sigterm)
    interrupted = fit(prepare_run(_cfg(tmp_path / "b")))
    assert interrupted["stopped_by"] == "SIGTERM"
    state = load_checkpoint(tmp_path / "b" / "run" / "last.pt")
    assert (state["epoch"], state["step_in_epoch"], state["global_step"]) == (1, 2, 7)
    assert state["interrupted_by"] == "SIGTERM"
    monkeypatch.setattr(training.loop, "train_step", real_step)
    fit(prepare_run(_cfg(tmp_path / "b"), resume="auto"))
    _assert_identical(_weights(Path(straight["run_dir"])), _weights(tmp_path / "b" / "run"))
    # The resumed epoch reports the means of all its steps (the stored partial sums), as the uninterrupted run.
    timing = ("images_per_s", "epoch_s")
    lines = lambda run_dir: [{k: v for k, v in json.loads(line).items() if k not in timing}
                             for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert lines(tmp_path / "b" / "run") == lines(Path(straight["run_dir"]))


def test_checkpoint_holds_the_full_state(tmp_path):
    summary = fit(prepare_run(_cfg(tmp_path, epochs=1)))
    state = load_checkpoint(Path(summary["run_dir"]) / "last.pt")
    for key in ("model", "optimizer", "scheduler", "scaler", "epoch", "step_in_epoch", "global_step", "rng",
                "config", "metrics", "model_args", "normalization", "dataset", "image_size", "format_version"):
        assert key in state, key
    assert set(state["rng"]) >= {"python", "numpy", "torch", "cuda"}
    assert state["model_args"] == {"name": "wrn40_2", "num_classes": 10, "depth": 10, "width": 1}
    assert state["config"]["optim"]["lr"] == 0.1 and state["normalization"]["mean"] == [0.5, 0.5, 0.5]
    assert (Path(summary["run_dir"]) / "config.yaml").read_text().startswith("data:")
    assert not any(p.name.endswith(".tmp") for p in Path(summary["run_dir"]).iterdir())


def test_best_checkpoint_is_selected_on_the_named_split(tmp_path):
    summary = fit(prepare_run(_cfg(tmp_path, "data.val_size=8", epochs=2)))
    best = load_checkpoint(Path(summary["run_dir"]) / "best.pt")
    assert best["metrics"]["best"]["selected_on"] == "val"
    summary = fit(prepare_run(_cfg(tmp_path / "t", "train.select_on=test", epochs=1)))
    assert load_checkpoint(Path(summary["run_dir"]) / "best.pt")["metrics"]["best"]["selected_on"] == "test"
    summary = fit(prepare_run(_cfg(tmp_path / "n", epochs=1)))
    assert not (Path(summary["run_dir"]) / "best.pt").exists()  # no held-out split and no explicit choice


def test_nan_loss_stops_with_a_message_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    fit(prepare_run(_cfg(tmp_path)), stop_after_epochs=1)
    last = tmp_path / "run" / "last.pt"
    before = sha256_file(last)
    run = prepare_run(_cfg(tmp_path), resume="auto")
    real_forward = run.stepper.loss_fn.forward

    def nan_loss(logits, labels):
        loss, terms = real_forward(logits, labels)
        return loss * float("nan"), terms

    monkeypatch.setattr(run.stepper.loss_fn, "forward", nan_loss)
    with pytest.raises(NonFiniteLossError, match="loss is nan.*epoch 2.*last good checkpoint"):
        fit(run)
    assert sha256_file(last) == before


def test_resume_refuses_a_different_recipe(tmp_path):
    fit(prepare_run(_cfg(tmp_path)), stop_after_epochs=1)
    with pytest.raises(ConfigError, match="optim.lr: 0.1 in the checkpoint, 0.05 now"):
        prepare_run(_cfg(tmp_path, "optim.lr=0.05"), resume="auto")
    prepare_run(_cfg(tmp_path, "data.num_workers=2"), resume="auto")  # runtime-only keys may change


def test_truncated_checkpoint_is_a_clear_error(tmp_path):
    fit(prepare_run(_cfg(tmp_path, epochs=1)))
    last = tmp_path / "run" / "last.pt"
    bad = tmp_path / "bad.pt"
    bad.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    with pytest.raises(ValueError, match="bad.pt is not a readable checkpoint"):
        load_checkpoint(bad)


def test_sigterm_to_the_cli_writes_a_checkpoint_and_exits_cleanly(tmp_path):
    overrides = tiny_overrides(tmp_path, "cifar10", "wrn40_2", epochs=200)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, str(ROOT / "train.py"), "--config", "cifar10_wrn.yaml", *overrides],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    output = []
    deadline = time.time() + 120
    for line in proc.stdout:  # wait until training is under way
        output.append(line)
        if line.startswith("epoch 1/200") or time.time() > deadline:
            break
    proc.send_signal(signal.SIGTERM)
    rest, _ = proc.communicate(timeout=120)
    text = "".join(output) + rest
    assert proc.returncode == 143, text
    assert "Resume with: python train.py --config cifar10_wrn.yaml" in text and text.count("--resume auto") >= 1
    state = load_checkpoint(tmp_path / "run" / "last.pt")
    assert state["epoch"] >= 1 and "SIGTERM" in text
    assert 1 <= state["epoch"] < 200


def test_tensorboard_gets_the_named_scalars_and_the_view_grid(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    summary = fit(prepare_run(_cfg(tmp_path, epochs=1)))
    events = EventAccumulator(str(Path(summary["run_dir"]) / "tb")).Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"train/loss", "train/ce", "train/jsd", "train/lr", "train/error", "test/error", "test/loss",
            "perf/images_per_s"} <= scalars
    assert "train/loss_step" in scalars  # per-step curve every log_every steps
    error = events.Scalars("test/error")[-1].value
    assert error == pytest.approx(100 * summary["last"]["test_error"])  # percent, as the evaluator's eval/ scalars
    assert events.Tags()["images"] == ["augmix/clean_then_views"]


def test_bf16_autocast_keeps_the_head_and_the_loss_in_float32(tmp_path, capsys):
    run = prepare_run(_cfg(tmp_path, "train.amp=bf16", epochs=1))
    _, head = classifier_head(run.stepper.model)
    features = {}
    head.register_forward_pre_hook(lambda module, args: features.__setitem__("x", args[0].detach()))
    weight, bias = head.weight.detach().clone(), head.bias.detach().clone()
    loader = run.data.train
    loader.set_epoch(0, 0)
    _, total, part = loader.shard(0)
    inputs, labels = run.views(next(iter(loader)), 0, 0, part, total)
    loss, terms, logits = train_step(run.stepper, inputs, labels)
    assert features["x"].dtype == torch.bfloat16  # the body ran under autocast
    assert logits.dtype == torch.float32
    reference = F.linear(features["x"].float(), weight, bias)  # the head in float32 on the same features
    _, expected = run.stepper.loss_fn(reference, labels)
    torch.testing.assert_close(terms["jsd"], expected["jsd"], rtol=1e-6, atol=0)
    torch.testing.assert_close(terms["ce"], expected["ce"], rtol=1e-6, atol=0)
    summary = fit(run)
    label = "bf16 autocast body, float32 head and loss"
    assert f"precision: {label}" in capsys.readouterr().out
    assert summary["last"]["precision"] == label
    assert load_checkpoint(tmp_path / "run" / "last.pt")["precision"] == label


def test_every_model_ends_in_the_head_that_is_kept_in_float32():
    from models import MODELS, build_model
    from tests.tiny_training import SHRUNK_MODEL

    size = {"wrn40_2": {"depth": 10, "width": 1}, "densenet40_12": {"depth": 10, "width": 4},
            "resnext29": {"depth": 11, "width": 4}, "allconv": {"width": 16}, "resnet18": {"width": 8},
            "resnet50": {"width": 8}, "alexnet": {}}
    assert set(size) == set(MODELS) and set(SHRUNK_MODEL) <= set(size)
    for name in MODELS:
        model = build_model(name, 7, **size[name]).eval()
        _, head = classifier_head(model)
        seen = {}
        head.register_forward_hook(lambda module, args, out, seen=seen: seen.__setitem__("out", out))
        with torch.no_grad():
            logits = model(torch.randn(1, 3, 64 if name == "alexnet" else 32, 64 if name == "alexnet" else 32))
        assert head.out_features == 7 and seen["out"] is logits, name  # the head's output is the model's


def test_a_fresh_run_refuses_a_folder_holding_a_run_and_overwrite_keeps_foreign_files(tmp_path):
    fit(prepare_run(_cfg(tmp_path, epochs=1)))
    run_dir = tmp_path / "run"
    (run_dir / "notes.txt").write_text("mine")
    (run_dir / "eval").mkdir()
    (run_dir / "eval" / "results.json").write_text("{}")
    before = sha256_file(run_dir / "last.pt")
    with pytest.raises(RunFolderError, match=r"already holds a run \(last.pt, metrics.jsonl, config.yaml, tb/, "
                                             r"eval/\); continue it with --resume auto, .*train.out_dir=.*--overwrite"):
        prepare_run(_cfg(tmp_path, epochs=1))
    assert sha256_file(run_dir / "last.pt") == before and not (run_dir / LOCK_NAME).exists()
    run = prepare_run(_cfg(tmp_path, epochs=1), overwrite=True)
    assert not (run_dir / "last.pt").exists() and not (run_dir / "metrics.jsonl").exists()
    assert not (run_dir / "eval").exists() and (run_dir / "notes.txt").read_text() == "mine"
    assert (run_dir / LOCK_NAME).exists()  # held until fit returns
    fit(run)
    assert not (run_dir / LOCK_NAME).exists() and load_checkpoint(run_dir / "last.pt")["epoch"] == 1


def test_a_run_folder_in_use_is_refused_and_a_stale_lock_taken_over(tmp_path, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        record = {"host": socket.gethostname(), "pid": holder.pid, "start": _process_start(holder.pid),
                  "since": "2024-01-01T00:00:00", "command": "train.py --config cifar10_wrn.yaml"}
        (run_dir / LOCK_NAME).write_text(json.dumps(record))
        with pytest.raises(FolderLockedError, match=f"run folder {run_dir} is in use by process {holder.pid}"):
            prepare_run(_cfg(tmp_path, epochs=1))
    finally:
        holder.kill()
        holder.wait()
    run = prepare_run(_cfg(tmp_path, epochs=1))  # the holder is gone: its lock is stale
    assert "taking over the stale lock" in capsys.readouterr().err
    run.close()
    assert not (run_dir / LOCK_NAME).exists()


def test_a_checkpoint_from_before_the_wrn_rename_resumes(tmp_path, capsys):
    fit(prepare_run(_cfg(tmp_path, epochs=2)), stop_after_epochs=1)
    path = tmp_path / "run" / "last.pt"
    state = torch.load(path, weights_only=True)
    assert any(".conv_shortcut." in key for key in state["model"])
    state["model"] = {key.replace(".conv_shortcut.", ".convShortcut."): v for key, v in state["model"].items()}
    torch.save(state, path)
    assert fit(prepare_run(_cfg(tmp_path, epochs=2), resume="auto"))["epoch"] == 2
    assert "model: WRN-10-1 (wrn40_2, num_classes=10, depth=10, width=1;" in capsys.readouterr().out


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS], ids=["disk-full", "read-only"])
def test_a_checkpoint_that_cannot_be_written_names_it_and_keeps_the_last_good_one(tmp_path, monkeypatch, capsys,
                                                                                  code):
    import train

    argv = ["--config", "cifar10_wrn.yaml", *tiny_overrides(tmp_path, "cifar10", "wrn40_2", epochs=2)]
    assert train.main(train.get_args_parser().parse_args([*argv, "--stop-after", "1"])) == 0
    last = tmp_path / "run" / "last.pt"
    before = sha256_file(last)
    real_replace = os.replace

    def failing_replace(src, dst):
        if str(dst).endswith(".pt"):
            raise OSError(code, os.strerror(code), str(dst))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    assert train.main(train.get_args_parser().parse_args([*argv, "--resume", "auto"])) == 1
    err = capsys.readouterr().err
    assert (f"error: cannot write checkpoint {last}: {os.strerror(code)}; the last good checkpoint {last} (epoch 1) "
            f"is intact") in err, err
    assert sha256_file(last) == before
    assert not [p.name for p in last.parent.iterdir() if p.name.endswith(".tmp") or p.name == LOCK_NAME]


def test_kill_9_mid_epoch_resumes_bit_identically(tmp_path):
    """SIGKILL leaves no chance to checkpoint: the run resumes from the last epoch's last.pt (taking over the dead
    process's lock) and ends with the weights of an uninterrupted run. Both runs are processes with one thread."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    command = lambda where, *extra: [sys.executable, str(ROOT / "train.py"), "--config", "cifar10_wrn.yaml",
                                     *tiny_overrides(where, "cifar10", "wrn40_2", epochs=3), *extra]
    straight = subprocess.run(command(tmp_path / "a"), cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert straight.returncode == 0, straight.stdout + straight.stderr
    proc = subprocess.Popen(command(tmp_path / "b"), cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    for line in proc.stdout:
        if line.startswith("epoch 2/3"):
            proc.send_signal(signal.SIGKILL)  # during epoch 3
            break
    proc.communicate(timeout=60)
    assert load_checkpoint(tmp_path / "b" / "run" / "last.pt")["epoch"] == 2
    resumed = subprocess.run(command(tmp_path / "b", "--resume", "auto"), cwd=ROOT, env=env, capture_output=True,
                             text=True, timeout=300)
    assert resumed.returncode == 0 and "taking over the stale lock" in resumed.stderr, resumed.stdout + resumed.stderr
    _assert_identical(_weights(tmp_path / "a" / "run"), _weights(tmp_path / "b" / "run"))
