"""Typed run configuration: code defaults <- YAML file <- dotted command-line overrides, validated once.

Defaults are the paper's CIFAR recipe (docs/augmix.md §4, §7.1). YAML files in configs/ hold only differences.
Every key is the parameter name of the function it feeds (``augment.severity`` -> ``AugMix(severity=...)``).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"


@dataclass
class DataConfig:
    dataset: str = "cifar10"            # cifar10 | cifar100 | imagenet | digits
    root: str | None = None             # folder holding the dataset; None = $AUGMIX_DATA_ROOT (default ./data)
    download: bool = False              # CIFAR: fetch with torchvision when files are missing (needs network)
    image_size: int = 32                # training crop side in px (ImageNet: 224)
    val_size: int = 0                   # training images held out for model selection (0 = none, as the paper)
    num_workers: int = 4                # DataLoader workers (PIL backend, ImageNet decoding)
    resident: str = "auto"              # tensor backend, CIFAR-sized data: keep uint8 data on the device (auto|on|off)
    mean: list[float] | None = None     # normalisation; None = dataset default (CIFAR 0.5, ImageNet standard)
    std: list[float] | None = None
    limit_train: int = 0                # use only the first N training images (smoke tests); 0 = all
    limit_test: int = 0                 # use only the first N test images; 0 = all


@dataclass
class AugmentConfig:
    mode: str = "augmix"                # augmix | standard (flip + crop only: the baseline)
    backend: str = "tensor"             # tensor: batched on the device | pil: per-image reference in workers
    severity: int = 3                   # 1..10; op level re-drawn in [0.1, severity) on every op call
    width: int = 3                      # chains mixed per view
    depth: int = -1                     # ops per chain; -1 = uniform in {1, 2, 3}, drawn per chain
    alpha: float = 1.0                  # Dirichlet / Beta concentration
    all_ops: bool = False               # add color/contrast/brightness/sharpness (withheld in the paper)
    fill: int = 0                       # grey level outside affine-warped images (official 0)
    compile: bool = False               # tensor backend: torch.compile the chain step (for GPUs)


@dataclass
class LossConfig:
    jsd: bool = True                    # [clean; aug1; aug2] + JSD; false = CE on one AugMix view
    jsd_weight: float = 12.0            # lambda, hard-coded 12 in the official scripts


@dataclass
class ModelConfig:
    name: str = "wrn40_2"               # wrn40_2 | densenet40_12 | resnext29 | allconv | resnet18 | resnet50
    depth: int | None = None            # None = the model's default
    width: int | None = None
    droprate: float | None = None


@dataclass
class OptimConfig:
    lr: float = 0.1                     # base learning rate (per 256 images when scale_lr_by_batch)
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4          # on all parameters, as the official code (DenseNet: 1e-4)
    schedule: str = "cosine"            # cosine: per iteration to min_lr | step: x0.1 at epochs//3 and 2*(epochs//3)
    min_lr: float = 1e-6                # cosine end value
    scale_lr_by_batch: bool = False     # lr * batch_size / 256 (ImageNet recipe)


@dataclass
class TrainConfig:
    epochs: int = 100
    batch_size: int = 128               # unique images per step over all ranks (x3 forward with JSD); each of the
                                        # torchrun ranks takes batch_size / WORLD_SIZE
    sync_bn: bool = False               # torchrun on GPUs: BatchNorm statistics over the global batch (paper: off,
                                        # statistics per GPU batch)
    dist_timeout: int = 600             # seconds a collective waits for a silent rank before the job fails
    seed: int = 1
    device: str = "auto"                # auto | cpu | cuda | cuda:N
    amp: str = "auto"                   # auto (bf16 on CUDA, off on CPU) | off | bf16 | fp16
    channels_last: bool = False
    compile: bool = False               # torch.compile the model
    out_dir: str | None = None          # run directory; None = runs/<config name>
    select_on: str = "auto"             # best.pt selection: auto (val if val_size > 0, else none) | val | test | none
    eval_every: int = 1                 # epochs between test/val evaluations
    test_batch_size: int = 1000
    log_every: int = 20                 # steps between progress-bar / TensorBoard loss updates
    image_grid: int = 8                 # images in the start-of-run TensorBoard grid of clean and AugMix views
    max_steps_per_epoch: int = 0        # cut epochs short (smoke tests); 0 = full epochs


@dataclass
class EvalConfig:
    suites: list[str] = field(default_factory=list)  # run by evaluate after training (e.g. [cifar10-c]); [] = none
    data_root: str | None = None        # where the -C/-P sets live; None = data.root
    generate: bool = False              # build -C/-P in memory from the clean test set instead of released files
    seed: int = 0                       # seed of generated -C/-P sets
    corruptions: list[str] | None = None  # None = all (the 15 benchmark ones enter the means)
    severities: list[int] = field(default_factory=lambda: [1, 2, 3, 4, 5])
    limit: int = 0                      # first N test images per cell (quick looks); 0 = all
    batch_size: int = 1000


@dataclass
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    name: str = "run"                   # run name (the config file's stem unless set)


CHOICES = {
    "data.dataset": ("cifar10", "cifar100", "imagenet", "digits"),
    "data.resident": ("auto", "on", "off"),
    "augment.mode": ("augmix", "standard"),
    "augment.backend": ("tensor", "pil"),
    "optim.schedule": ("cosine", "step"),
    "train.amp": ("auto", "off", "bf16", "fp16"),
    "train.select_on": ("auto", "val", "test", "none"),
}
RANGES = {
    "augment.severity": (1, 10), "augment.width": (1, 100), "augment.fill": (0, 255),
    "train.epochs": (1, 100_000), "train.batch_size": (1, 1 << 20), "data.image_size": (8, 4096),
    "train.dist_timeout": (1, 7 * 24 * 3600),
}


class ConfigError(ValueError):
    """A config file or override names an unknown key or a value of the wrong type or range."""


def resolve_config_path(name: str | Path) -> Path:
    """A bare name (``cifar10_wrn.yaml`` or ``cifar10_wrn``) resolves against configs/; a path works as is."""
    path = Path(name)
    candidates = [path] if path.suffix else [path.with_suffix(".yaml")]
    if not path.is_absolute() and len(path.parts) == 1:
        candidates += [CONFIG_DIR / c.name for c in candidates]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    shipped = ", ".join(sorted(p.name for p in CONFIG_DIR.glob("*.yaml")))
    raise ConfigError(f"config {str(name)!r} not found (looked at {', '.join(map(str, candidates))}); "
                      f"shipped configs: {shipped}")


def load_config(name: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> RunConfig:
    """Code defaults, updated by the YAML file (if any), then by ``key.sub=value`` overrides (YAML-typed values)."""
    raw: dict[str, Any] = {}
    source = "defaults"
    if name is not None:
        path = resolve_config_path(name)
        source = str(path)
        with open(path) as f:
            raw = yaml.safe_load(f) or {}
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: expected a mapping of sections at the top level, got {type(raw).__name__}")
        raw.setdefault("name", path.stem)
    cfg = from_dict(raw, source=source)
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} is not of the form section.key=value (e.g. optim.lr=0.05)")
        set_value(cfg, key.strip(), yaml.safe_load(value) if value.strip() else None, source="command line")
    validate(cfg)
    return cfg


def from_dict(raw: dict[str, Any], source: str = "dict") -> RunConfig:
    cfg = RunConfig()
    for section, values in raw.items():
        if isinstance(values, dict):
            for key, value in values.items():
                set_value(cfg, f"{section}.{key}", value, source)
        else:
            set_value(cfg, section, values, source)
    return cfg


def to_dict(cfg: RunConfig) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def set_value(cfg: RunConfig, dotted: str, value: Any, source: str) -> None:
    """Set ``cfg.<dotted>`` after checking the key exists and coercing ``value`` to the field's type."""
    parts = dotted.split(".")
    target: Any = cfg
    for depth, part in enumerate(parts):
        fields = {f.name: f for f in dataclasses.fields(target)}
        where = ".".join(parts[:depth]) or "top level"
        if part not in fields:
            raise ConfigError(f"{source}: unknown key {'.'.join(parts[:depth + 1])!r}; valid keys at {where}: "
                              f"{', '.join(fields)}")
        if depth == len(parts) - 1:
            if dataclasses.is_dataclass(getattr(target, part)):
                raise ConfigError(f"{source}: {dotted!r} is a section; set its keys, e.g. {dotted}.<key>=...")
            hint = typing.get_type_hints(type(target))[part]
            setattr(target, part, _coerce(value, hint, dotted, source))
            return
        target = getattr(target, part)
        if not dataclasses.is_dataclass(target):
            raise ConfigError(f"{source}: {'.'.join(parts[:depth + 1])!r} is a value, not a section")


def _coerce(value: Any, hint: Any, key: str, source: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, arg, key, source)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0])
    if origin is list:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{source}: {key} expects a list, got {value!r}")
        return [_coerce(v, args[0], f"{key}[{i}]", source) for i, v in enumerate(value)]
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif hint is str:
        if isinstance(value, str):
            return value
    name = getattr(hint, "__name__", str(hint))
    raise ConfigError(f"{source}: {key} expects {name}, got {value!r} ({type(value).__name__})")


def validate(cfg: RunConfig) -> None:
    """Check choices, ranges and combinations that the types alone do not capture."""
    for dotted, choices in CHOICES.items():
        value = _get(cfg, dotted)
        if value not in choices:
            raise ConfigError(f"{dotted} must be one of {', '.join(choices)}; got {value!r}")
    for dotted, (low, high) in RANGES.items():
        value = _get(cfg, dotted)
        if not low <= value <= high:
            raise ConfigError(f"{dotted} must be in [{low}, {high}]; got {value}")
    if cfg.augment.depth == 0 or cfg.augment.depth < -1:
        raise ConfigError(f"augment.depth must be -1 (random 1..3 per chain) or >= 1; got {cfg.augment.depth}")
    if cfg.augment.alpha <= 0:
        raise ConfigError(f"augment.alpha must be > 0; got {cfg.augment.alpha}")
    for key in ("mean", "std"):
        value = getattr(cfg.data, key)
        if value is not None and len(value) != 3:
            raise ConfigError(f"data.{key} must list 3 per-channel values; got {value}")
    if cfg.train.select_on == "val" and cfg.data.val_size <= 0:
        raise ConfigError("train.select_on=val needs a held-out split: set data.val_size > 0 (e.g. 5000)")
    if cfg.augment.compile and cfg.augment.backend == "pil":
        raise ConfigError("augment.compile=true compiles the tensor backend; it has no effect with augment.backend=pil")
    if cfg.augment.mode == "standard":
        cfg.loss.jsd = False  # the baseline has no AugMix views to compare; the resolved config records it


def _get(cfg: RunConfig, dotted: str) -> Any:
    value: Any = cfg
    for part in dotted.split("."):
        value = getattr(value, part)
    return value
