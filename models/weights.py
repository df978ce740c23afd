"""Weights in and out: our checkpoints, the official AugMix CIFAR and ImageNet releases, torchvision ResNet-50 weights.

Every file is read with ``torch.load(weights_only=True)``: a checkpoint from the internet must not be able to run code;
a file that pickles anything but tensors and plain containers is refused, naming what it pickles. The four CIFAR
models use the official module names, so official state dicts load once DataParallel's ``module.`` prefix is
stripped. One older name is still read: ``convShortcut``, the WideResNet shortcut conv of the third-party WRN the
official code was derived from (and of this project's earlier checkpoints), now ``conv_shortcut`` as in the official
code (``LEGACY_NAMES``).
"""

from __future__ import annotations

import io
import pickle
import pickletools
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from models import MODELS, SIZE_KEYS, build_model, display_name
from runtime.files import atomic_torch_save, sha256_file

FORMAT_VERSION = 1  # the "format_version" our checkpoints carry; a newer file is refused, not misread
MODEL_ARG_KEYS: tuple[str, ...] = ("name", "num_classes") + SIZE_KEYS


class Normalization(NamedTuple):
    """Per-channel statistics the model's inputs are normalised with: (x - mean) / std on [0, 1] RGB."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]


CIFAR_NORMALIZATION = Normalization((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))  # docs/augmix.md §7.1 (cifar.py preprocess)
IMAGENET_NORMALIZATION = Normalization((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))  # imagenet.py, torchvision
NORMALIZATION = MappingProxyType({"cifar10": CIFAR_NORMALIZATION, "cifar100": CIFAR_NORMALIZATION,
                                  "imagenet": IMAGENET_NORMALIZATION})
IMAGE_SIZE = MappingProxyType({"cifar10": 32, "cifar100": 32, "imagenet": 224})
DATASET_CLASSES = MappingProxyType({"cifar10": 10, "cifar100": 100, "imagenet": 1000})

# cifar.py's --model choices -> our names (same module names, same default sizes).
OFFICIAL_CIFAR_MODELS = MappingProxyType({"wrn": "wrn40_2", "allconv": "allconv", "densenet": "densenet40_12",
                                          "resnext": "resnext29"})
# Architectures whose plain state dicts are ImageNet models (torchvision weights).
IMAGENET_ARCHITECTURES = frozenset({"resnet50", "alexnet"})
# imagenet.py's torchvision arch names we can build.
OFFICIAL_IMAGENET_MODELS = MappingProxyType({"resnet50": "resnet50"})

FORMATS = MappingProxyType({
    "ours": "this repository's checkpoint: a dict with format_version, model_args, model, normalization, dataset, "
            "image_size, epoch",
    "augmix-official-cifar": "google-research/augmix cifar.py: a dict with epoch, dataset (cifar10|cifar100), "
                             "model (wrn|allconv|densenet|resnext), state_dict, best_acc, optimizer",
    "augmix-official-imagenet": "google-research/augmix imagenet.py (and the released .pth.tar): a dict with epoch, "
                                "model or arch (resnet50), state_dict, best_acc1, optimizer",
    "torchvision": "a plain ResNet-50 state dict (conv1.weight ... fc.bias), e.g. torchvision's weights",
    "state-dict": "a plain state dict of any model in MODELS; pass arch= (and dataset= unless it has 10/100 classes)",
})

# model name -> {older module name: current name}, applied to whole dotted components of state-dict keys.
LEGACY_NAMES = MappingProxyType({"wrn40_2": MappingProxyType({"convShortcut": "conv_shortcut"})})

_WRAPPER_PREFIXES = ("module.", "_orig_mod.")  # DataParallel/DDP, torch.compile
_SHOWN = 10  # keys listed per kind in a mismatch error


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded; the message names the file, the detected format and what is wrong."""


@dataclass(frozen=True)
class ModelInfo:
    """What a loaded checkpoint is: which model, trained on what, how to feed it.

    ``mean``/``std`` normalise [0, 1] RGB inputs; ``image_size`` is the side the model was trained at; ``epoch`` is
    as stored in the file (None where the format has none); ``sha256`` is the file's; ``model_args`` rebuilds the
    model with ``build_model(**model_args)``; ``display_name`` says what the model is (``WRN-40-2``, ``WRN-10-2``).
    """

    name: str
    num_classes: int
    dataset: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    image_size: int
    source: str
    epoch: int | None
    sha256: str
    model_args: dict = field(default_factory=dict)

    @property
    def display_name(self) -> str:
        """``models.display_name`` of ``model_args`` (e.g. ``WRN-10-2``); ``name`` itself for a model not in MODELS."""
        if self.name not in MODELS:
            return self.name
        return display_name({**self.model_args, "name": self.name})


@dataclass
class _Parsed:
    source: str
    model_args: dict
    state_dict: dict
    dataset: str
    normalization: Normalization
    image_size: int
    epoch: int | None


def load_model(path: str | Path, map_location: str | torch.device = "cpu", arch: str | None = None,
               num_classes: int | None = None, dataset: str | None = None) -> tuple[nn.Module, ModelInfo]:
    """Build the model a checkpoint describes and load its weights.

    Args:
        path: a file in one of ``FORMATS`` (detected from its layout).
        map_location: device the returned model lives on; tensors are read to the CPU first, so a file saved on any
            GPU loads anywhere.
        arch, num_classes, dataset: fill in what the file does not say (a plain state dict's architecture, a
            dataset label). A value the file contradicts is an error, never a silent override.

    Returns:
        (model in eval mode on ``map_location``, ModelInfo).

    Raises:
        FileNotFoundError: no file at ``path``.
        CheckpointError: unreadable file, pickled code objects (refused by ``weights_only``), unknown layout, or
            keys/shapes that do not match the model (missing and unexpected keys listed with counts).
    """
    path = Path(path)
    obj = _read(path)
    fmt = detect_format(obj, arch)
    if fmt is None:
        raise CheckpointError(_unknown_layout_message(path, obj))
    parsed = _PARSERS[fmt](obj, path, arch, num_classes, dataset)
    parsed.state_dict = rename_legacy_keys(parsed.state_dict, parsed.model_args["name"], path)
    try:
        model = build_model(**parsed.model_args)
    except ValueError as exc:
        raise CheckpointError(f"{path}: {fmt} checkpoint: cannot build model_args {parsed.model_args}: {exc}") from exc
    _load_state_dict(model, parsed.state_dict, path, fmt)
    model.to(map_location).eval()
    norm = parsed.normalization
    info = ModelInfo(name=parsed.model_args["name"], num_classes=parsed.model_args["num_classes"],
                     dataset=parsed.dataset, mean=norm.mean, std=norm.std, image_size=parsed.image_size,
                     source=parsed.source, epoch=parsed.epoch, sha256=sha256_file(path),
                     model_args=dict(parsed.model_args))
    return model, info


def detect_format(obj: Any, arch: str | None = None) -> str | None:
    """The key of ``FORMATS`` whose layout ``obj`` (a loaded checkpoint) has, or None."""
    if not isinstance(obj, Mapping):
        return None
    if "format_version" in obj:
        return "ours"
    if isinstance(obj.get("state_dict"), Mapping):
        if obj.get("model") in OFFICIAL_CIFAR_MODELS or "best_acc" in obj or "dataset" in obj:
            return "augmix-official-cifar"
        if "best_acc1" in obj or "arch" in obj or "model" in obj:
            return "augmix-official-imagenet"
        return None
    if obj and all(isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items()):
        looks_resnet50 = {"conv1.weight", "layer4.2.conv3.weight", "fc.weight"} <= set(strip_wrapper_prefixes(obj))
        return "torchvision" if arch in (None, "resnet50") and looks_resnet50 else "state-dict"
    return None


def strip_wrapper_prefixes(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """Drop leading ``module.`` (DataParallel/DDP) and ``_orig_mod.`` (torch.compile) from every key, in any nesting."""
    out = {}
    for key, value in state_dict.items():
        while key.startswith(_WRAPPER_PREFIXES):
            key = key.split(".", 1)[1]
        out[key] = value
    return out


def rename_legacy_keys(state_dict: Mapping[str, Any], name: str, path: str | Path = "<state dict>") -> dict[str, Any]:
    """``state_dict`` with the older module names of ``LEGACY_NAMES[name]`` replaced by the current ones.

    Whole dotted components are matched (``block1.layer.0.convShortcut.weight`` -> ``...conv_shortcut.weight``).
    Raises CheckpointError, naming ``path``, when a key is present under both its old and its new name.
    """
    renames = LEGACY_NAMES.get(name, {})
    if not renames:
        return dict(state_dict)
    out: dict[str, Any] = {}
    old_names: dict[str, str] = {}
    for key, value in state_dict.items():
        new = ".".join(renames.get(part, part) for part in key.split("."))
        if new in out:
            first = old_names[new]
            raise CheckpointError(f"{path}: key {new!r} appears twice, as {first!r} and as {key!r} (an older name of "
                                  "the same tensor); keep one of them")
        out[new] = value
        old_names[new] = key
    return out


def unwrap_model(model: nn.Module) -> nn.Module:
    """The bare module inside DataParallel / DistributedDataParallel / torch.compile wrappers (any nesting)."""
    while True:
        if isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
            model = model.module
        elif isinstance(getattr(model, "_orig_mod", None), nn.Module):
            model = model._orig_mod
        else:
            return model


def checkpoint_model_fields(model: nn.Module, model_args: Mapping[str, Any], dataset: str,
                            normalization: Normalization | None = None, image_size: int | None = None,
                            epoch: int = 0) -> dict:
    """The model-bearing fields of our checkpoint format; a training checkpoint adds its own state beside them.

    Args:
        model: the trained model, possibly wrapped (DDP, torch.compile); its unwrapped state dict is stored.
        model_args: ``build_model`` arguments: name, num_classes and any of depth/width/droprate (None dropped).
        dataset: label such as "cifar10", "imagenet", "digits".
        normalization, image_size: default to the dataset's entries in ``NORMALIZATION`` / ``IMAGE_SIZE``.
        epoch: stored as is.
    """
    args = {k: v for k, v in model_args.items() if v is not None}
    extra = [k for k in args if k not in MODEL_ARG_KEYS]
    if extra or "name" not in args or "num_classes" not in args:
        raise ValueError(f"model_args must hold name, num_classes and optionally {', '.join(SIZE_KEYS)}; got {args}")
    if args["name"] not in MODELS:
        raise ValueError(f"model_args name {args['name']!r} is not in MODELS ({', '.join(MODELS)})")
    normalization = normalization or NORMALIZATION.get(dataset)
    image_size = image_size or IMAGE_SIZE.get(dataset)
    if normalization is None or image_size is None:
        raise ValueError(f"dataset {dataset!r} has no default normalization/image_size (known: "
                         f"{', '.join(NORMALIZATION)}); pass normalization= and image_size=")
    mean, std = ([float(v) for v in stats] for stats in normalization)
    if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
        raise ValueError(f"normalization needs 3 means and 3 positive stds; got {normalization!r}")
    return {
        "format_version": FORMAT_VERSION,
        "model_args": args,
        "model": unwrap_model(model).state_dict(),
        "normalization": {"mean": mean, "std": std},
        "dataset": dataset,
        "image_size": int(image_size),
        "epoch": int(epoch),
    }


def save_weights(path: str | Path, model: nn.Module, model_args: Mapping[str, Any], dataset: str,
                 normalization: Normalization | None = None, image_size: int | None = None, epoch: int = 0) -> None:
    """Write a weights-only checkpoint in our format, atomically (see ``checkpoint_model_fields``)."""
    atomic_torch_save(checkpoint_model_fields(model, model_args, dataset, normalization, image_size, epoch), path)


def _read(path: Path) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        # Tensors go to the CPU first: a file saved on cuda:3 loads on any machine, and the model is moved once.
        # Zip-format files are memory-mapped, so a training checkpoint's optimizer state is never read from disk.
        return torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except pickle.UnpicklingError as exc:
        # weights_only loading raises UnpicklingError both for a well-formed pickle that references code or classes
        # it refuses and for bytes that are no pickle at all; torch's wording changes between releases, so the two
        # are told apart by reading the pickle's opcodes ourselves (nothing is executed).
        refs = _pickled_globals(path)
        if refs is None:
            raise CheckpointError(f"{path}: not a readable torch checkpoint (no well-formed torch pickle in it; "
                                  "torch.load raised UnpicklingError)") from exc
        named = [r for r in refs if not _plain_data_global(r)]
        what = f" ({', '.join(named[:_SHOWN])}{', ...' * (len(named) > _SHOWN)})" if named else ""
        raise CheckpointError(
            f"{path}: refused, not loaded: the file contains pickled Python code or objects{what} that "
            "torch.load(weights_only=True) refuses to unpickle. Checkpoints are read weights-only so that a file "
            "cannot run code; only tensors and plain containers (dict, list, str, numbers) are accepted. If you "
            "trust the file, load it yourself and re-save its state dict alone") from exc
    except Exception as exc:  # torch.load on arbitrary bytes raises RuntimeError, EOFError, KeyError, struct.error...
        raise CheckpointError(f"{path}: not a readable torch checkpoint ({_describe(exc)})") from exc


def _pickled_globals(path: Path) -> list[str] | None:
    """The ``module.name`` globals a torch checkpoint's pickle references, in order, read from its opcodes without
    unpickling anything; None when the file holds no well-formed pickle (corrupt or not a checkpoint)."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                members = [n for n in archive.namelist() if n.endswith("data.pkl")]
                if len(members) != 1:
                    return None
                return _globals_in(io.BytesIO(archive.read(members[0])), streams=1)
        # torch's legacy format: magic number, protocol version and system-info pickles, then the object's pickle.
        with open(path, "rb") as stream:
            return _globals_in(stream, streams=4)
    except (ValueError, EOFError, OSError, KeyError, IndexError, zipfile.BadZipFile):
        return None  # truncated, unknown opcode, bad archive: not a well-formed checkpoint pickle


def _globals_in(stream: io.BufferedIOBase, streams: int) -> list[str]:
    """Globals referenced by the next ``streams`` pickles of ``stream`` (GLOBAL and STACK_GLOBAL opcodes).

    STACK_GLOBAL takes its module and name from the stack, so the strings pushed (directly or from the memo) are
    followed; any other push is tracked only as "not a string".
    """
    found: list[str] = []
    for _ in range(streams):
        strings: list[str] = []
        memo: dict[int, Any] = {}
        top: str | None = None  # the last value pushed, when it is a string
        for opcode, arg, _pos in pickletools.genops(stream):
            kind = opcode.name
            if kind in ("SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE"):
                top = str(arg)
                strings.append(top)
            elif kind == "MEMOIZE":
                memo[len(memo)] = top
            elif kind in ("PUT", "BINPUT", "LONG_BINPUT"):
                memo[int(arg)] = top
            elif kind in ("GET", "BINGET", "LONG_BINGET"):
                top = memo.get(int(arg))
                if top is not None:
                    strings.append(top)
            elif kind == "GLOBAL":
                found.append(".".join(str(arg).split(" ", 1)))
                top = None
            elif kind == "STACK_GLOBAL":
                found.append(".".join(strings[-2:]) if len(strings) >= 2 else "<unnamed global>")
                top = None
            else:
                top = None
    return found


def _plain_data_global(ref: str) -> bool:
    """Globals any tensor checkpoint references: tensor rebuilders, torch dtypes/storages/Size, OrderedDict."""
    module, _, name = ref.rpartition(".")
    return (ref == "collections.OrderedDict" or module == "torch"
            or (module == "torch._utils" and name.startswith("_rebuild")))


def _parse_ours(obj: Mapping, path: Path, arch: str | None, num_classes: int | None, dataset: str | None) -> _Parsed:
    version = obj["format_version"]
    if not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
        raise CheckpointError(f"{path}: format_version {version!r} is not one this code reads (1..{FORMAT_VERSION})")
    required = ("model_args", "model", "normalization", "dataset", "image_size", "epoch")
    absent = [k for k in required if k not in obj]
    if absent:
        raise CheckpointError(f"{path}: ours checkpoint lacks key(s) {', '.join(absent)} (needs {', '.join(required)})")
    args = obj["model_args"]
    if not isinstance(args, Mapping) or not {"name", "num_classes"} <= set(args) <= set(MODEL_ARG_KEYS):
        raise CheckpointError(f"{path}: model_args must hold name, num_classes and optionally "
                              f"{', '.join(SIZE_KEYS)}; got {args!r}")
    args = {k: v for k, v in args.items() if v is not None}
    for what, given, stated in (("arch", arch, args["name"]), ("num_classes", num_classes, args["num_classes"]),
                                ("dataset", dataset, obj["dataset"])):
        _check_agrees(path, "ours", what, given, stated)
    if not isinstance(obj["image_size"], int) or obj["image_size"] < 1:
        raise CheckpointError(f"{path}: image_size must be a positive int; got {obj['image_size']!r}")
    state = strip_wrapper_prefixes(_state_dict_of(obj["model"], path, "model"))
    return _Parsed("ours", args, state, str(obj["dataset"]),
                   _read_normalization(obj["normalization"], path), obj["image_size"], obj["epoch"])


def _parse_official_cifar(obj: Mapping, path: Path, arch: str | None, num_classes: int | None,
                          dataset: str | None) -> _Parsed:
    fmt = "augmix-official-cifar"
    if obj.get("model") not in OFFICIAL_CIFAR_MODELS:
        raise CheckpointError(f"{path}: {fmt} checkpoint has model={obj.get('model')!r}; expected one of "
                              f"{', '.join(OFFICIAL_CIFAR_MODELS)}")
    if obj.get("dataset") not in ("cifar10", "cifar100"):
        raise CheckpointError(f"{path}: {fmt} checkpoint has dataset={obj.get('dataset')!r}; expected cifar10 or "
                              "cifar100")
    name, ds = OFFICIAL_CIFAR_MODELS[obj["model"]], obj["dataset"]
    for what, given, stated in (("arch", arch, name), ("num_classes", num_classes, DATASET_CLASSES[ds]),
                                ("dataset", dataset, ds)):
        _check_agrees(path, fmt, what, given, stated)
    state = strip_wrapper_prefixes(_state_dict_of(obj["state_dict"], path, "state_dict"))
    args = {"name": name, "num_classes": DATASET_CLASSES[ds], **_infer_size(name, state)}
    return _Parsed(fmt, args, state, ds, CIFAR_NORMALIZATION, IMAGE_SIZE[ds], obj.get("epoch"))


def _parse_official_imagenet(obj: Mapping, path: Path, arch: str | None, num_classes: int | None,
                             dataset: str | None) -> _Parsed:
    fmt = "augmix-official-imagenet"
    # imagenet.py stores the arch under "model"; the pytorch/examples-based script behind the released 180-epoch
    # model (google-research/augmix#3) stores it under "arch".
    stated = obj.get("model", obj.get("arch"))
    if stated not in OFFICIAL_IMAGENET_MODELS:
        raise CheckpointError(f"{path}: {fmt} checkpoint has arch {stated!r}; supported: "
                              f"{', '.join(OFFICIAL_IMAGENET_MODELS)}")
    name = OFFICIAL_IMAGENET_MODELS[stated]
    state = strip_wrapper_prefixes(_state_dict_of(obj["state_dict"], path, "state_dict"))
    classes = _head_classes(state, path, fmt)
    for what, given, value in (("arch", arch, name), ("num_classes", num_classes, classes),
                               ("dataset", dataset, "imagenet")):
        _check_agrees(path, fmt, what, given, value)
    args = {"name": name, "num_classes": classes, **_infer_size(name, state)}
    return _Parsed(fmt, args, state, "imagenet", IMAGENET_NORMALIZATION, IMAGE_SIZE["imagenet"], obj.get("epoch"))


def _parse_plain(obj: Mapping, path: Path, arch: str | None, num_classes: int | None, dataset: str | None) -> _Parsed:
    state = strip_wrapper_prefixes(obj)
    fmt = detect_format(obj, arch)
    name = arch or ("resnet50" if fmt == "torchvision" else None)
    if name not in MODELS:
        raise CheckpointError(f"{path}: a plain state dict does not say its architecture; pass arch= one of "
                              f"{', '.join(MODELS)} (got {arch!r})")
    classes = _head_classes(state, path, fmt)
    _check_agrees(path, fmt, "num_classes", num_classes, classes)
    if dataset is None:
        dataset = "imagenet" if name in IMAGENET_ARCHITECTURES else {10: "cifar10", 100: "cifar100"}.get(classes)
    if dataset not in NORMALIZATION:
        raise CheckpointError(f"{path}: a plain state dict does not say its normalisation; pass dataset= one of "
                              f"{', '.join(NORMALIZATION)} (got {dataset!r})")
    args = {"name": name, "num_classes": classes, **_infer_size(name, state)}
    return _Parsed(fmt, args, state, dataset, NORMALIZATION[dataset], IMAGE_SIZE[dataset], None)


_PARSERS = MappingProxyType({"ours": _parse_ours, "augmix-official-cifar": _parse_official_cifar,
                             "augmix-official-imagenet": _parse_official_imagenet, "torchvision": _parse_plain,
                             "state-dict": _parse_plain})


def _infer_size(name: str, state: Mapping[str, Tensor]) -> dict:
    """Size keys read off a state dict's shapes, so non-default variants (e.g. cifar.py's ``--layers 28
    --widen-factor 10``) load; {} where the needed keys are absent (the key check then reports the mismatch)."""
    try:
        return _SIZE_RULES[name](state) if name in _SIZE_RULES else {}
    except (KeyError, AttributeError, IndexError):
        return {}


def _count(state: Mapping[str, Tensor], prefix: str) -> int:
    """Number of distinct ``<prefix><i>.`` children, e.g. blocks in a stage."""
    return len({k[len(prefix):].split(".", 1)[0] for k in state if k.startswith(prefix)})


def _out(state: Mapping[str, Tensor], key: str) -> int:
    return int(state[key].shape[0])


_SIZE_RULES = MappingProxyType({
    "wrn40_2": lambda s: {"depth": 6 * _count(s, "block1.layer.") + 4,
                          "width": _out(s, "block1.layer.0.conv1.weight") // 16},  # stage 1 has 16k channels
    "densenet40_12": lambda s: {"depth": 3 * _count(s, "dense1.") + 4, "width": _out(s, "dense1.0.conv1.weight")},
    "resnext29": lambda s: {"depth": 9 * _count(s, "stage_1.") + 2,  # D = 4 groups x floor(64 * w / 64) = 4w
                            "width": _out(s, "stage_1.0.conv_reduce.weight") // 4},
    "allconv": lambda s: {"width": _out(s, "features.0.weight")},
    "resnet50": lambda s: {"width": _out(s, "layer1.0.conv1.weight")},  # planes 64 x width_per_group / 64
    "resnet18": lambda s: {"width": _out(s, "conv1.weight")},
})


def _load_state_dict(model: nn.Module, state: Mapping[str, Any], path: Path, fmt: str) -> None:
    expected = model.state_dict()
    # BatchNorm's num_batches_tracked is absent from pre-0.4.1 files (e.g. torchvision's ResNet-50 weights);
    # load_state_dict fills it in, so its absence is not a mismatch.
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        raise CheckpointError(f"{path}: {fmt} checkpoint does not match {type(model).__name__}: "
                              f"{_listing('missing', missing)}; {_listing('unexpected', unexpected)}")
    bad = [k for k in state if not isinstance(state[k], Tensor) or state[k].shape != expected[k].shape]
    if bad:
        shown = "; ".join(f"{k}: file {_shape(state[k])} vs model {tuple(expected[k].shape)}" for k in bad[:_SHOWN])
        raise CheckpointError(f"{path}: {fmt} checkpoint does not match {type(model).__name__}: {len(bad)} "
                              f"tensor(s) of the wrong shape: {shown}")
    model.load_state_dict(state, strict=True)


def _state_dict_of(value: Any, path: Path, key: str) -> dict:
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise CheckpointError(f"{path}: {key!r} must be a state dict (str -> tensor); got {type(value).__name__}")
    return dict(value)


def _head_classes(state: Mapping[str, Any], path: Path, fmt: str) -> int:
    """K from the classifier: the last 2-D ``*.weight`` (every model here ends in one Linear; convs are 4-D)."""
    heads = [v for k, v in state.items() if k.endswith("weight") and isinstance(v, Tensor) and v.ndim == 2]
    if not heads:
        raise CheckpointError(f"{path}: {fmt} checkpoint has no linear classifier weight to read num_classes from")
    return int(heads[-1].shape[0])


def _read_normalization(value: Any, path: Path) -> Normalization:
    try:
        mean, std = (tuple(float(v) for v in value[k]) for k in ("mean", "std"))
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: normalization must be {{'mean': [3 floats], 'std': [3 floats]}}; "
                              f"got {value!r}") from exc
    if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
        raise CheckpointError(f"{path}: normalization needs 3 means and 3 positive stds; got {value!r}")
    return Normalization(mean, std)


def _check_agrees(path: Path, fmt: str, what: str, given: Any, stated: Any) -> None:
    if given is not None and given != stated:
        raise CheckpointError(f"{path}: the {fmt} checkpoint says {what}={stated!r}, but {what}={given!r} was passed")


def _unknown_layout_message(path: Path, obj: Any) -> str:
    if isinstance(obj, Mapping):
        keys = list(obj)
        found = f"a dict with {len(keys)} key(s): {', '.join(map(repr, keys[:_SHOWN]))}{', ...' * (len(keys) > _SHOWN)}"
    else:
        found = f"a {type(obj).__name__}"
    formats = "\n".join(f"  {name}: {text}" for name, text in FORMATS.items())
    return f"{path}: unknown checkpoint layout ({found}); supported formats:\n{formats}"


def _listing(kind: str, keys: list[str]) -> str:
    if not keys:
        return f"0 {kind} keys"
    more = f", ... ({len(keys) - _SHOWN} more)" if len(keys) > _SHOWN else ""
    return f"{len(keys)} {kind} key(s): {', '.join(keys[:_SHOWN])}{more}"


def _shape(value: Any) -> str:
    return str(tuple(value.shape)) if isinstance(value, Tensor) else type(value).__name__


def _describe(exc: BaseException) -> str:
    """``Type: first line of the message``, or the type alone when the message is empty."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__
