"""models/weights.py: every supported checkpoint layout loads into the right model with identical logits and the
right ModelInfo; mismatches, unknown layouts, corrupt files and pickled code objects give clear errors."""

from __future__ import annotations

import math
import re

import pytest
import torch
import torchvision
from torch import nn

from models import build_model
from models.weights import (
    FORMATS,
    CheckpointError,
    ModelInfo,
    checkpoint_model_fields,
    load_model,
    save_weights,
    unwrap_model,
)
from runtime.files import sha256_file
from runtime.seeding import capture_rng_state

CIFAR_MEAN_STD = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
IMAGENET_MEAN_STD = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


@torch.no_grad()
def _randomised(model: nn.Module, seed: int = 1) -> nn.Module:
    """Random BN statistics/affines so that eval logits depend on every buffer the loader must carry over."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(0.1 * torch.randn(m.num_features, generator=g))
            m.running_var.copy_(0.5 + torch.rand(m.num_features, generator=g))
            m.weight.copy_(0.5 + torch.rand(m.num_features, generator=g))
            m.bias.copy_(0.1 * torch.randn(m.num_features, generator=g))
    return model.eval()


def _logits(model: nn.Module, size: int) -> torch.Tensor:
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return model(x.to(next(model.parameters()).device)).cpu()


def _module_prefixed(model: nn.Module) -> dict:
    """What ``nn.DataParallel(model).state_dict()`` holds, as the official scripts save it."""
    return {f"module.{k}": v for k, v in model.state_dict().items()}


def _sgd_state(model: nn.Module) -> dict:
    return torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4).state_dict()


def _official_cifar(model: nn.Module, official_name: str, dataset: str) -> dict:
    """cifar.py's checkpoint dict (google-research/augmix: epoch, dataset, model, state_dict, best_acc, optimizer)."""
    return {"epoch": 99, "dataset": dataset, "model": official_name, "state_dict": _module_prefixed(model),
            "best_acc": 0.9512, "optimizer": _sgd_state(model)}


def _save(obj, path):
    torch.save(obj, path)
    return path


# Full-size models: an official checkpoint always maps onto the default sizes (cifar.py builds them so).
@pytest.mark.parametrize("official_name,name,dataset,size_args", [
    ("wrn", "wrn40_2", "cifar10", {"depth": 40, "width": 2}),
    ("wrn", "wrn40_2", "cifar100", {"depth": 40, "width": 2}),
    ("allconv", "allconv", "cifar10", {"width": 96}),
    ("densenet", "densenet40_12", "cifar10", {"depth": 40, "width": 12}),
    ("resnext", "resnext29", "cifar100", {"depth": 29, "width": 32}),
])
def test_official_cifar_checkpoint_loads_with_identical_logits(tmp_path, official_name, name, dataset, size_args):
    classes = {"cifar10": 10, "cifar100": 100}[dataset]
    torch.manual_seed(0)
    original = _randomised(build_model(name, classes))
    path = _save(_official_cifar(original, official_name, dataset), tmp_path / "checkpoint.pth.tar")
    model, info = load_model(path)
    assert not model.training
    assert torch.equal(_logits(model, 32), _logits(original, 32))
    assert info == ModelInfo(name=name, num_classes=classes, dataset=dataset, mean=CIFAR_MEAN_STD[0],
                             std=CIFAR_MEAN_STD[1], image_size=32, source="augmix-official-cifar", epoch=99,
                             sha256=sha256_file(path), model_args={"name": name, "num_classes": classes, **size_args})


def test_official_cifar_legacy_file_with_a_variant_wrn_size_loads(tmp_path):
    # The official files predate torch 1.6's zip serialisation, so write the legacy format. cifar.py --layers 16
    # --widen-factor 4: (16-4)/6 = 2 blocks per stage, stage-1 width 16*4 = 64, both read off the weights.
    torch.manual_seed(0)
    original = _randomised(build_model("wrn40_2", 10, depth=16, width=4))
    path = tmp_path / "wrn16_4.pth.tar"
    torch.save(_official_cifar(original, "wrn", "cifar10"), path, _use_new_zipfile_serialization=False)
    assert path.read_bytes()[:2] == b"\x80\x02"  # a bare pickle stream, not a zip archive
    model, info = load_model(path)
    assert info.model_args == {"name": "wrn40_2", "num_classes": 10, "depth": 16, "width": 4}
    assert torch.equal(_logits(model, 32), _logits(original, 32))


@pytest.mark.parametrize("arch_key,width", [("model", 16), ("arch", 8)])
def test_official_imagenet_checkpoint_loads_with_identical_logits(tmp_path, arch_key, width):
    # imagenet.py saves the arch under "model"; the pytorch/examples-style script behind the released model, "arch".
    torch.manual_seed(0)
    original = _randomised(build_model("resnet50", 1000, width=width))
    ckpt = {"epoch": 179, arch_key: "resnet50", "state_dict": _module_prefixed(original), "best_acc1": 77.53,
            "optimizer": _sgd_state(original)}
    path = _save(ckpt, tmp_path / "checkpoint.pth.tar")
    model, info = load_model(path)
    assert torch.equal(_logits(model, 64), _logits(original, 64))
    assert info == ModelInfo(name="resnet50", num_classes=1000, dataset="imagenet", mean=IMAGENET_MEAN_STD[0],
                             std=IMAGENET_MEAN_STD[1], image_size=224, source="augmix-official-imagenet", epoch=179,
                             sha256=sha256_file(path),
                             model_args={"name": "resnet50", "num_classes": 1000, "width": width})


def test_torchvision_resnet50_state_dict_loads(tmp_path):
    torch.manual_seed(0)
    reference = _randomised(torchvision.models.resnet50(weights=None))
    # torchvision's released weights predate BatchNorm's num_batches_tracked buffer; drop it as they do.
    state = {k: v for k, v in reference.state_dict().items() if not k.endswith("num_batches_tracked")}
    path = _save(state, tmp_path / "resnet50.pth")
    model, info = load_model(path)
    assert torch.equal(_logits(model, 64), _logits(reference, 64))
    assert (info.name, info.source, info.dataset, info.num_classes, info.image_size, info.epoch) == (
        "resnet50", "torchvision", "imagenet", 1000, 224, None)
    assert (info.mean, info.std) == IMAGENET_MEAN_STD


def test_our_checkpoint_round_trips_through_wrappers_and_training_state(tmp_path):
    torch.manual_seed(0)
    original = _randomised(build_model("wrn40_2", 10, depth=10, width=1))
    args = {"name": "wrn40_2", "num_classes": 10, "depth": 10, "width": 1, "droprate": None}
    fields = checkpoint_model_fields(nn.DataParallel(original), args, "digits",
                                     normalization=((0.1, 0.2, 0.3), (0.4, 0.5, 0.6)), image_size=32, epoch=7)
    assert not any(k.startswith("module.") for k in fields["model"])  # the unwrapped module is stored
    # A training checkpoint: torch.compile's prefix leaked into the weights, plus state the loader ignores.
    fields["model"] = {f"_orig_mod.{k}": v for k, v in fields["model"].items()}
    ckpt = {**fields, "optimizer": _sgd_state(original), "scheduler": {"last_epoch": 12}, "step": 12,
            "rng": capture_rng_state(), "config": {"optim": {"lr": 0.1}}, "metrics": {"test_acc": [0.1, 0.2]}}
    path = _save(ckpt, tmp_path / "last.pt")
    model, info = load_model(path)
    assert torch.equal(_logits(model, 32), _logits(original, 32))
    assert info == ModelInfo(name="wrn40_2", num_classes=10, dataset="digits", mean=(0.1, 0.2, 0.3),
                             std=(0.4, 0.5, 0.6), image_size=32, source="ours", epoch=7, sha256=sha256_file(path),
                             model_args={"name": "wrn40_2", "num_classes": 10, "depth": 10, "width": 1})


def test_save_weights_writes_a_loadable_weights_only_file(tmp_path):
    torch.manual_seed(0)
    original = _randomised(build_model("allconv", 100, width=16))
    path = tmp_path / "sub" / "weights.pt"
    save_weights(path, original, {"name": "allconv", "num_classes": 100, "width": 16}, "cifar100", epoch=100)
    model, info = load_model(path, dataset="cifar100", num_classes=100, arch="allconv")
    assert torch.equal(_logits(model, 32), _logits(original, 32))
    assert (info.mean, info.std, info.image_size, info.epoch) == (*CIFAR_MEAN_STD, 32, 100)


def test_unwrap_model_strips_nested_wrappers():
    model = build_model("resnet18", 10, width=8)
    assert unwrap_model(nn.DataParallel(nn.DataParallel(model))) is model


def test_plain_state_dict_needs_arch_and_sizes_are_inferred(tmp_path):
    torch.manual_seed(0)
    original = _randomised(build_model("densenet40_12", 100, depth=10, width=4))
    path = _save(_module_prefixed(original), tmp_path / "dense.pt")
    with pytest.raises(CheckpointError, match=r"does not say its architecture; pass arch= one of wrn40_2"):
        load_model(path)
    model, info = load_model(path, arch="densenet40_12")
    assert torch.equal(_logits(model, 32), _logits(original, 32))
    # 100 classes -> CIFAR-100 statistics; depth 3*2+4 = 10 and growth 4 read from dense1's two layers.
    assert (info.source, info.dataset, info.epoch) == ("state-dict", "cifar100", None)
    assert info.model_args == {"name": "densenet40_12", "num_classes": 100, "depth": 10, "width": 4}


def _tiny_ours(tmp_path, mutate=None):
    torch.manual_seed(0)
    fields = checkpoint_model_fields(build_model("wrn40_2", 10, depth=10, width=1),
                                     {"name": "wrn40_2", "num_classes": 10, "depth": 10, "width": 1}, "cifar10")
    if mutate:
        mutate(fields)
    return _save(fields, tmp_path / "ours.pt")


def test_missing_and_unexpected_keys_are_both_named(tmp_path):
    def mutate(fields):
        del fields["model"]["fc.bias"]
        fields["model"]["fc.extra_weight"] = torch.zeros(3)

    path = _tiny_ours(tmp_path, mutate)
    with pytest.raises(CheckpointError) as excinfo:
        load_model(path)
    message = str(excinfo.value)
    assert str(path) in message and "ours checkpoint does not match WideResNet" in message
    assert "1 missing key(s): fc.bias" in message and "1 unexpected key(s): fc.extra_weight" in message


def test_a_different_architecture_lists_the_first_ten_keys_with_counts(tmp_path):
    torch.manual_seed(0)
    other = build_model("resnet18", 10, width=8)
    path = _save({"epoch": 0, "dataset": "cifar10", "model": "wrn", "state_dict": _module_prefixed(other),
                  "best_acc": 0.1, "optimizer": {}}, tmp_path / "wrong.pth.tar")
    with pytest.raises(CheckpointError) as excinfo:
        load_model(path)
    message = str(excinfo.value)
    # WRN-40-2 keys: 18 blocks x (bn1 5 + conv1 1 + bn2 5 + conv2 1) = 216, + 3 shortcuts + stem conv + head bn 5 +
    # fc 2 = 227. Shared with ResNet-18: conv1.weight and bn1's 5 -> 221 missing, less the 18 x 2 blocks'
    # num_batches_tracked (not required) = 185. ResNet-18 has 122 keys: 122 - 6 shared = 116 unexpected.
    assert "augmix-official-cifar checkpoint does not match WideResNet" in message
    assert "185 missing key(s): block1.layer.0.bn1.weight, block1.layer.0.bn1.bias" in message
    assert "116 unexpected key(s): layer1.0.conv1.weight, layer1.0.bn1.weight" in message
    assert message.count("more)") == 2


def test_wrong_shapes_are_named_with_both_shapes(tmp_path):
    torch.manual_seed(0)
    ten_class = build_model("wrn40_2", 10, depth=10, width=1)
    path = _save(_official_cifar(ten_class, "wrn", "cifar100"), tmp_path / "c100.pth.tar")
    with pytest.raises(CheckpointError, match=r"2 tensor\(s\) of the wrong shape: fc.weight: file \(10, 64\) vs "
                                              r"model \(100, 64\); fc.bias: file \(10,\) vs model \(100,\)"):
        load_model(path)


@pytest.mark.parametrize("kwargs,pattern", [
    ({"arch": "resnet50"}, r"says arch='wrn40_2', but arch='resnet50' was passed"),
    ({"dataset": "cifar100"}, r"says dataset='cifar10', but dataset='cifar100' was passed"),
    ({"num_classes": 100}, r"says num_classes=10, but num_classes=100 was passed"),
])
def test_arguments_the_file_contradicts_are_errors(tmp_path, kwargs, pattern):
    torch.manual_seed(0)
    path = _save(_official_cifar(build_model("wrn40_2", 10, depth=10, width=1), "wrn", "cifar10"), tmp_path / "c.tar")
    with pytest.raises(CheckpointError, match=pattern):
        load_model(path, **kwargs)


def test_unknown_layout_lists_the_supported_formats(tmp_path):
    path = _save({"weights": [1, 2], "notes": "x"}, tmp_path / "odd.pt")
    with pytest.raises(CheckpointError) as excinfo:
        load_model(path)
    message = str(excinfo.value)
    assert f"{path}: unknown checkpoint layout (a dict with 2 key(s): 'weights', 'notes')" in message
    assert all(f"  {name}: " in message for name in FORMATS)
    with pytest.raises(CheckpointError, match=r"unknown checkpoint layout \(a list\)"):
        load_model(_save([torch.zeros(1)], tmp_path / "list.pt"))


class _Trap:
    """Pickles as a call to ``_spring``; a loader that runs pickled code would set ``SPRUNG``."""

    def __reduce__(self):
        return (_spring, ())


class _Custom:
    """A plain custom class: unpickling it would import this module and build an instance."""

    def __init__(self):
        self.value = 3


SPRUNG = []


def _spring():
    SPRUNG.append(True)
    return "sprung"


REFUSED = (r"{path}: refused, not loaded: the file contains pickled Python code or objects \({names}\) that "
           r"torch\.load\(weights_only=True\) refuses to unpickle")


@pytest.mark.parametrize("extra,legacy,names", [
    (_Trap(), False, r"(tests\.)?test_models_weights\._spring"),  # a call to a function, on unpickling
    (_spring, False, r"(tests\.)?test_models_weights\._spring"),  # a bare function reference
    (_Custom(), False, r"(tests\.)?test_models_weights\._Custom"),  # an instance of a custom class
    (_Custom(), True, r"(tests\.)?test_models_weights\._Custom"),  # the same in torch's pre-1.6 format
    (print, False, r"(__builtin__|builtins)\.print"),  # protocol 2 spells the module as Python 2 did
])
def test_pickled_code_and_objects_are_refused_without_running(tmp_path, extra, legacy, names):
    path = _tiny_ours(tmp_path, lambda fields: fields.update(extra=extra))
    if legacy:
        torch.save(torch.load(path, weights_only=False), path, _use_new_zipfile_serialization=False)
    with pytest.raises(CheckpointError) as excinfo:
        load_model(path)
    message = str(excinfo.value)
    assert re.match(REFUSED.format(path=re.escape(str(path)), names=names), message), message
    assert "so that a file cannot run code" in message
    assert "_rebuild_tensor" not in message and "OrderedDict" not in message  # only what was refused is named
    assert SPRUNG == []


@pytest.mark.filterwarnings("ignore:Detected pickle protocol 4")
def test_protocol_4_pickles_name_the_refused_global(tmp_path):
    # Protocol 4 names globals with STACK_GLOBAL (module and name pushed as strings), not GLOBAL.
    path = tmp_path / "p4.pt"
    torch.save({"weights": torch.zeros(2), "meta": _Custom()}, path, pickle_protocol=4)
    with pytest.raises(CheckpointError, match=REFUSED.format(path=re.escape(str(path)),
                                                             names=r"(tests\.)?test_models_weights\._Custom")):
        load_model(path)


def test_bytes_that_are_no_checkpoint_are_unreadable_not_refused(tmp_path):
    noise = tmp_path / "noise.pt"
    noise.write_bytes(bytes(range(256)) * 4)
    text = tmp_path / "notes.pt"
    text.write_text("not a checkpoint\n" * 20)
    for path in (noise, text):
        with pytest.raises(CheckpointError, match=rf"{re.escape(str(path))}: not a readable torch checkpoint"):
            load_model(path)


def test_missing_corrupt_and_newer_files_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint not found: .*nothing.pt"):
        load_model(tmp_path / "nothing.pt")
    good = _tiny_ours(tmp_path)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match=rf"{truncated}: not a readable torch checkpoint"):
        load_model(truncated)
    newer = _tiny_ours(tmp_path, lambda fields: fields.update(format_version=99))
    with pytest.raises(CheckpointError, match=r"format_version 99 is not one this code reads \(1\.\.1\)"):
        load_model(newer)
    incomplete = _tiny_ours(tmp_path, lambda fields: fields.pop("image_size"))
    with pytest.raises(CheckpointError, match=r"ours checkpoint lacks key\(s\) image_size \(needs model_args, model"):
        load_model(incomplete)
    bad_norm = _tiny_ours(tmp_path, lambda fields: fields.update(normalization={"mean": [0.5] * 3}))
    with pytest.raises(CheckpointError, match=r"normalization must be \{'mean': \[3 floats\], 'std': \[3 floats\]\}"):
        load_model(bad_norm)


def test_checkpoint_model_fields_validates_its_arguments():
    model = build_model("resnet18", 10, width=8)
    with pytest.raises(ValueError, match=r"model_args must hold name, num_classes.*'depht'"):
        checkpoint_model_fields(model, {"name": "resnet18", "num_classes": 10, "depht": 3}, "cifar10")
    with pytest.raises(ValueError, match=r"dataset 'digits' has no default normalization/image_size"):
        checkpoint_model_fields(model, {"name": "resnet18", "num_classes": 10, "width": 8}, "digits")
    with pytest.raises(ValueError, match=r"normalization needs 3 means and 3 positive stds"):
        checkpoint_model_fields(model, {"name": "resnet18", "num_classes": 10}, "digits", ((0.5,) * 3, (0.0,) * 3), 32)


@pytest.mark.gpu
def test_map_location_puts_the_model_on_that_device(tmp_path):
    path = _tiny_ours(tmp_path)
    cpu_model, _ = load_model(path)
    gpu_model, _ = load_model(path, map_location="cuda")
    assert all(p.is_cuda for p in gpu_model.parameters()) and not gpu_model.training
    torch.testing.assert_close(_logits(gpu_model, 32), _logits(cpu_model, 32), rtol=1e-3, atol=1e-3)


# --- The official layouts, written out from the official sources (not from our modules) -------------------------
# Each function lists the state-dict keys and shapes of one upstream model, block by block, as the upstream module
# registers them. google-research/augmix: third_party/WideResNet_pytorch/wideresnet.py (WRN), third_party/
# ResNeXt_DenseNet/models/densenet.py (``densenet()``: growth 12, depth 40, reduction 1, no bottleneck) and
# resnext.py (``resnext29()``: cardinality 4, base width 32), models/cifar/allconv.py; torchvision's resnet50 for
# imagenet.py. BatchNorm carries num_batches_tracked in files written by torch >= 0.4.1 (the official scripts
# pinned torch 1.2); torchvision's released ResNet-50 weights predate it.


def _bn_keys(prefix: str, channels: int, tracked: bool = True) -> dict:
    keys = {f"{prefix}.{k}": (channels,) for k in ("weight", "bias", "running_mean", "running_var")}
    if tracked:
        keys[f"{prefix}.num_batches_tracked"] = ()
    return keys


def official_wrn_keys(depth: int = 40, widen: int = 2, classes: int = 10, shortcut: str = "conv_shortcut") -> dict:
    """WideResNet(depth, classes, widen): BasicBlock = bn1, conv1 3x3, bn2, conv2 3x3, shortcut 1x1 on a width change.

    ``shortcut="convShortcut"`` gives the older third-party WideResNet's name for the same conv.
    """
    n, widths = (depth - 4) // 6, (16, 16 * widen, 32 * widen, 64 * widen)
    keys = {"conv1.weight": (16, 3, 3, 3)}
    for stage in (1, 2, 3):
        for i in range(n):
            c_in, c_out, p = widths[stage - 1] if i == 0 else widths[stage], widths[stage], f"block{stage}.layer.{i}"
            keys.update(_bn_keys(f"{p}.bn1", c_in))
            keys[f"{p}.conv1.weight"] = (c_out, c_in, 3, 3)
            keys.update(_bn_keys(f"{p}.bn2", c_out))
            keys[f"{p}.conv2.weight"] = (c_out, c_out, 3, 3)
            if c_in != c_out:
                keys[f"{p}.{shortcut}.weight"] = (c_out, c_in, 1, 1)
    keys.update(_bn_keys("bn1", widths[3]))
    keys.update({"fc.weight": (classes, widths[3]), "fc.bias": (classes,)})
    return keys


def official_densenet_keys(depth: int = 40, growth: int = 12, classes: int = 10) -> dict:
    """DenseNet(growth, depth, reduction 1, classes, bottleneck False): SingleLayer = bn1, conv1 3x3 (growth out);
    Transition = bn1, conv1 1x1 (same width)."""
    n, channels = (depth - 4) // 3, 2 * growth
    keys = {"conv1.weight": (channels, 3, 3, 3)}
    for block in (1, 2, 3):
        for i in range(n):
            keys.update(_bn_keys(f"dense{block}.{i}.bn1", channels))
            keys[f"dense{block}.{i}.conv1.weight"] = (growth, channels, 3, 3)
            channels += growth
        if block < 3:
            keys.update(_bn_keys(f"trans{block}.bn1", channels))
            keys[f"trans{block}.conv1.weight"] = (channels, channels, 1, 1)
    keys.update(_bn_keys("bn1", channels))
    keys.update({"fc.weight": (classes, channels), "fc.bias": (classes,)})
    return keys


def official_resnext_keys(depth: int = 29, cardinality: int = 4, base_width: int = 32, classes: int = 10) -> dict:
    """CifarResNeXt: conv_1_3x3, bn_1; stage_s blocks = conv_reduce, bn_reduce, conv_conv (grouped 3x3), bn,
    conv_expand, bn_expand, and on each stage's first block downsample = (1x1 conv, BN); classifier."""
    n, in_planes = (depth - 2) // 9, 64
    keys = {"conv_1_3x3.weight": (64, 3, 3, 3), **_bn_keys("bn_1", 64)}
    for stage, planes in ((1, 64), (2, 128), (3, 256)):
        dim, out = (planes * base_width // 64) * cardinality, 4 * planes
        for i in range(n):
            p = f"stage_{stage}.{i}"
            keys[f"{p}.conv_reduce.weight"] = (dim, in_planes, 1, 1)
            keys.update(_bn_keys(f"{p}.bn_reduce", dim))
            keys[f"{p}.conv_conv.weight"] = (dim, dim // cardinality, 3, 3)
            keys.update(_bn_keys(f"{p}.bn", dim))
            keys[f"{p}.conv_expand.weight"] = (out, dim, 1, 1)
            keys.update(_bn_keys(f"{p}.bn_expand", out))
            if i == 0:
                keys[f"{p}.downsample.0.weight"] = (out, in_planes, 1, 1)
                keys.update(_bn_keys(f"{p}.downsample.1", out))
            in_planes = out
    keys.update({"classifier.weight": (classes, 1024), "classifier.bias": (classes,)})
    return keys


def official_allconv_keys(classes: int = 10) -> dict:
    """make_layers([96, 96, 96, 'Md', 192, 192, 192, 'Md', 'nopad', 'NIN', 'NIN', 'A']): a number or 'nopad'/'NIN'
    adds (conv with bias, BN, GELU) = 3 indices, 'Md' (max-pool, dropout) = 2, 'A' (avg-pool) = 1; classifier."""
    keys, index, c_in = {}, 0, 3
    for entry in (96, 96, 96, "Md", 192, 192, 192, "Md", "nopad", "NIN", "NIN", "A"):
        if entry in ("Md", "A"):
            index += 2 if entry == "Md" else 1
            continue
        c_out, kernel = (c_in, {"nopad": 3, "NIN": 1}[entry]) if isinstance(entry, str) else (entry, 3)
        keys.update({f"features.{index}.weight": (c_out, c_in, kernel, kernel), f"features.{index}.bias": (c_out,)})
        keys.update(_bn_keys(f"features.{index + 1}", c_out))
        index, c_in = index + 3, c_out
    keys.update({"classifier.weight": (classes, 192), "classifier.bias": (classes,)})
    return keys


def torchvision_resnet50_keys(classes: int = 1000, tracked: bool = True) -> dict:
    """torchvision resnet50: conv1 7x7, bn1; layer1..4 of 3/4/6/3 Bottlenecks = conv1 1x1, bn1, conv2 3x3 (stride),
    bn2, conv3 1x1 (4x planes), bn3, and downsample = (1x1 conv, BN) on each layer's first block; fc."""
    keys = {"conv1.weight": (64, 3, 7, 7), **_bn_keys("bn1", 64, tracked)}
    in_planes = 64
    for layer, (blocks, planes) in enumerate(((3, 64), (4, 128), (6, 256), (3, 512)), start=1):
        for i in range(blocks):
            p = f"layer{layer}.{i}"
            keys[f"{p}.conv1.weight"] = (planes, in_planes, 1, 1)
            keys.update(_bn_keys(f"{p}.bn1", planes, tracked))
            keys[f"{p}.conv2.weight"] = (planes, planes, 3, 3)
            keys.update(_bn_keys(f"{p}.bn2", planes, tracked))
            keys[f"{p}.conv3.weight"] = (4 * planes, planes, 1, 1)
            keys.update(_bn_keys(f"{p}.bn3", 4 * planes, tracked))
            if i == 0:
                keys[f"{p}.downsample.0.weight"] = (4 * planes, in_planes, 1, 1)
                keys.update(_bn_keys(f"{p}.downsample.1", 4 * planes, tracked))
            in_planes = 4 * planes
    keys.update({"fc.weight": (classes, 2048), "fc.bias": (classes,)})
    return keys


def _parameter_count(keys: dict) -> int:
    """Conv/linear weights and biases plus BN affines (not running statistics), as docs/augmix.md §8 counts."""
    return sum(math.prod(shape) for key, shape in keys.items()
               if not key.endswith(("running_mean", "running_var", "num_batches_tracked")))


# Published facts the tables must reproduce: parameter counts (docs/augmix.md §8; torchvision's 25,557,032 for
# ResNet-50) and key counts worked by hand, e.g. WRN-40-2: 18 blocks x 12 keys + 3 shortcuts + stem + head BN 5 +
# fc 2 = 227; ResNet-50: 53 BNs x 5 + 53 convs + fc 2 = 320, 267 without num_batches_tracked.
@pytest.mark.parametrize("keys,count,params", [
    (official_wrn_keys(), 227, 2_243_546),
    (official_wrn_keys(classes=100), 227, 2_255_156),
    (official_densenet_keys(), 236, 1_059_298),
    (official_densenet_keys(classes=100), 236, 1_100_428),
    (official_resnext_keys(), 188, 6_807_882),
    (official_resnext_keys(classes=100), 188, 6_900_132),
    (official_allconv_keys(), 65, 1_409_674),
    (official_allconv_keys(classes=100), 65, 1_427_044),
    (torchvision_resnet50_keys(), 320, 25_557_032),
    (torchvision_resnet50_keys(tracked=False), 267, 25_557_032),
])
def test_official_tables_reproduce_the_published_sizes(keys, count, params):
    assert (len(keys), _parameter_count(keys)) == (count, params)


def _fake_state(keys: dict, seed: int = 0) -> dict:
    """Random tensors of the listed shapes (float32; num_batches_tracked an int64 count), in the listed order."""
    g = torch.Generator().manual_seed(seed)
    return {k: torch.tensor(1000, dtype=torch.int64) if k.endswith("num_batches_tracked")
            else torch.randn(shape, generator=g) for k, shape in keys.items()}


def _sgd_state_for(state: dict, nesterov: bool) -> dict:
    """An SGD optimizer state dict as torch writes it: param_groups with parameter indices, momentum buffers."""
    n = sum(1 for k in state if not k.endswith(("running_mean", "running_var", "num_batches_tracked")))
    group = {"lr": 0.1, "momentum": 0.9, "dampening": 0, "weight_decay": 5e-4, "nesterov": nesterov,
             "params": list(range(n))}
    return {"state": {0: {"momentum_buffer": torch.zeros(3)}}, "param_groups": [group]}


def _assert_loaded_one_to_one(model: nn.Module, state: dict, optional: tuple[str, ...] = ()) -> None:
    """The model's state dict holds exactly the file's keys (plus ``optional`` suffixes the file may lack), each
    with the file's tensor."""
    ours = model.state_dict()
    assert sorted(k for k in ours if not k.endswith(optional)) == sorted(state)
    different = [k for k in state if not torch.equal(ours[k].cpu(), state[k])]
    assert not different, different[:5]


@pytest.mark.parametrize("official_name,keys,name,dataset,size_args,label", [
    ("wrn", official_wrn_keys(), "wrn40_2", "cifar10", {"depth": 40, "width": 2}, "WRN-40-2"),
    ("wrn", official_wrn_keys(depth=16, widen=4, classes=100), "wrn40_2", "cifar100", {"depth": 16, "width": 4},
     "WRN-16-4"),
    ("densenet", official_densenet_keys(), "densenet40_12", "cifar10", {"depth": 40, "width": 12}, "DenseNet-40-12"),
    ("resnext", official_resnext_keys(classes=100), "resnext29", "cifar100", {"depth": 29, "width": 32},
     "ResNeXt-29 (4x32d)"),
    ("allconv", official_allconv_keys(), "allconv", "cifar10", {"width": 96}, "AllConvNet"),
])
def test_official_cifar_files_written_from_the_official_names_load_strictly(tmp_path, official_name, keys, name,
                                                                           dataset, size_args, label):
    state = _fake_state(keys)
    # cifar.py's checkpoint dict; the model was wrapped in DataParallel, so every key starts with "module.".
    ckpt = {"epoch": 199, "dataset": dataset, "model": official_name,
            "state_dict": {f"module.{k}": v for k, v in state.items()}, "best_acc": 0.9488,
            "optimizer": _sgd_state_for(state, nesterov=True)}
    path = _save(ckpt, tmp_path / "checkpoint.pth.tar")
    model, info = load_model(path)
    _assert_loaded_one_to_one(model, state)
    classes = {"cifar10": 10, "cifar100": 100}[dataset]
    assert info.model_args == {"name": name, "num_classes": classes, **size_args}
    assert (info.source, info.dataset, info.epoch, info.display_name) == ("augmix-official-cifar", dataset, 199, label)


def test_official_imagenet_file_written_from_torchvision_names_loads_strictly(tmp_path):
    state = _fake_state(torchvision_resnet50_keys())
    # imagenet.py: epoch, model (the torchvision arch name), the DataParallel state dict, best_acc1, optimizer.
    ckpt = {"epoch": 89, "model": "resnet50", "state_dict": {f"module.{k}": v for k, v in state.items()},
            "best_acc1": 0.7753, "optimizer": _sgd_state_for(state, nesterov=False)}
    path = _save(ckpt, tmp_path / "checkpoint.pth.tar")
    model, info = load_model(path)
    _assert_loaded_one_to_one(model, state)
    assert (info.name, info.source, info.dataset, info.num_classes, info.epoch, info.display_name) == (
        "resnet50", "augmix-official-imagenet", "imagenet", 1000, 89, "ResNet-50")


def test_torchvision_weights_written_from_torchvision_names_load_strictly(tmp_path):
    state = _fake_state(torchvision_resnet50_keys(tracked=False))
    path = _save(state, tmp_path / "resnet50-19c8e357.pth")
    model, info = load_model(path)
    _assert_loaded_one_to_one(model, state, optional=("num_batches_tracked",))
    assert (info.source, info.model_args, info.display_name) == (
        "torchvision", {"name": "resnet50", "num_classes": 1000, "width": 64}, "ResNet-50")


def test_the_older_convshortcut_name_loads_from_official_and_our_files(tmp_path):
    # The third-party WideResNet before the official rename, and this project's earlier checkpoints, name the
    # shortcut conv "convShortcut"; both load into conv_shortcut.
    legacy = _fake_state(official_wrn_keys(depth=10, widen=1, shortcut="convShortcut"))
    current = {k.replace(".convShortcut.", ".conv_shortcut."): v for k, v in legacy.items()}
    assert sum(".convShortcut." in k for k in legacy) == 2  # blocks 2 and 3 change width at widen factor 1
    official = {"epoch": 3, "dataset": "cifar10", "model": "wrn",
                "state_dict": {f"module.{k}": v for k, v in legacy.items()}, "best_acc": 0.5, "optimizer": {}}
    model, info = load_model(_save(official, tmp_path / "third_party.pth.tar"))
    _assert_loaded_one_to_one(model, current)
    assert info.display_name == "WRN-10-1"
    ours = {"format_version": 1, "model_args": {"name": "wrn40_2", "num_classes": 10, "depth": 10, "width": 1},
            "model": legacy, "normalization": {"mean": [0.5] * 3, "std": [0.5] * 3}, "dataset": "cifar10",
            "image_size": 32, "epoch": 12}
    model, info = load_model(_save(ours, tmp_path / "earlier_run.pt"))
    _assert_loaded_one_to_one(model, current)
    assert (info.source, info.epoch) == ("ours", 12)


def test_a_tensor_under_both_its_old_and_new_name_is_an_error(tmp_path):
    state = _fake_state(official_wrn_keys(depth=10, widen=1))
    state["block2.layer.0.convShortcut.weight"] = state["block2.layer.0.conv_shortcut.weight"].clone()
    path = _save(state, tmp_path / "both.pt")
    with pytest.raises(CheckpointError, match=r"key 'block2\.layer\.0\.conv_shortcut\.weight' appears twice, as "
                                              r"'block2\.layer\.0\.conv_shortcut\.weight' and as "
                                              r"'block2\.layer\.0\.convShortcut\.weight'"):
        load_model(path, arch="wrn40_2")


def test_model_info_display_name_follows_model_args():
    def info(name, model_args):
        return ModelInfo(name=name, num_classes=10, dataset="cifar10", mean=CIFAR_MEAN_STD[0], std=CIFAR_MEAN_STD[1],
                         image_size=32, source="ours", epoch=0, sha256="0" * 64, model_args=model_args)

    assert info("wrn40_2", {"name": "wrn40_2", "num_classes": 10, "depth": 10, "width": 1}).display_name == "WRN-10-1"
    assert info("resnet50", {}).display_name == "ResNet-50"  # no model_args: the model's default sizes
    assert info("tiny", {}).display_name == "tiny"  # a model outside the registry keeps its own name
