"""training/run.py, loop.py, checkpoint.py: exact resume, SIGTERM checkpoints, NaN stops, atomic full state."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import training.loop
from runtime.files import sha256_file
from tests.tiny_training import tiny_overrides
from training.checkpoint import load_checkpoint
from training.config import ConfigError, load_config
from training.loop import NonFiniteLossError
from training.run import fit, prepare_run

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
