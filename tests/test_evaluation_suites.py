"""evaluation/suites.py: every suite on tiny real-format data reproduces the numbers of the reference pipeline written
out by hand; generated suites equal the same suites on files made by the chunk-seeding contract; interrupted runs
resume without recomputing finished cells."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from PIL import Image

from evaluation import metrics as M
from evaluation import suites as S
from evaluation.inference import InferenceSettings, Predictor
from evaluation.report import perturbation_baseline
from evaluation.store import CellStore
from evaluation.suites import EvalOptions, resolve_suites, run_evaluation
from tests._evaluation_data import (
    direct_logits,
    marked_images,
    model_info,
    smooth_images,
    tiny_classifier,
    write_cifar_c,
    write_cifar_p,
    write_contract_cifar_c,
    write_contract_cifar_p,
    write_imagenet_c,
    write_imagenet_p,
)

MEAN, STD = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
CPU = InferenceSettings(device="cpu", batch_size=4, chunk_images=6, workers=0)


def _options(tmp_path, **kw) -> EvalOptions:
    return EvalOptions(**{"data_root": str(tmp_path), "out_dir": str(tmp_path / "out"), "inference": CPU,
                          "plots": False, **kw})


def test_resolve_suites_expands_all_and_checks_the_dataset():
    assert resolve_suites(["all"], "digits") == ["clean", "digits-c", "digits-p", "calibration"]
    assert resolve_suites(["clean", "cifar10-c", "clean"], "cifar10") == ["clean", "cifar10-c"]
    with pytest.raises(ValueError, match="suite 'cifar100-c' evaluates cifar100 models; the checkpoint's dataset"):
        resolve_suites(["cifar100-c"], "cifar10")
    with pytest.raises(ValueError, match="unknown suite 'cifar10c'"):
        resolve_suites(["cifar10c"], "cifar10")


def _cifar_c_setup(tmp_path, n=8):
    images, labels = marked_images(n, seed=1), np.arange(n) % 10
    write_cifar_c(tmp_path / "CIFAR-10-C", images, labels, corruptions=("fog", "snow"))
    return images, labels


def test_released_cifar_c_cells_equal_the_reference_pipeline(tmp_path):
    images, labels = _cifar_c_setup(tmp_path)
    model = tiny_classifier()
    options = _options(tmp_path, corruptions=("fog", "snow"), severities=(2, 5))
    results = run_evaluation(model, model_info("cifar10", 10, MEAN, STD), ["cifar10-c"], options)
    suite = results["suites"]["cifar10-c"]
    assert suite["source"] == {"kind": "released", "path": str(tmp_path / "CIFAR-10-C"), "format": "cifar-c-npy"}
    for cell in suite["cells"]:
        block = images.copy()
        block[:, 0] = 10 * cell["severity"] + ("fog", "snow").index(cell["corruption"])  # as written
        logits = direct_logits(model, block, MEAN, STD)
        assert cell["error"] == M.top1_error(logits, torch.from_numpy(labels)) and cell["n"] == 8
        assert cell["nll"] == pytest.approx(M.nll(logits, torch.from_numpy(labels)), rel=1e-5)
    errors = {c: {s: next(x["error"] for x in suite["cells"] if x["corruption"] == c and x["severity"] == s)
                  for s in (2, 5)} for c in ("fog", "snow")}
    assert suite["aggregates"]["corruption_error"] == pytest.approx(M.cifar_c_summary(errors)["corruption_error"])
    assert not suite["aggregates"]["complete"]
    on_disk = json.loads((tmp_path / "out" / "results.json").read_text())
    assert on_disk["suites"]["cifar10-c"]["cells"] == suite["cells"]


class _CountingModel(torch.nn.Module):
    """Counts forward passes; raises KeyboardInterrupt (a kill) on pass ``fail_at``."""

    def __init__(self, model, fail_at=None):
        super().__init__()
        self.model, self.fail_at, self.calls = model, fail_at, 0

    def forward(self, x):
        self.calls += 1
        if self.calls == self.fail_at:
            raise KeyboardInterrupt
        return self.model(x)


def test_interrupted_evaluation_resumes_without_recomputing_finished_cells(tmp_path):
    _cifar_c_setup(tmp_path)
    info = model_info("cifar10", 10, MEAN, STD)
    options = _options(tmp_path, corruptions=("fog", "snow"), severities=(1, 2))
    # 4 cells of 8 images; chunks of 6 cut into batches of 4: 4 + 2 | 2 -> 3 forward passes per cell
    killed = _CountingModel(tiny_classifier(), fail_at=7)  # dies on the 3rd cell's first pass, 2 cells saved
    with pytest.raises(KeyboardInterrupt):
        run_evaluation(killed, info, ["cifar10-c"], options)
    assert sorted(p.name for p in (tmp_path / "out" / "cells" / "cifar10-c").glob("*.json")) == ["fog-1.json",
                                                                                                 "fog-2.json"]
    resumed = _CountingModel(tiny_classifier())
    results = run_evaluation(resumed, info, ["cifar10-c"], options)
    assert resumed.calls == 6  # only snow-1 and snow-2, three passes each
    assert results["suites"]["cifar10-c"]["timing"]["cells_reused"] == 2
    fresh = run_evaluation(tiny_classifier(), info, ["cifar10-c"], dataclasses.replace(options, out_dir=None))
    strip = lambda cells: [{k: v for k, v in c.items() if k != "seconds"} for c in cells]  # noqa: E731
    assert strip(results["suites"]["cifar10-c"]["cells"]) == strip(fresh["suites"]["cifar10-c"]["cells"])
    again = _CountingModel(tiny_classifier())
    run_evaluation(again, info, ["cifar10-c"], dataclasses.replace(options, recompute=True))
    assert again.calls == 12  # --recompute: every cell


def test_missing_released_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"suite cifar10-c: released data folder .*CIFAR-10-C does not exist"):
        run_evaluation(tiny_classifier(), model_info("cifar10", 10), ["cifar10-c"], _options(tmp_path))


def _imagenet_tree(tmp_path):
    images, labels = smooth_images(3, size=224, seed=2), np.array([0, 1, 2])
    write_imagenet_c(tmp_path / "ImageNet-C", images, labels, ("fog", "snow"), severities=(1, 3))
    for i, (image, label) in enumerate(zip(smooth_images(3, size=240, seed=4), labels, strict=True)):
        folder = tmp_path / "imagenet" / "val" / f"n{label:08d}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image[:, :230]).save(folder / f"v{i}.JPEG", quality=95)
    return labels


def _decoded(paths):
    return np.stack([np.asarray(Image.open(p).convert("RGB")) for p in paths])


def test_imagenet_c_reads_jpegs_as_is_and_normalises_by_alexnet(tmp_path):
    labels = _imagenet_tree(tmp_path)
    model = tiny_classifier(3)
    info = model_info("imagenet", 3, MEAN, STD, image_size=224)
    options = _options(tmp_path, corruptions=("fog", "snow"), severities=(1, 3))
    suite = run_evaluation(model, info, ["imagenet-c"], options)["suites"]["imagenet-c"]
    assert "no Resize(256)" in suite["preprocessing"]
    for cell in suite["cells"]:
        folder = tmp_path / "ImageNet-C" / cell["corruption"] / str(cell["severity"])
        logits = direct_logits(model, _decoded(sorted(folder.rglob("*.JPEG"))), MEAN, STD)
        assert cell["error"] == M.top1_error(logits, torch.from_numpy(labels))
        # per-sample confidences match too: decoded as is (no Resize(256)), in sorted-wnid order
        saved = np.load(tmp_path / "out" / "cells" / "imagenet-c" / f"{cell['corruption']}-{cell['severity']}.npz")
        np.testing.assert_allclose(saved["confidence"], logits.softmax(-1).max(-1).values.numpy(), rtol=1e-5)
    agg = suite["aggregates"]
    errors = {c: {s: x["error"] for x in suite["cells"] if x["corruption"] == c for s in [x["severity"]]}
              for c in ("fog", "snow")}
    assert agg["mce"] == pytest.approx(M.mce(errors, corruptions=("fog", "snow")))
    assert agg["alexnet_clean_error"] == 0.43478 and not agg["complete"]
    assert agg["clean_error"] is not None and "relative_mce" in agg  # clean val found under imagenet/val
    resized = run_evaluation(model, info, ["imagenet-c"], _options(tmp_path, corruptions=("fog",), severities=(1,),
                                                                   imagenet_c_resize=True))
    assert "NON-STANDARD PROTOCOL" in resized["suites"]["imagenet-c"]["preprocessing"]


def test_cifar_p_flip_probability_and_baseline_normalisation(tmp_path):
    images = marked_images(5, seed=3)
    write_cifar_p(tmp_path / "CIFAR-10-P", images, {"translate": 16, "rotate": 31})
    model, info = tiny_classifier(), model_info("cifar10", 10, MEAN, STD)
    results = run_evaluation(model, info, ["cifar10-p"], _options(tmp_path))
    suite = results["suites"]["cifar10-p"]
    assert [c["perturbation"] for c in suite["cells"]] == ["translate", "rotate"]
    for cell, frames in zip(suite["cells"], (16, 31), strict=True):
        videos = np.stack([np.roll(images, t, axis=2) for t in range(frames)], axis=1)  # (5, T, 32, 32, 3)
        logits = direct_logits(model, videos.reshape(-1, 32, 32, 3), MEAN, STD).view(5, frames, 10)
        assert cell["flip_probability"] == pytest.approx(M.flip_probability(logits.argmax(-1), False).mean().item())
        assert cell["top5_distance"] == pytest.approx(M.top5_distance(logits, False).mean().item(), rel=1e-6)
        assert cell["videos"] == 5 and cell["frames"] == frames
    assert suite["aggregates"]["cifar_p_mfp_script"] is None  # 2 of the 10 listed perturbations only
    other = run_evaluation(tiny_classifier(seed=1), info, ["cifar10-p"], _options(tmp_path, out_dir=None))
    baseline = perturbation_baseline(other)
    normalised = run_evaluation(model, info, ["cifar10-p"], _options(tmp_path, baseline=baseline))
    agg = normalised["suites"]["cifar10-p"]["aggregates"]
    fp = {c["perturbation"]: c["flip_probability"] for c in suite["cells"]}
    base = baseline["suites"]["cifar10-p"]["flip_probability"]
    assert agg["mfr"] == pytest.approx((fp["translate"] / base["translate"] + fp["rotate"] / base["rotate"]) / 2)
    assert normalised["suites"]["cifar10-p"]["baseline"]["name"] == "tiny"


def test_imagenet_p_decodes_mp4_and_compares_consecutive_frames(tmp_path):
    images = smooth_images(2, size=224, seed=5)
    write_imagenet_p(tmp_path / "ImageNet-P", images, np.array([0, 1]), {"scale": 31})
    model, info = tiny_classifier(6), model_info("imagenet", 6, MEAN, STD, image_size=224)
    suite = run_evaluation(model, info, ["imagenet-p"], _options(tmp_path))["suites"]["imagenet-p"]
    (cell,) = suite["cells"]
    from runtime.video import decode_video

    paths = sorted((tmp_path / "ImageNet-P" / "scale").rglob("*.mp4"))
    logits = torch.stack([direct_logits(model, decode_video(p), MEAN, STD) for p in paths])  # (2, 31, 6)
    assert cell["frames"] == 31 and cell["videos"] == 2
    assert cell["flip_probability"] == pytest.approx(M.flip_probability(logits.argmax(-1), False).mean().item())
    assert cell["zipf_distance"] == pytest.approx(M.zipf_distance(logits, False).mean().item(), rel=1e-6)


def _strip(cells):
    return [{k: v for k, v in c.items() if k != "seconds"} for c in cells]


def _on_folder(suite: str, folder: str, runner, model, info, options):
    """The same suite run on a folder of files instead of generating its data."""
    spec = dataclasses.replace(S.SUITES[suite], folder=folder)
    ctx = S._Context(Predictor(model, info.mean, info.std, CPU), info, options, CellStore(None))
    return runner(ctx, spec)


def test_generated_digits_c_equals_the_suite_on_contract_files(tmp_path):
    from loaders.digits import load_digits

    images, labels = load_digits(train=False)
    write_contract_cifar_c(tmp_path / "CIFAR-10-C", images[:60], labels[:60], ("gaussian_noise",), seed=5)
    model, info = tiny_classifier(), model_info("digits", 10)
    kw = {"corruptions": ("gaussian_noise",), "severities": (2, 4), "limit": 60, "out_dir": None}
    generated = run_evaluation(model, info, ["digits-c"], _options(tmp_path, generate=True, seed=5, **kw))
    released = _on_folder("digits-c", "CIFAR-10-C", S.run_corruption, model, info, _options(tmp_path, **kw))
    assert _strip(released["cells"]) == _strip(generated["suites"]["digits-c"]["cells"])
    assert generated["suites"]["digits-c"]["source"]["kind"] == "generated"
    assert generated["suites"]["digits-c"]["source"]["seed"] == 5


def test_all_skips_suites_without_data_and_says_why(tmp_path):
    from loaders.synthetic import write_cifar_pickles

    write_cifar_pickles(tmp_path, "cifar10", num_train=10, num_test=120, seed=0)
    _cifar_c_setup(tmp_path)  # CIFAR-10-C present, CIFAR-10-P absent
    options = _options(tmp_path, corruptions=("fog",), severities=(1,), out_dir=None)
    results = run_evaluation(tiny_classifier(), model_info("cifar10", 10), ["all"], options)
    assert sorted(results["suites"]) == ["calibration", "cifar10-c", "clean"]
    assert "CIFAR-10-P does not exist" in results["skipped"]["cifar10-p"]
    calibration = results["suites"]["calibration"]["aggregates"]
    assert calibration["n"] == 120 and calibration["rms_calib_error_hendrycks"] == 0.0  # one 100+20 bin: skipped
    digits = run_evaluation(tiny_classifier(), model_info("digits", 10), ["all"], dataclasses.replace(
        options, corruptions=("gaussian_noise",), perturbations=("translate",), limit=100))
    assert sorted(digits["suites"]) == ["calibration", "clean", "digits-c", "digits-p"]  # digits: always generated


def test_generated_digits_p_equals_the_suite_on_contract_files(tmp_path):
    from loaders.digits import load_digits

    images, _ = load_digits(train=False)
    write_contract_cifar_p(tmp_path / "CIFAR-10-P", images[:12], ("translate", "gaussian_noise_2"), seed=5)
    model, info = tiny_classifier(), model_info("digits", 10)
    # difficulty 2: translate compares frames 2 apart; gaussian_noise reads its stronger set gaussian_noise_2
    kw = {"perturbations": ("translate", "gaussian_noise"), "difficulty": 2, "limit": 12, "out_dir": None}
    generated = run_evaluation(model, info, ["digits-p"], _options(tmp_path, generate=True, seed=5, **kw))
    released = _on_folder("digits-p", "CIFAR-10-P", S.run_perturbation, model, info, _options(tmp_path, **kw))
    assert _strip(released["cells"]) == _strip(generated["suites"]["digits-p"]["cells"])
    assert [c["file"] for c in released["cells"]] == ["translate", "gaussian_noise_2"]
    assert all(c["videos"] == 12 for c in released["cells"])
    assert generated["suites"]["digits-p"]["source"]["kind"] == "generated"


@pytest.mark.gpu
def test_cuda_evaluation_is_float32_by_default_and_bf16_on_request(tmp_path):
    _cifar_c_setup(tmp_path, n=64)
    info = model_info("cifar10", 10, MEAN, STD)
    kw = {"corruptions": ("fog",), "severities": (1, 5), "out_dir": None}
    cuda = InferenceSettings(device="cuda", batch_size=16, chunk_images=40, workers=0)
    cpu = run_evaluation(tiny_classifier(), info, ["cifar10-c"], _options(tmp_path, **kw))
    fp32 = run_evaluation(tiny_classifier(), info, ["cifar10-c"], _options(tmp_path, inference=cuda, **kw))
    bf16 = run_evaluation(tiny_classifier(), info, ["cifar10-c"], _options(
        tmp_path, inference=dataclasses.replace(cuda, amp="bf16"), **kw))
    assert fp32["config"]["precision"]["mode"] == "float32" and fp32["config"]["precision"]["tf32"]
    assert fp32["config"]["autocast_dtype"] is None and fp32["environment"]["gpu"]
    assert bf16["config"]["precision"]["mode"] == "bf16-autocast" and bf16["config"]["autocast_dtype"] == "bfloat16"
    for a, b, c in zip(cpu["suites"]["cifar10-c"]["cells"], fp32["suites"]["cifar10-c"]["cells"],
                       bf16["suites"]["cifar10-c"]["cells"], strict=True):
        assert abs(a["error"] - b["error"]) <= 1 / 64 and a["nll"] == pytest.approx(b["nll"], rel=5e-3)  # TF32
        assert abs(a["error"] - c["error"]) <= 3 / 64  # bf16 may flip a few near-tied predictions
        assert a["nll"] == pytest.approx(c["nll"], rel=0.05)


def test_a_cell_is_reused_only_for_the_same_precision(tmp_path):
    _cifar_c_setup(tmp_path)
    info = model_info("cifar10", 10, MEAN, STD)
    options = _options(tmp_path, corruptions=("fog",), severities=(1,))
    bf16 = run_evaluation(tiny_classifier(), info, ["cifar10-c"], _options(
        tmp_path, corruptions=("fog",), severities=(1,), inference=dataclasses.replace(CPU, amp="bf16")))
    assert bf16["config"]["precision"]["mode"] == "bf16-autocast"
    fp32 = run_evaluation(tiny_classifier(), info, ["cifar10-c"], options)
    assert fp32["suites"]["cifar10-c"]["timing"]["cells_computed"] == 1  # the bf16 cell is not reused
    assert fp32["config"]["precision"] == {"mode": "float32", "autocast_dtype": None, "tf32": False,
                                           "summary": "float32"}
    again = run_evaluation(tiny_classifier(), info, ["cifar10-c"], options)
    assert again["suites"]["cifar10-c"]["timing"]["cells_reused"] == 1
    saved = json.loads((tmp_path / "out" / "cells" / "cifar10-c" / "fog-1.json").read_text())
    assert saved["fingerprint"]["precision"] == "float32" and saved["fingerprint"]["tf32"] is False


def test_a_file_replaced_at_the_same_path_is_recomputed(tmp_path):
    images, labels = _cifar_c_setup(tmp_path)
    info = model_info("cifar10", 10, MEAN, STD)
    options = _options(tmp_path, corruptions=("fog", "snow"), severities=(1,))
    first = run_evaluation(tiny_classifier(), info, ["cifar10-c"], options)
    fog = tmp_path / "CIFAR-10-C" / "fog.npy"
    np.save(fog, 255 - np.load(fog))
    second = run_evaluation(tiny_classifier(), info, ["cifar10-c"], options)
    timing = second["suites"]["cifar10-c"]["timing"]
    assert (timing["cells_computed"], timing["cells_reused"]) == (1, 1)
    fresh = run_evaluation(tiny_classifier(), info, ["cifar10-c"], dataclasses.replace(options, out_dir=None))
    assert _strip(second["suites"]["cifar10-c"]["cells"]) == _strip(fresh["suites"]["cifar10-c"]["cells"])
    assert _strip(first["suites"]["cifar10-c"]["cells"])[0] != _strip(second["suites"]["cifar10-c"]["cells"])[0]
    saved = json.loads((tmp_path / "out" / "cells" / "cifar10-c" / "fog-1.json").read_text())["fingerprint"]
    assert saved["data"]["images"]["bytes"] == fog.stat().st_size and len(saved["data"]["labels"]["sha256"]) == 64
    np.save(tmp_path / "CIFAR-10-C" / "labels.npy", np.tile((labels + 1) % 10, 5).astype(np.uint8))
    third = run_evaluation(tiny_classifier(), info, ["cifar10-c"], options)
    assert third["suites"]["cifar10-c"]["timing"]["cells_computed"] == 2  # new labels: every cell


def test_damaged_cells_are_recomputed_and_noted_in_the_results(tmp_path):
    _cifar_c_setup(tmp_path)
    info = model_info("cifar10", 10, MEAN, STD)
    options = _options(tmp_path, corruptions=("fog",), severities=(1, 2))
    run_evaluation(tiny_classifier(), info, ["cifar10-c"], options)
    (tmp_path / "out" / "cells" / "cifar10-c" / "fog-2.npz").write_bytes(b"PK\x03\x04 cut")
    results = run_evaluation(tiny_classifier(), info, ["cifar10-c"], options)
    suite = results["suites"]["cifar10-c"]
    assert (suite["timing"]["cells_computed"], suite["timing"]["cells_reused"]) == (1, 1)
    assert any("fog-2.npz is damaged" in note for note in suite["notes"])


def _plan(tmp_path, suites, dataset="cifar10", num_classes=10, **kw):
    return S.plan_evaluation(suites, _options(tmp_path, **kw), dataset, num_classes, checkpoint_sha256="a" * 64)


def test_plan_checks_everything_before_any_work(tmp_path):
    _cifar_c_setup(tmp_path)
    plan = _plan(tmp_path, ["cifar10-c"], corruptions=("fog",))
    assert plan.suites == ("cifar10-c",) and not (tmp_path / "out").exists()  # nothing written by checking
    bad = [
        (["cifar10c"], {}, "unknown suite 'cifar10c' \\(did you mean 'cifar10-c'\\?\\)"),
        (["cifar10-c"], {"corruptions": ("fogg",)}, "corruptions: unknown value 'fogg' \\(did you mean 'fog'\\?\\)"),
        (["cifar10-c"], {"corruptions": ("../fog",)}, "corruptions: unknown value '../fog'"),
        (["cifar10-c"], {"corruptions": "fog"}, "expected a non-empty list of names"),
        (["cifar10-p"], {"perturbations": ("translat",)}, "did you mean 'translate'"),
        (["cifar10-p"], {"perturbations": ("gaussian_noise_2",), "difficulty": 3}, "already names difficulty 2"),
        (["cifar10-c"], {"severities": (0, 6)}, "severities=\\(0, 6\\): expected severities in 1..5"),
        (["cifar10-c"], {"limit": 0}, "limit=0: expected an integer >= 1"),
        (["cifar10-c"], {"seed": -1}, "seed=-1: expected an integer >= 0"),
        (["cifar10-c"], {"difficulty": 4}, "difficulty=4: expected one of 1, 2, 3"),
        (["cifar10-c"], {"inference": dataclasses.replace(CPU, batch_size=0)}, "batch_size=0: expected an integer"),
        (["cifar10-c"], {"inference": dataclasses.replace(CPU, workers=-1)}, "workers=-1: expected an integer >= 0"),
        (["cifar10-c"], {"alexnet_clean_error": 43.5}, "expected a fraction in \\(0, 1\\)"),
        (["calibration"], {"limit": 50}, "calibration needs at least 100 test images"),
        ([], {}, "no suite given"),
    ]
    for suites, kw, message in bad:
        with pytest.raises(ValueError, match=message):
            _plan(tmp_path, suites, **{"corruptions": ("fog",), **kw})
    with pytest.raises(FileNotFoundError, match="cifar-10-batches-py/test_batch does not exist"):
        _plan(tmp_path, ["clean"])
    with pytest.raises(FileNotFoundError, match="CIFAR-10-P does not exist"):
        _plan(tmp_path, ["cifar10-p"])
    with pytest.raises(FileNotFoundError, match="CIFAR-C contrast file .*contrast.npy does not exist"):
        _plan(tmp_path, ["cifar10-c"], corruptions=("contrast",))
    (tmp_path / "CIFAR-10-C" / "snow.npy").write_bytes(b"\x93NUMPY cut")
    with pytest.raises(ValueError, match="snow.npy is not a complete .npy file"):
        _plan(tmp_path, ["cifar10-c"], corruptions=("fog", "snow"))
    assert not (tmp_path / "out").exists()


def test_the_model_class_count_is_checked_for_every_suite(tmp_path):
    _cifar_c_setup(tmp_path)
    with pytest.raises(ValueError, match="the data has 10 classes, but the model has 4 outputs"):
        _plan(tmp_path, ["cifar10-c"], num_classes=4, corruptions=("fog",))
    with pytest.raises(ValueError, match="the data has 10 classes, but the model has 3 outputs"):
        _plan(tmp_path, ["digits-c"], dataset="digits", num_classes=3, generate=True)
    _imagenet_tree(tmp_path)  # 3 classes: val and ImageNet-C
    for suite in (["clean"], ["calibration"]):
        with pytest.raises(ValueError, match="val: the data has 3 class folders, but the model has 4 outputs"):
            _plan(tmp_path, suite, dataset="imagenet", num_classes=4)
    with pytest.raises(ValueError, match="fog/1: the data has 3 class folders, but the model has 5 outputs"):
        _plan(tmp_path, ["imagenet-c"], dataset="imagenet", num_classes=5, corruptions=("fog",), severities=(1,))
    assert _plan(tmp_path, ["clean", "imagenet-c"], dataset="imagenet", num_classes=3, corruptions=("fog",),
                 severities=(1,)).suites == ("clean", "imagenet-c")
    # the run checks it too (evaluate() and train.py's hook), before anything is written
    with pytest.raises(ValueError, match="but the model has 4 outputs"):
        run_evaluation(tiny_classifier(4), model_info("imagenet", 4, image_size=224), ["clean"], _options(tmp_path))
    assert not (tmp_path / "out").exists()
