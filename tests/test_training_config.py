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
    ("augment.severity=11", "augment.severity=11 is out of range: expected [1, 10]"),
    ("augment.depth=0", "augment.depth=0 is out of range: expected -1 or >= 1"),
    ("augment=3", "'augment' is a section"),
    ("optim.lr", "not of the form section.key=value"),
    ("=3", "not of the form section.key=value"),
    ("optim..lr=1", "not of the form section.key=value"),
    ("a.b.c=1", "unknown key 'a'; valid keys at top level"),
    ("optim.lr.x=1", "'optim.lr' is a value, not a section"),
    ("train.epochs=[1", "override 'train.epochs=[1': not valid YAML"),
    ("train.seed=!!python/object/apply:os.getpid []", "tags that build Python objects are refused"),
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


# Every numeric key with one value just outside its range: one line naming key, value and the valid range.
OUT_OF_RANGE = [
    ("data.val_size=-1", ">= 0"), ("data.limit_train=0", ">= 1 or null"), ("data.limit_test=-5", ">= 1 or null"),
    ("data.num_workers=-1", ">= 0"), ("data.image_size=4", "[8, 4096]"), ("data.std=[0.5,0,0.5]", "> 0"),
    ("train.max_steps_per_epoch=0", ">= 1 or null"), ("train.eval_every=0", ">= 1"),
    ("train.test_batch_size=0", ">= 1"), ("train.log_every=0", ">= 1"), ("train.batch_size=0", ">= 1"),
    ("train.epochs=0", ">= 1"), ("train.dist_timeout=0", "> 0"), ("train.seed=-1", "[0, 4.29497e+09]"),
    ("train.image_grid=-1", ">= 0"), ("optim.lr=0", "> 0"), ("optim.lr=-0.1", "> 0"), ("optim.momentum=1", "[0, 1)"),
    ("optim.momentum=-0.1", "[0, 1)"), ("optim.weight_decay=-1e-4", ">= 0"), ("optim.min_lr=-1", ">= 0"),
    ("augment.severity=0", "[1, 10]"), ("augment.width=0", ">= 1"), ("augment.depth=-2", "-1 or >= 1"),
    ("augment.alpha=0", "> 0"), ("augment.fill=256", "[0, 255]"), ("loss.jsd_weight=-1", ">= 0"),
    ("model.depth=0", ">= 1 or null"), ("model.width=0", ">= 1 or null"), ("model.droprate=1", "[0, 1) or null"),
    ("eval.severities=[0,3]", "[1, 5] for every element"), ("eval.limit=-1", ">= 0"), ("eval.batch_size=0", ">= 1"),
]


@pytest.mark.parametrize("override,valid", OUT_OF_RANGE, ids=[o.split("=")[0] for o, _ in OUT_OF_RANGE])
def test_every_numeric_key_has_a_stated_range(override, valid):
    key = override.split("=")[0]
    with pytest.raises(ConfigError) as info:
        load_config("cifar10_wrn.yaml", [override])
    message = str(info.value)
    assert message.startswith(f"{key}=") and "is out of range: expected" in message and valid in message, message
    assert "\n" not in message


def test_every_numeric_key_is_in_the_range_table():
    from training.config import RANGES, RunConfig

    numeric = [f"{section}.{key}" for section, values in to_dict(RunConfig()).items() if isinstance(values, dict)
               for key, value in values.items()
               if isinstance(value, int | float) and not isinstance(value, bool) or
               key in ("limit_train", "limit_test", "max_steps_per_epoch", "depth", "width", "droprate", "std",
                       "severities")]
    assert sorted(set(numeric) - set(RANGES)) == []


def test_null_limits_mean_all_and_legal_edges_pass():
    cfg = load_config("cifar10_wrn.yaml", ["data.limit_train=null", "train.max_steps_per_epoch=1", "optim.momentum=0",
                                           "augment.depth=-1", "augment.depth=1", "loss.jsd_weight=0"])
    assert cfg.data.limit_train is None and cfg.train.max_steps_per_epoch == 1


@pytest.mark.parametrize("text,expected", [
    ("train:\n  epochs: 3\n  epochs: 4\n", ":3: not valid YAML: duplicate key 'epochs' (first given at line 2)"),
    ("train:\n  epochs: 3\noptim:\n  lr: 0.1\ntrain:\n  seed: 2\n",
     ":5: not valid YAML: duplicate key 'train' (first given at line 1)"),
    ("train:\n  epochs: [3\noptim: {}\n", ":3: not valid YAML"),
    ("train:\n  epochs: !!python/object/apply:os.system [echo hi]\n",
     ":2: not valid YAML: could not determine a constructor"),
    ("- 1\n- 2\n", "expected a mapping of sections"),
], ids=["duplicate-key", "duplicate-section", "malformed", "python-tag", "not-a-mapping"])
def test_yaml_mistakes_name_the_file_and_line(tmp_path, text, expected):
    path = tmp_path / "mine.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(str(path)) and expected in str(info.value), str(info.value)


def test_a_config_that_is_not_utf8_is_named(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="latin1.yaml: not UTF-8 text \\(byte 0xe9 at offset 9\\)"):
        load_config(path)


@pytest.mark.parametrize("overrides,folder", [
    ([], "runs/cifar10_wrn"),
    (["augment.mode=standard"], "runs/cifar10_wrn-standard"),
    (["loss.jsd=false"], "runs/cifar10_wrn-nojsd"),
    (["train.seed=2"], "runs/cifar10_wrn-seed2"),
    (["optim.lr=0.05", "model.width=4"], "runs/cifar10_wrn-model_width4-lr0.05"),
    (["augment.width=2"], "runs/cifar10_wrn-augment_width2"),
    (["train.device=cpu", "data.root=/data", "data.num_workers=0", "eval.suites=[clean]", "train.log_every=5"],
     "runs/cifar10_wrn"),
    (["optim.lr=0.1"], "runs/cifar10_wrn"),  # the config's own value: the same recipe
    (["train.out_dir=elsewhere", "train.seed=3"], "elsewhere"),
])
def test_default_run_folder_names_the_recipe(overrides, folder):
    assert load_config("cifar10_wrn.yaml", overrides).train.out_dir == folder


def test_run_folder_suffix_falls_back_to_a_hash():
    out = load_config("cifar10_wrn.yaml", ["data.mean=[0.4,0.4,0.4]"]).train.out_dir
    assert out.startswith("runs/cifar10_wrn-") and len(out) == len("runs/cifar10_wrn-") + 8
    assert out == load_config("cifar10_wrn.yaml", ["data.mean=[0.4,0.4,0.4]"]).train.out_dir  # stable
