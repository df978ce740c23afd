"""Typed run configuration: code defaults <- YAML file <- dotted command-line overrides, validated once.

Defaults are the paper's CIFAR recipe (docs/augmix.md §4, §7.1). YAML files in configs/ hold only differences.
Every key is the parameter name of the function it feeds (``augment.severity`` -> ``AugMix(severity=...)``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import re
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
    limit_train: int | None = None      # use only the first N training images (smoke tests); None = all
    limit_test: int | None = None       # use only the first N test images; None = all


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
    out_dir: str | None = None          # run directory; None = runs/<config name>[-<recipe overrides>]
    select_on: str = "auto"             # best.pt selection: auto (val if val_size > 0, else none) | val | test | none
    eval_every: int = 1                 # epochs between test/val evaluations
    test_batch_size: int = 1000
    log_every: int = 20                 # steps between progress-bar / TensorBoard loss updates
    image_grid: int = 8                 # images in the start-of-run TensorBoard grid of clean and AugMix views
    max_steps_per_epoch: int | None = None  # cut epochs short (smoke tests); None = full epochs


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
@dataclass(frozen=True)
class Range:
    """The valid values of a numeric key: ``low`` / ``high`` (None = unbounded), each bound included unless marked
    open; ``also`` lists single values allowed outside it (depth -1); None passes where the key's type allows it."""
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    also: tuple = ()

    def __contains__(self, value) -> bool:
        if value in self.also:
            return True
        above = self.low is None or (value > self.low if self.low_open else value >= self.low)
        below = self.high is None or (value < self.high if self.high_open else value <= self.high)
        return above and below

    def __str__(self) -> str:
        if self.low is not None and self.high is not None:
            text = f"{'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"
        elif self.low is not None:
            text = f"{'>' if self.low_open else '>='} {self.low:g}"
        else:
            text = f"{'<' if self.high_open else '<='} {self.high:g}"
        return " or ".join([*(f"{v:g}" for v in self.also), text])


# Every numeric key and its valid values, checked once when the config is parsed (lists: every element).
RANGES = {
    "data.image_size": Range(8, 4096), "data.val_size": Range(0), "data.num_workers": Range(0),
    "data.limit_train": Range(1), "data.limit_test": Range(1), "data.std": Range(0, low_open=True),
    "augment.severity": Range(1, 10), "augment.width": Range(1), "augment.depth": Range(1, also=(-1,)),
    "augment.alpha": Range(0, low_open=True), "augment.fill": Range(0, 255),
    "loss.jsd_weight": Range(0),
    "model.depth": Range(1), "model.width": Range(1), "model.droprate": Range(0, 1, high_open=True),
    "optim.lr": Range(0, low_open=True), "optim.momentum": Range(0, 1, high_open=True),
    "optim.weight_decay": Range(0), "optim.min_lr": Range(0),
    "train.epochs": Range(1), "train.batch_size": Range(1), "train.dist_timeout": Range(0, low_open=True),
    "train.seed": Range(0, 2**32 - 1), "train.eval_every": Range(1), "train.test_batch_size": Range(1),
    "train.log_every": Range(1), "train.image_grid": Range(0), "train.max_steps_per_epoch": Range(1),
    "eval.seed": Range(0, 2**32 - 1), "eval.severities": Range(1, 5), "eval.limit": Range(0),
    "eval.batch_size": Range(1),
}

# Keys that do not change what a run computes: they may differ when resuming and stay out of run folder names.
RUNTIME_KEYS = ("train.device", "train.out_dir", "train.log_every", "train.dist_timeout", "train.image_grid",
                "train.test_batch_size", "data.root", "data.num_workers", "data.download", "eval.", "name")
# Short names of common recipe overrides in the default run folder (runs/<config>-<part>-<part>).
NAME_PARTS = {("augment.mode", "standard"): "standard", ("loss.jsd", False): "nojsd", ("loss.jsd", True): "jsd"}
MAX_NAME_SUFFIX = 48
RUNS_DIR = "runs"
EXPONENT_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


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


class UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (a repeated section or key): with PyYAML's default
    the last one silently wins. Like SafeLoader it builds plain data only; a Python tag is an error."""

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first given at line {seen[key]}); keep one of them",
                    key_node.start_mark)
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def parse_yaml(text: str, where: str) -> Any:
    """Plain data from YAML ``text``; ``where`` names the source (file or override) in a one-line ConfigError that
    gives the line and the problem (bad syntax, a duplicate key, a Python tag)."""
    try:
        return yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        at = f":{mark.line + 1}" if mark is not None and "\n" in text.strip() else ""
        problem = " ".join(str(getattr(exc, "problem", None) or exc).split())
        if "could not determine a constructor" in problem:
            problem += " (tags that build Python objects are refused: a config holds plain values)"
        raise ConfigError(f"{where}{at}: not valid YAML: {problem}") from None


def read_config_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}); "
                          f"save the config as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config: {exc.strerror}") from None
    raw = parse_yaml(text, str(path)) or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level, got {type(raw).__name__}")
    return raw


def parse_override(item: str) -> tuple[str, Any]:
    """``section.key=value`` -> (``section.key``, the YAML-typed value; an empty value is None)."""
    key, sep, value = item.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {item!r} is not of the form section.key=value (e.g. optim.lr=0.05)")
    return key, parse_yaml(value, f"override {item!r}") if value.strip() else None


def load_config(name: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> RunConfig:
    """Code defaults, updated by the YAML file (if any), then by ``key.sub=value`` overrides (YAML-typed values).

    Without ``train.out_dir`` the run folder is ``runs/<name>`` plus a suffix naming the recipe overrides
    (``augment.mode=standard`` -> ``runs/cifar10_wrn-standard``), so different recipes never share a folder.
    """
    raw: dict[str, Any] = {}
    source = "defaults"
    if name is not None:
        path = resolve_config_path(name)
        source = str(path)
        raw = read_config_file(path)
        raw.setdefault("name", path.stem)
    cfg = from_dict(raw, source=source)
    file_values = to_dict(cfg)
    parsed = [parse_override(item) for item in overrides]
    for key, value in parsed:
        set_value(cfg, key, value, source="command line")
    validate(cfg)
    if cfg.train.out_dir is None:
        cfg.train.out_dir = str(Path(RUNS_DIR) / (cfg.name + run_name_suffix(file_values, to_dict(cfg),
                                                                             [key for key, _ in parsed])))
    return cfg


def run_name_suffix(before: dict[str, Any], after: dict[str, Any], keys: list[str]) -> str:
    """``-part-part`` for the overridden ``keys`` that change the recipe (runtime keys do not), in key order:
    ``-standard``, ``-nojsd``, ``-seed2``, ``-lr0.05``; a long or unprintable result becomes ``-<8-hex hash>``."""
    changed = sorted({k for k in keys
                      if not k.startswith(RUNTIME_KEYS) and _get_dict(before, k) != _get_dict(after, k)})
    parts = [_name_part(k, _get_dict(after, k), _leaf_is_ambiguous(k)) for k in changed]
    suffix = "".join(f"-{p}" for p in parts)
    if len(suffix) > MAX_NAME_SUFFIX or not all(p and all(c.isalnum() or c in "._+" for c in p) for p in parts):
        digest = hashlib.sha256(repr([(k, _get_dict(after, k)) for k in changed]).encode()).hexdigest()[:8]
        suffix = f"-{digest}"
    return suffix


def _name_part(key: str, value: Any, qualify: bool) -> str:
    if isinstance(value, bool | str) and (key, value) in NAME_PARTS:
        return NAME_PARTS[key, value]
    section, leaf = key.split(".", 1)
    label = f"{section}_{leaf}" if qualify else leaf
    if key in ("model.name", "data.dataset", "augment.mode", "augment.backend", "optim.schedule"):
        return str(value)
    if isinstance(value, bool):
        return label if value else f"no{label}"
    if isinstance(value, float):
        return f"{label}{value:g}"
    return f"{label}{value}" if isinstance(value, int | str) else ""


def _leaf_is_ambiguous(key: str) -> bool:
    """``width`` names a recipe key in both augment and model: the folder name then says which."""
    leaf, defaults = key.split(".")[-1], to_dict(RunConfig())
    return sum(leaf in values for section, values in defaults.items()
               if isinstance(values, dict) and not f"{section}.".startswith(RUNTIME_KEYS)) > 1


def _get_dict(values: dict[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        values = values.get(part) if isinstance(values, dict) else None
    return values


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
        if isinstance(value, str) and EXPONENT_NUMBER.fullmatch(value.strip()):
            value = float(value)  # YAML 1.1 reads 5e-4 (no dot) as a string
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
    elif hint is str:
        if isinstance(value, str):
            return value
    name = getattr(hint, "__name__", str(hint))
    raise ConfigError(f"{source}: {key} expects {name}, got {value!r} ({type(value).__name__})")


def validate(cfg: RunConfig) -> None:
    """Check choices, ranges and combinations that the types alone do not capture (one line naming the key)."""
    for dotted, choices in CHOICES.items():
        value = _get(cfg, dotted)
        if value not in choices:
            raise ConfigError(f"{dotted} must be one of {', '.join(choices)}; got {value!r}")
    for dotted, valid in RANGES.items():
        value = _get(cfg, dotted)
        for item in value if isinstance(value, list) else [value]:
            if item is not None and item not in valid:
                raise ConfigError(f"{dotted}={_show(value)} is out of range: expected {valid}"
                                  f"{' for every element' if isinstance(value, list) else ''}"
                                  f"{' or null' if _nullable(dotted) else ''}")
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


def _show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("\n...").removesuffix("...").strip()


def _nullable(dotted: str) -> bool:
    section, key = dotted.split(".")
    hint = typing.get_type_hints(type(getattr(RunConfig(), section)))[key]
    return type(None) in typing.get_args(hint)


def _get(cfg: RunConfig, dotted: str) -> Any:
    value: Any = cfg
    for part in dotted.split("."):
        value = getattr(value, part)
    return value
