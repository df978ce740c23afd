"""train.py end to end: one CPU epoch of every shipped config on tiny data in the real formats; CLI errors."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
import torch

import train
from tests.tiny_training import tiny_overrides
from training.checkpoint import load_checkpoint
from training.config import CONFIG_DIR, load_config

SHIPPED = sorted(p.name for p in CONFIG_DIR.glob("*.yaml"))


def _run(argv: list[str]) -> int:
    return train.main(train.get_args_parser().parse_args(argv))


@pytest.mark.parametrize("config", SHIPPED)
def test_every_shipped_config_trains_one_epoch(tmp_path, config, capsys):
    cfg = load_config(config)
    # Batches of 8 random images: the paper's lr 0.1 may diverge on a shrunk model (a NaN stops with code 3).
    code = _run(["--config", config, *tiny_overrides(tmp_path, cfg.data.dataset, cfg.model.name), "optim.lr=0.01"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "final clean test error" in out
    state = load_checkpoint(tmp_path / "run" / "last.pt")
    assert state["epoch"] == 1 and state["config"]["name"] == Path(config).stem
    assert (tmp_path / "run" / "metrics.jsonl").exists() and any((tmp_path / "run" / "tb").iterdir())


@pytest.mark.parametrize("variant", [["augment.mode=standard"], ["loss.jsd=false"], ["augment.backend=pil"],
                                     ["augment.all_ops=true", "augment.depth=2"]],
                         ids=["standard", "no-jsd", "pil", "all-ops"])
def test_baselines_and_backends_by_override(tmp_path, variant, capsys):
    code = _run(["--config", "cifar10_wrn.yaml", *tiny_overrides(tmp_path, "cifar10", "wrn40_2"), *variant])
    out = capsys.readouterr().out
    assert code == 0, out
    if variant == ["augment.mode=standard"]:
        assert "standard augmentation (flip + crop), CE" in out
    if variant == ["loss.jsd=false"]:
        assert "+ CE" in out
    if variant == ["augment.backend=pil"]:
        assert "pil backend" in out


def test_config_errors_exit_2_with_the_key(tmp_path, capsys):
    assert _run(["--config", "cifar10_wrn.yaml", "optim.lrr=1"]) == 2
    assert "unknown key 'optim.lrr'" in capsys.readouterr().err


def test_missing_dataset_names_where_to_put_it(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default run folder runs/... is relative: a failed start must leave none
    args = ["--config", "cifar10_wrn.yaml", f"data.root={tmp_path}", "train.epochs=1", "train.device=cpu"]
    assert _run([*args, "eval.suites=[]"]) == 2
    assert "cifar-10-batches-py" in capsys.readouterr().err
    assert _run(args) == 2  # the config's eval.suites [cifar10-c] is checked first, before any training
    err = capsys.readouterr().err
    assert "eval.suites=['cifar10-c']: suite cifar10-c:" in err and "eval.generate=true" in err, err
    assert not list(tmp_path.iterdir())


def test_print_config_shows_the_resolved_values(capsys):
    assert _run(["--config", "cifar100_densenet.yaml", "--print-config", "optim.lr=0.2"]) == 0
    out = capsys.readouterr().out
    assert "lr: 0.2" in out and "weight_decay: 0.0001" in out and "dataset: cifar100" in out


def test_end_of_training_evaluation_writes_the_evaluator_report(tmp_path, capsys):
    overrides = tiny_overrides(tmp_path, "digits", "wrn40_2")
    overrides = [o for o in overrides if not o.startswith("eval.suites")] + [
        "eval.suites=[clean,digits-c]", "eval.generate=true", "eval.corruptions=[fog,contrast]",
        "eval.severities=[1,5]", "eval.limit=40"]
    assert _run(["--config", "quickstart.yaml", *overrides]) == 0
    out = capsys.readouterr().out
    results = json.loads((tmp_path / "run" / "eval" / "results.json").read_text())
    assert set(results["suites"]) == {"clean", "digits-c"}
    cells = results["suites"]["digits-c"]["cells"]
    assert {(c["corruption"], c["severity"]) for c in cells} == {(c, s) for c in ("fog", "contrast") for s in (1, 5)}
    assert results["suites"]["digits-c"]["source"]["kind"] == "generated"
    assert (tmp_path / "run" / "eval" / "results.md").read_text() in out  # printed at the end
    assert list((tmp_path / "run" / "tb").glob("events.out.tfevents.*"))


def test_stop_after_prints_the_command_that_continues(tmp_path, capsys):
    overrides = tiny_overrides(tmp_path, "cifar10", "wrn40_2", epochs=2)
    assert _run(["--config", "cifar10_wrn.yaml", *overrides, "--stop-after", "1"]) == 0
    out = capsys.readouterr().out
    hint = [line for line in out.splitlines() if "Resume with: " in line]
    assert len(hint) == 1 and hint[0].startswith("--stop-after 1: stopped after epoch 1/2"), out
    command = shlex.split(hint[0].split("Resume with: ")[1])
    assert command[:2] == ["python", "train.py"] and command[-2:] == ["--resume", "auto"]
    assert "--stop-after" not in command and command[2:-2] == ["--config", "cifar10_wrn.yaml", *overrides]
    assert _run(command[2:]) == 0  # the printed command continues the same run folder
    assert load_checkpoint(tmp_path / "run" / "last.pt")["epoch"] == 2


@pytest.mark.parametrize("value", ["0", "-1", "two"])
def test_stop_after_must_be_a_positive_number_of_epochs(value, capsys):
    with pytest.raises(SystemExit) as exit_info:
        train.get_args_parser().parse_args(["--config", "cifar10_wrn.yaml", "--stop-after", value])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--stop-after: expected a" in err and ">= 1" in err, err


def test_a_device_that_is_not_one_exits_2_and_a_missing_gpu_exits_1(tmp_path, capsys):
    overrides = tiny_overrides(tmp_path, "cifar10", "wrn40_2")
    assert _run(["--config", "cifar10_wrn.yaml", *overrides, "train.device=tpu"]) == 2
    assert "train.device='tpu'" in capsys.readouterr().err
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the missing-GPU exit cannot be observed")
    assert _run(["--config", "cifar10_wrn.yaml", *overrides, "train.device=cuda"]) == 1
    assert "train.device=cuda but CUDA is not available" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_overwrite_and_resume_together_are_refused(tmp_path, capsys):
    overrides = tiny_overrides(tmp_path, "cifar10", "wrn40_2")
    assert _run(["--config", "cifar10_wrn.yaml", *overrides, "--resume", "auto", "--overwrite"]) == 2
    assert "give only one of them" in capsys.readouterr().err
