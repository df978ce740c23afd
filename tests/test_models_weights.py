"""models/weights.py: every supported checkpoint layout loads into the right model with identical logits and the
right ModelInfo; mismatches, unknown layouts, corrupt files and pickled code objects give clear errors."""

from __future__ import annotations

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


SPRUNG = []


def _spring():
    SPRUNG.append(True)
    return "sprung"


def test_pickled_python_objects_are_refused_without_running(tmp_path):
    path = _tiny_ours(tmp_path, lambda fields: fields.update(extra=_Trap()))
    with pytest.raises(CheckpointError, match=r"refused: the file pickles a Python object \((tests\.)?"
                                              r"test_models_weights\._spring\) .*torch\.load\(weights_only=True\)"):
        load_model(path)
    assert SPRUNG == []


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
