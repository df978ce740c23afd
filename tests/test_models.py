"""models/: every registered model builds, trains a step, round-trips and batches; exact sizes, initialisation,
official parameter names, the spec's forward pass (docs/augmix.md §8) and build_model's errors."""

from __future__ import annotations

import io
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from models import MODELS, build_model, display_name
from models.allconv import AllConvNet

# Shrunk configurations (the quickstart's), so each forward/backward takes milliseconds on a CPU.
TINY = {
    "wrn40_2": {"depth": 10, "width": 1},
    "densenet40_12": {"depth": 10, "width": 4},
    "resnext29": {"depth": 11, "width": 4},
    "allconv": {"width": 16},
    "resnet50": {"width": 8},
    "resnet18": {"width": 8},
    "alexnet": {},  # no size keys: full size (61M parameters), still fast at 64 px
}
INPUT_SIZE = {"resnet50": 64, "alexnet": 64}  # every other model: 32
CIFAR_MODELS = ("wrn40_2", "densenet40_12", "resnext29", "allconv")


def _tiny(name: str, num_classes: int = 10, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build_model(name, num_classes, **TINY[name])


def _images(name: str, batch: int, seed: int = 0) -> torch.Tensor:
    size = INPUT_SIZE.get(name, 32)
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def _randomise_batchnorm(model: nn.Module, seed: int = 1) -> nn.Module:
    """Non-trivial BN statistics and affine parameters, so eval-mode logits depend on every BN tensor."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(0.1 * torch.randn(m.num_features, generator=g))
            m.running_var.copy_(0.5 + torch.rand(m.num_features, generator=g))
            m.weight.copy_(0.5 + torch.rand(m.num_features, generator=g))
            m.bias.copy_(0.1 * torch.randn(m.num_features, generator=g))
    return model


def test_every_registered_model_has_a_tiny_config():
    assert set(TINY) == set(MODELS)


@pytest.mark.parametrize("name", list(MODELS))
def test_forward_backward_reaches_every_parameter(name):
    model = _tiny(name).train()
    logits = model(_images(name, 4))
    assert logits.shape == (4, 10) and logits.dtype == torch.float32 and torch.isfinite(logits).all()
    F.cross_entropy(logits, torch.tensor([0, 1, 2, 3])).backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not no_grad, f"{name}: parameters without gradient: {no_grad[:5]}"
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("name", list(MODELS))
def test_state_dict_round_trip_gives_identical_logits(name):
    source = _randomise_batchnorm(_tiny(name, seed=0)).eval()
    buffer = io.BytesIO()
    torch.save(source.state_dict(), buffer)
    target = _tiny(name, seed=1).eval()
    x = _images(name, 2)
    with torch.no_grad():
        assert not torch.equal(target(x), source(x))  # different seeds: the round trip has something to prove
        target.load_state_dict(torch.load(io.BytesIO(buffer.getvalue()), weights_only=True))
        assert torch.equal(target(x), source(x))


@pytest.mark.parametrize("name", list(MODELS))
def test_batch_of_one_gives_the_same_logits_as_in_a_batch(name):
    # DenseNet's official head squeezes every singleton dim (docs/augmix.md §9, defect 9); ours flattens from dim 1.
    model = _randomise_batchnorm(_tiny(name)).eval()
    x = _images(name, 3)
    with torch.no_grad():
        one, three = model(x[:1]), model(x)
    assert one.shape == (1, 10)
    torch.testing.assert_close(one, three[:1], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", list(MODELS))
def test_channels_last_gives_the_same_logits(name):
    model = _randomise_batchnorm(_tiny(name)).eval()
    x = _images(name, 2)
    with torch.no_grad():
        expected = model(x)
        model = model.to(memory_format=torch.channels_last)
        torch.testing.assert_close(model(x.contiguous(memory_format=torch.channels_last)), expected,
                                   rtol=1e-4, atol=1e-4)


# docs/augmix.md §8 (the ResNets: torchvision's models). A K-class linear on F features has F*K + K parameters, so each
# 100-class count exceeds the 10-class one by 90*(F+1): WRN F=128 -> 11,610; DenseNet F=456 -> 41,130;
# ResNeXt F=1024 -> 92,250; AllConv F=192 -> 17,370; ResNet-18 F=512 -> 46,170 (11,173,962 + 46,170 = 11,220,132).
# ResNet-50 at 10 classes: 25,557,032 - 990*2049 = 23,528,522.
PARAMETER_COUNTS = [
    ("wrn40_2", 10, 2_243_546), ("wrn40_2", 100, 2_255_156),
    ("densenet40_12", 10, 1_059_298), ("densenet40_12", 100, 1_100_428),
    ("resnext29", 10, 6_807_882), ("resnext29", 100, 6_900_132),
    ("allconv", 10, 1_409_674), ("allconv", 100, 1_427_044),
    ("resnet50", 1000, 25_557_032), ("resnet50", 10, 23_528_522),
    ("resnet18", 10, 11_173_962), ("resnet18", 100, 11_220_132),
    ("alexnet", 1000, 61_100_840),  # torchvision's AlexNet
]


@pytest.mark.parametrize("name,num_classes,expected", PARAMETER_COUNTS)
def test_full_size_parameter_counts_are_exact(name, num_classes, expected):
    assert sum(p.numel() for p in build_model(name, num_classes).parameters()) == expected


@pytest.mark.parametrize("name", [n for n in MODELS if n != "alexnet"])
def test_initialisation_follows_the_reference(name):
    torch.manual_seed(0)
    model = build_model(name, 10)
    for module_name, m in model.named_modules():
        if isinstance(m, nn.Conv2d) and m.weight.numel() >= 2000:  # enough samples for a 10 % std check
            # He fan-out: std = sqrt(2 / (kh*kw*out)); e.g. a 3x3 conv to 32 channels: sqrt(2/288) = 0.0833.
            expected = math.sqrt(2.0 / (m.kernel_size[0] * m.kernel_size[1] * m.out_channels))
            assert m.weight.std().item() == pytest.approx(expected, rel=0.1), module_name
            assert abs(m.weight.mean().item()) < 0.1 * expected, module_name
        elif isinstance(m, nn.BatchNorm2d):
            assert torch.all(m.weight == 1) and torch.all(m.bias == 0), module_name
        elif isinstance(m, nn.Linear):
            bound = 1 / math.sqrt(m.in_features)  # PyTorch's default Linear init is uniform within +-bound
            if name == "resnext29":  # Kaiming-normal fan-in: std sqrt(2/1024) = 0.0442 (10,240 samples)
                assert m.weight.std().item() == pytest.approx(math.sqrt(2.0 / m.in_features), rel=0.05)
            else:
                assert m.weight.abs().max().item() <= bound
            if name in CIFAR_MODELS:
                assert torch.all(m.bias == 0), module_name
            else:  # torchvision's ResNet init keeps the default bias
                assert m.bias.abs().max().item() <= bound and m.bias.abs().sum() > 0


def test_alexnet_keeps_pytorch_default_init():
    # torchvision's AlexNet leaves PyTorch's defaults: kaiming_uniform(a=sqrt(5)) = U(+-1/sqrt(fan_in)) for every
    # conv and linear weight, e.g. features.0: fan_in 3*11*11 = 363 -> bound 0.0525.
    torch.manual_seed(0)
    for m in build_model("alexnet", 1000).modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            bound = 1 / math.sqrt(m.weight[0].numel())
            assert m.weight.abs().max().item() <= bound and m.weight.std().item() > 0.5 * bound / math.sqrt(3)


# Keys hand-derived from the official modules (google-research/augmix, see each module's docstring), e.g. AllConv's
# features: 3 x (conv, bn, gelu) = 0..8, max-pool 9, dropout 10, 11..19, 20, 21, nopad conv 22, NIN 25, NIN 28, pool 31.
OFFICIAL_KEYS = {
    "wrn40_2": ["conv1.weight", "block1.layer.0.bn1.running_var", "block1.layer.0.conv_shortcut.weight",
                "block2.layer.5.conv2.weight", "block3.layer.0.conv_shortcut.weight", "bn1.bias", "fc.weight"],
    "densenet40_12": ["conv1.weight", "dense1.0.bn1.weight", "dense1.11.conv1.weight", "trans1.conv1.weight",
                      "trans2.bn1.running_mean", "dense3.11.conv1.weight", "bn1.weight", "fc.bias"],
    "resnext29": ["conv_1_3x3.weight", "bn_1.running_mean", "stage_1.0.conv_reduce.weight", "stage_1.0.bn_reduce.bias",
                  "stage_2.0.conv_conv.weight", "stage_2.2.bn.weight", "stage_3.0.conv_expand.weight",
                  "stage_3.0.bn_expand.bias", "stage_3.0.downsample.0.weight", "stage_3.0.downsample.1.running_var",
                  "classifier.weight"],
    "allconv": ["features.0.weight", "features.0.bias", "features.1.running_mean", "features.11.weight",
                "features.22.weight", "features.23.weight", "features.25.weight", "features.28.bias",
                "features.29.running_var", "classifier.weight"],
}


@pytest.mark.parametrize("name", CIFAR_MODELS)
def test_parameter_names_are_the_official_ones(name):
    state = build_model(name, 10).state_dict()
    missing = [k for k in OFFICIAL_KEYS[name] if k not in state]
    assert not missing
    shapes = {"wrn40_2": ("block1.layer.0.conv_shortcut.weight", (32, 16, 1, 1)),
              "densenet40_12": ("trans2.conv1.weight", (312, 312, 1, 1)),
              "resnext29": ("stage_2.0.conv_conv.weight", (256, 64, 3, 3)),  # D=256 in 4 groups of 64
              "allconv": ("features.22.weight", (192, 192, 3, 3))}
    key, shape = shapes[name]
    assert tuple(state[key].shape) == shape
    assert "stage_1.1.downsample.0.weight" not in state and "block1.layer.1.conv_shortcut.weight" not in state


def _conv(state, key, x, stride=1, padding=1, groups=1):
    return F.conv2d(x, state[f"{key}.weight"], state.get(f"{key}.bias"), stride, padding, 1, groups)


def _bn(state, key, x):
    return F.batch_norm(x, state[f"{key}.running_mean"], state[f"{key}.running_var"], state[f"{key}.weight"],
                        state[f"{key}.bias"], False, 0.0, 1e-5)


def _wrn_reference(s, x, n):
    """docs/augmix.md §8 WRN: pre-activation blocks; on a width change the BN-ReLU output feeds conv and shortcut."""
    x = _conv(s, "conv1", x)
    for stage, stride in ((1, 1), (2, 2), (3, 2)):
        for i in range(n):
            p = f"block{stage}.layer.{i}"
            act = F.relu(_bn(s, f"{p}.bn1", x))
            stride_i = stride if i == 0 else 1
            shortcut = _conv(s, f"{p}.conv_shortcut", act, stride_i, 0) if f"{p}.conv_shortcut.weight" in s else x
            out = F.relu(_bn(s, f"{p}.bn2", _conv(s, f"{p}.conv1", act, stride_i)))
            x = shortcut + _conv(s, f"{p}.conv2", out)
    x = F.avg_pool2d(F.relu(_bn(s, "bn1", x)), 8).flatten(1)
    return F.linear(x, s["fc.weight"], s["fc.bias"])


def _densenet_reference(s, x, n):
    """docs/augmix.md §8 DenseNet (non-BC): each layer concatenates 12 new channels; transitions keep width,
    pool 2x2."""
    x = _conv(s, "conv1", x)
    for block in (1, 2, 3):
        for i in range(n):
            x = torch.cat([x, _conv(s, f"dense{block}.{i}.conv1", F.relu(_bn(s, f"dense{block}.{i}.bn1", x)))], 1)
        if block < 3:
            x = F.avg_pool2d(_conv(s, f"trans{block}.conv1", F.relu(_bn(s, f"trans{block}.bn1", x)), padding=0), 2)
    x = F.avg_pool2d(F.relu(_bn(s, "bn1", x)), 8).flatten(1)
    return F.linear(x, s["fc.weight"], s["fc.bias"])


def _resnext_reference(s, x, n):
    """docs/augmix.md §8 ResNeXt: reduce, grouped 3x3 (4 groups, stride on the first block), expand, projection."""
    x = F.relu(_bn(s, "bn_1", _conv(s, "conv_1_3x3", x)))
    for stage, stride in ((1, 1), (2, 2), (3, 2)):
        for i in range(n):
            p, stride_i = f"stage_{stage}.{i}", stride if i == 0 else 1
            out = F.relu(_bn(s, f"{p}.bn_reduce", _conv(s, f"{p}.conv_reduce", x, padding=0)))
            out = F.relu(_bn(s, f"{p}.bn", _conv(s, f"{p}.conv_conv", out, stride_i, 1, groups=4)))
            out = _bn(s, f"{p}.bn_expand", _conv(s, f"{p}.conv_expand", out, padding=0))
            if f"{p}.downsample.0.weight" in s:
                x = _bn(s, f"{p}.downsample.1", _conv(s, f"{p}.downsample.0", x, stride_i, 0))
            x = F.relu(x + out)
    x = F.avg_pool2d(x, 8).flatten(1)
    return F.linear(x, s["classifier.weight"], s["classifier.bias"])


def _allconv_reference(s, x, n):
    """docs/augmix.md §8 AllConvNet: conv+BN+x*sigmoid(1.702x); pad 0 then two padded 1x1 convs; pool 8 on 10x10."""
    def block(idx, x, padding):
        y = _bn(s, f"features.{idx + 1}", _conv(s, f"features.{idx}", x, padding=padding))
        return y * torch.sigmoid(1.702 * y)

    for idx in (0, 3, 6):
        x = block(idx, x, 1)
    x = F.max_pool2d(x, 2)
    for idx in (11, 14, 17):
        x = block(idx, x, 1)
    x = F.max_pool2d(x, 2)
    x = block(28, block(25, block(22, x, 0), 1), 1)  # 8 -> 6 -> 8 -> 10
    assert x.shape[-2:] == (10, 10)
    x = x[..., :8, :8].mean((2, 3))  # AvgPool2d(8) on a 10x10 map covers only the top-left 8x8
    return F.linear(x, s["classifier.weight"], s["classifier.bias"])


@pytest.mark.parametrize("name,reference,n", [("wrn40_2", _wrn_reference, 1), ("densenet40_12", _densenet_reference, 2),
                                              ("resnext29", _resnext_reference, 1), ("allconv", _allconv_reference, 0)])
def test_forward_matches_the_spec_written_out(name, reference, n):
    # Tiny sizes: WRN depth 10 -> n = (10-4)/6 = 1 block per stage; DenseNet depth 10 -> (10-4)/3 = 2 layers per
    # block; ResNeXt depth 11 -> (11-2)/9 = 1 block per stage.
    model = _randomise_batchnorm(_tiny(name)).eval()
    x = _images(name, 2)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(model.state_dict(), x, n), rtol=1e-5, atol=1e-5)


def test_allconv_pool_quirk_and_its_corrected_variant():
    torch.manual_seed(0)
    quirk = _randomise_batchnorm(AllConvNet(width=16)).eval()
    fixed = AllConvNet(width=16, topleft_pool=False).eval()
    fixed.load_state_dict(quirk.state_dict())
    x = _images("allconv", 2)
    with torch.no_grad():
        fmap = quirk.features[:31](x)  # (2, 32, 10, 10), before the pool
        head = quirk.classifier
        torch.testing.assert_close(quirk(x), head(fmap[..., :8, :8].mean((2, 3))), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(fixed(x), head(fmap.mean((2, 3))), rtol=1e-5, atol=1e-5)
        assert not torch.allclose(quirk(x), fixed(x), atol=1e-4)


@pytest.mark.parametrize("name", CIFAR_MODELS)
def test_cifar_models_reject_inputs_their_head_cannot_pool(name):
    model = _tiny(name).eval()
    with pytest.raises(ValueError, match=rf"{name} expects 32x32 inputs.*\(2, 2\) map"):
        model(torch.zeros(1, 3, 64, 64))


@pytest.mark.parametrize("name,size", [("resnet50", 32), ("resnet50", 48), ("resnet18", 40)])
def test_resnets_take_any_size_from_32(name, size):
    with torch.no_grad():
        assert _tiny(name).eval()(torch.randn(1, 3, size, size)).shape == (1, 10)


def test_size_keys_shrink_each_model_as_documented():
    # WRN width 1: stage widths 16/32/64 -> fc sees 64 features; depth 10 -> one block per stage.
    wrn = build_model("wrn40_2", 10, depth=10, width=1)
    assert wrn.fc.in_features == 64 and len(wrn.block1.layer) == 1
    # DenseNet k=4, depth 10: 2k = 8 stem channels, +2*4 per block -> 16, 24, 32 features at the head.
    assert build_model("densenet40_12", 10, depth=10, width=4).fc.in_features == 32
    # ResNeXt base width 4: D = 4 groups x floor(64*4/64) = 16 in stage 1; output widths stay 256/512/1024.
    rx = build_model("resnext29", 10, depth=11, width=4)
    assert rx.stage_1[0].conv_reduce.out_channels == 16 and rx.classifier.in_features == 1024 and len(rx.stage_2) == 1
    assert build_model("allconv", 10, width=16).classifier.in_features == 32  # second stage 2 x 16
    assert build_model("resnet50", 10, width=8).layer1[0].conv1.out_channels == 8  # 64 planes x 8/64
    assert build_model("resnet18", 10, width=8).linear.in_features == 64  # stages 8/16/32/64


def test_none_keys_keep_model_defaults():
    wrn = build_model("wrn40_2", 10, depth=None, width=None, droprate=None)
    assert len(wrn.block1.layer) == 6 and wrn.fc.in_features == 128 and wrn.block1.layer[0].droprate == 0.0
    assert build_model("allconv", 10).features[10].p == 0.5


def test_droprate_reaches_the_dropout_layers():
    wrn = build_model("wrn40_2", 10, depth=10, width=1, droprate=0.3)
    assert all(block.droprate == 0.3 for stage in (wrn.block1, wrn.block2, wrn.block3) for block in stage.layer)
    assert [m.p for m in build_model("allconv", 10, width=16, droprate=0.2).modules()
            if isinstance(m, nn.Dropout)] == [0.2, 0.2]
    dense = build_model("densenet40_12", 10, depth=10, width=4, droprate=0.2)
    x = torch.randn(2, 3, 32, 32)
    dense.train()
    assert not torch.equal(dense(x), dense(x))  # dropout active in training
    dense.eval()
    assert torch.equal(dense(x), dense(x))


@pytest.mark.parametrize("kwargs,pattern", [
    ({"name": "wrn"}, r"unknown model 'wrn'; valid names: wrn40_2, densenet40_12, resnext29, allconv, resnet50"),
    ({"name": "resnet50", "depth": 50}, r"model 'resnet50' does not take depth; its keys are num_classes, width"),
    ({"name": "resnext29", "droprate": 0.1}, r"'resnext29' does not take droprate; .*num_classes, depth, width"),
    ({"name": "wrn40_2", "depth": 41}, r"wrn40_2: depth must be 6n\+4 .*got 41"),
    ({"name": "densenet40_12", "depth": 41}, r"densenet40_12: depth must be 3n\+4 .*got 41"),
    ({"name": "resnext29", "depth": 30}, r"resnext29: depth must be 9n\+2 .*got 30"),
    ({"name": "wrn40_2", "num_classes": 0}, r"wrn40_2: num_classes must be a positive int; got 0"),
    ({"name": "allconv", "width": 0}, r"allconv: width .* must be a positive int; got 0"),
    ({"name": "wrn40_2", "droprate": 1.5}, r"wrn40_2: droprate must be a float in \[0, 1\); got 1.5"),
])
def test_build_model_errors_name_the_problem(kwargs, pattern):
    kwargs = {"num_classes": 10, **kwargs}
    with pytest.raises(ValueError, match=pattern):
        build_model(**kwargs)


# What each registry entry is, at its default sizes: the names the papers and torchvision use.
DISPLAY_NAMES = {
    "wrn40_2": "WRN-40-2",
    "densenet40_12": "DenseNet-40-12",  # DenseNet (L = 40, k = 12), non-BC as the official code builds it
    "resnext29": "ResNeXt-29 (4x32d)",  # the official resnext29(): cardinality 4, base width 32
    "allconv": "AllConvNet",
    "resnet50": "ResNet-50",
    "resnet18": "ResNet-18",
    "alexnet": "AlexNet",
}


@pytest.mark.parametrize("name", list(MODELS))
def test_every_model_has_a_display_name_at_its_default_sizes(name):
    assert display_name({"name": name}) == DISPLAY_NAMES[name]
    assert display_name({"name": name, "num_classes": 100, "depth": None, "width": None}) == DISPLAY_NAMES[name]


@pytest.mark.parametrize("model_args,expected", [
    ({"name": "wrn40_2", "depth": 10}, "WRN-10-2"),
    ({"name": "wrn40_2", "num_classes": 10, "depth": 10, "width": 1, "droprate": 0.3}, "WRN-10-1"),
    ({"name": "wrn40_2", "depth": 28, "width": 10}, "WRN-28-10"),
    ({"name": "densenet40_12", "depth": 10, "width": 4}, "DenseNet-10-4"),
    ({"name": "resnext29", "depth": 11, "width": 4}, "ResNeXt-11 (4x4d)"),
    ({"name": "allconv", "width": 16, "droprate": 0.2}, "AllConvNet (width 16)"),
    ({"name": "allconv", "droprate": 0.2}, "AllConvNet"),  # dropout does not change what the model is
    ({"name": "resnet50", "width": 8}, "ResNet-50 (width 8)"),
    ({"name": "resnet50", "width": 128}, "Wide ResNet-50-2"),  # torchvision's wide_resnet50_2
    ({"name": "resnet18", "width": 8}, "ResNet-18 (width 8)"),
])
def test_display_name_shows_size_overrides(model_args, expected):
    assert display_name(model_args) == expected


@pytest.mark.parametrize("model_args,pattern", [
    ({"name": "wrn"}, r"model_args name 'wrn' is not a model; valid names: wrn40_2, densenet40_12"),
    ({"num_classes": 10}, r"model_args name None is not a model"),
    ({"name": "alexnet", "width": 2}, r"model 'alexnet' does not take width; its size keys are none"),
    ({"name": "allconv", "depth": 9}, r"model 'allconv' does not take depth; its size keys are width"),
    ({"name": "wrn40_2", "depth": "40"}, r"model 'wrn40_2': depth must be a positive int; got '40'"),
    ("wrn40_2", r"model_args must be a mapping with a 'name' key; got str"),
])
def test_display_name_errors_name_the_problem(model_args, pattern):
    with pytest.raises(ValueError, match=pattern):
        display_name(model_args)


@pytest.mark.gpu
@pytest.mark.parametrize("name", list(MODELS))
def test_cuda_forward_matches_cpu_and_runs_under_bf16(name):
    model = _randomise_batchnorm(_tiny(name)).eval()
    x = _images(name, 2)
    with torch.no_grad():
        expected = model(x)
        model = model.cuda()
        tf32 = torch.backends.cudnn.allow_tf32
        torch.backends.cudnn.allow_tf32 = False  # compare full float32 arithmetic
        try:
            torch.testing.assert_close(model(x.cuda()).cpu(), expected, rtol=1e-4, atol=1e-4)
        finally:
            torch.backends.cudnn.allow_tf32 = tf32
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = model.to(memory_format=torch.channels_last)(x.cuda().contiguous(memory_format=torch.channels_last))
    assert logits.shape == (2, 10) and torch.isfinite(logits).all()
