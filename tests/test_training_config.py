"""training/config.py and optim.py: YAML + dotted overrides, errors naming keys, the paper's LR schedules."""

from __future__ import annotations

import math

import pytest

from training.config import CONFIG_DIR, ConfigError, load_config, to_dict
from training.optim import cosine_factor, step_factor


def test_bare_name_resolves_against_configs_and_overrides_win():
    cfg = load_config("cifar10_densenet.yaml", ["optim.lr=0.05", "train.epochs=1", "augment.all_ops=true"])
    assert cfg.name == "cifar10_densenet" and cfg.model.name == "densenet40_12"
    assert cfg.optim.weight_decay == 1e-4 and cfg.optim.lr == 0.05 and cfg.train.epochs == 1
    assert cfg.augment.all_ops is True
    assert load_config("cifar10_densenet").model.name == "densenet40_12"  # the suffix is optional
    assert load_config(CONFIG_DIR / "cifar10_wrn.yaml").name == "cifar10_wrn"  # a path works too


def test_paper_defaults_are_the_code_defaults():
    cfg = load_config("cifar10_wrn.yaml")
    assert (cfg.optim.lr, cfg.optim.momentum, cfg.optim.nesterov, cfg.optim.weight_decay) == (0.1, 0.9, True, 5e-4)
    assert (cfg.train.batch_size, cfg.train.epochs, cfg.optim.schedule, cfg.optim.min_lr) == (128, 100, "cosine", 1e-6)
    assert (cfg.augment.severity, cfg.augment.width, cfg.augment.depth, cfg.augment.alpha) == (3, 3, -1, 1.0)
    assert cfg.loss.jsd and cfg.loss.jsd_weight == 12.0
    assert load_config("cifar10_resnext.yaml").train.epochs == 200
    imagenet = load_config("imagenet_resnet50.yaml")
    assert imagenet.augment.severity == 1 and not imagenet.optim.nesterov and imagenet.optim.schedule == "step"


@pytest.mark.parametrize("override,expected", [
    ("optim.lrr=0.1", "unknown key 'optim.lrr'; valid keys at optim: lr, momentum"),
    ("optimizer.lr=0.1", "unknown key 'optimizer'; valid keys at top level: data, augment"),
    ("optim.lr=fast", "optim.lr expects float, got 'fast'"),
    ("train.epochs=1.5", "train.epochs expects int, got 1.5"),
    ("loss.jsd=maybe", "loss.jsd expects bool"),
    ("augment.backend=cuda", "augment.backend must be one of tensor, pil"),
    ("augment.severity=11", "augment.severity must be in [1, 10]"),
    ("augment.depth=0", "augment.depth must be -1"),
    ("augment=3", "'augment' is a section"),
    ("optim.lr", "not of the form section.key=value"),
    ("train.select_on=val", "needs a held-out split"),
    ("augment.compile=true augment.backend=pil", "has no effect with augment.backend=pil"),
])
def test_bad_overrides_name_the_key_and_what_was_expected(override, expected):
    with pytest.raises(ConfigError, match=expected.replace("[", "\\[").replace("]", "\\]").replace("(", "\\(")):
        load_config("cifar10_wrn.yaml", override.split())


def test_unknown_key_in_yaml_names_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  epoch: 3\n")
    with pytest.raises(ConfigError, match=f"{path}: unknown key 'train.epoch'; valid keys at train: epochs"):
        load_config(path)


def test_missing_config_lists_the_shipped_ones():
    with pytest.raises(ConfigError, match="shipped configs: .*cifar10_wrn.yaml"):
        load_config("cifar11_wrn.yaml")


def test_standard_baseline_and_no_jsd_variant_by_override():
    standard = load_config("cifar10_wrn.yaml", ["augment.mode=standard"])
    assert standard.augment.mode == "standard" and standard.loss.jsd is False  # recorded in the resolved config
    no_jsd = load_config("cifar10_wrn.yaml", ["loss.jsd=false"])
    assert no_jsd.augment.mode == "augmix" and not no_jsd.loss.jsd
    assert to_dict(no_jsd)["loss"] == {"jsd": False, "jsd_weight": 12.0}


def test_cosine_schedule_matches_the_paper_values():
    # docs/augmix.md §7.1: 0.1 / 0.0854 / 0.0500 / 0.0146 / 1e-6 at 0 / 25 / 50 / 75 / 100 % of T
    total, lr = 39_100, 0.1
    values = [lr * cosine_factor(int(f * total), total, 1e-6 / lr) for f in (0, 0.25, 0.5, 0.75, 1.0)]
    for got, want in zip(values, [0.1, 0.0854, 0.0500, 0.0146, 1e-6], strict=True):
        assert math.isclose(got, want, abs_tol=5e-5 if want > 1e-3 else 1e-12)  # the table rounds to 4 places


def test_step_schedule_drops_at_thirds():
    steps = 10
    factors = [step_factor(e * steps, steps, 90) for e in (0, 29, 30, 59, 60, 89)]
    assert factors == [1.0, 1.0, 0.1, 0.1, 0.01, 0.01]
