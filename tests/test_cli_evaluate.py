"""evaluate.py end to end: a quickstart-style checkpoint on a generated digits-C set, the official checkpoint formats,
compare mode, and clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import evaluate
import evaluation
from models import build_model
from runtime.files import sha256_file
from tests._evaluation_data import direct_logits, write_cifar_c, write_tiny_checkpoint


def _run(argv: list[str]) -> int:
    return evaluate.main(evaluate.get_args_parser().parse_args(argv))


def test_quickstart_checkpoint_on_generated_digits_c(tmp_path, capsys):
    ckpt = write_tiny_checkpoint(tmp_path / "last.pt")
    out = tmp_path / "eval"
    code = _run(["--ckpt", str(ckpt), "--suite", "all", "--generate", "--seed", "3", "--corruptions",
                 "gaussian_noise,defocus_blur", "--severities", "1,3", "--perturbations", "translate", "--limit",
                 "100", "--batch-size", "100",
                 "--out", str(out), "--data-root", str(tmp_path)])
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert results["schema_version"] == 1 and results["checkpoint"]["sha256"] == sha256_file(ckpt)
    assert results["checkpoint"]["source"] == "ours" and results["checkpoint"]["dataset"] == "digits"
    digits_c = results["suites"]["digits-c"]
    assert digits_c["source"]["kind"] == "generated" and digits_c["source"]["seed"] == 3
    assert [(c["corruption"], c["severity"], c["n"]) for c in digits_c["cells"]] == [
        ("gaussian_noise", 1, 100), ("gaussian_noise", 3, 100), ("defocus_blur", 1, 100), ("defocus_blur", 3, 100)]
    assert set(results["suites"]) == {"clean", "digits-c", "digits-p", "calibration"}
    (translate,) = results["suites"]["digits-p"]["cells"]
    assert translate["perturbation"] == "translate" and translate["frames"] == 16 and translate["videos"] == 100
    assert "rms_calib_error_hendrycks" in results["suites"]["calibration"]["aggregates"]
    markdown = (out / "results.md").read_text()
    assert "GENERATED in memory" in markdown and "PARTIAL" in markdown
    assert {p.name for p in out.glob("*.png")} == {"digits-c_errors.png", "digits-c_severity.png", "reliability.png"}
    assert "clean  top-1 error (%)" in capsys.readouterr().out


def _official_cifar(path, model):
    state = {f"module.{k}": v for k, v in model.state_dict().items()}  # saved from nn.DataParallel
    torch.save({"epoch": 100, "dataset": "cifar10", "model": "wrn", "state_dict": state, "best_acc": 0.95,
                "optimizer": {}}, path)


def test_official_cifar_checkpoint_evaluates_on_released_cifar_c(tmp_path):
    torch.manual_seed(0)
    model = build_model("wrn40_2", 10, depth=10, width=1).eval()
    _official_cifar(tmp_path / "checkpoint.pth.tar", model)
    images = np.random.default_rng(0).integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    labels = np.arange(6) % 10
    write_cifar_c(tmp_path / "CIFAR-10-C", images, labels, corruptions=("contrast",))
    out = tmp_path / "out"
    code = _run(["--ckpt", str(tmp_path / "checkpoint.pth.tar"), "--suite", "cifar10-c", "--corruptions", "contrast",
                 "--severities", "4", "--data-root", str(tmp_path), "--out", str(out), "--no-plots"])
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert results["checkpoint"]["source"] == "augmix-official-cifar" and results["checkpoint"]["epoch"] == 100
    block = images.copy()
    block[:, 0] = 40  # severity 4 of the first (only) corruption
    expected = direct_logits(model, block, (0.5,) * 3, (0.5,) * 3)  # the official 2x - 1 normalisation
    (cell,) = results["suites"]["cifar10-c"]["cells"]
    assert cell["error"] == pytest.approx((expected.argmax(1).numpy() != labels).mean())


@pytest.mark.parametrize("fmt", ["augmix-official-imagenet", "torchvision"])
def test_imagenet_checkpoint_formats_map_onto_our_resnet50(tmp_path, fmt):
    torch.manual_seed(1)
    model = build_model("resnet50", 5, width=8).eval()  # a narrow ResNet-50 keeps the test fast
    path = tmp_path / "weights.pth"
    if fmt == "torchvision":
        torch.save(model.state_dict(), path)
    else:  # the released AugMix ImageNet file: pytorch/examples layout, DataParallel prefix
        torch.save({"epoch": 180, "arch": "resnet50", "best_acc1": 77.5, "optimizer": {},
                    "state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}, path)
    loaded, info = evaluate.load_model(path)
    assert info.source == fmt and info.dataset == "imagenet" and info.num_classes == 5
    assert info.mean == (0.485, 0.456, 0.406) and info.std == (0.229, 0.224, 0.225)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))


def test_compare_mode_prints_runs_side_by_side(tmp_path, capsys):
    ckpt = write_tiny_checkpoint(tmp_path / "a.pt")
    other = write_tiny_checkpoint(tmp_path / "b.pt", seed=1)
    for name, path in (("a", ckpt), ("b", other)):
        assert _run(["--ckpt", str(path), "--suite", "clean", "--out", str(tmp_path / name), "--no-plots",
                     "--limit", "100"]) == 0
    capsys.readouterr()
    assert _run(["--compare", str(tmp_path / "a"), str(tmp_path / "b" / "results.json"), "--labels",
                 "standard,augmix", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert (tmp_path / "compare.md").read_text() == printed
    header, _, first = printed.splitlines()[:3]
    assert header == "| metric | standard | augmix | difference |"
    errors = [json.loads((tmp_path / n / "results.json").read_text())["suites"]["clean"]["aggregates"]["error"]
              for n in "ab"]
    assert first.startswith("| clean: top-1 error (%) | ") and f"{100 * (errors[1] - errors[0]):.2f} |" in first


def test_bad_inputs_fail_with_a_message(tmp_path, capsys):
    ckpt = write_tiny_checkpoint(tmp_path / "last.pt")
    assert _run(["--ckpt", str(ckpt), "--suite", "cifar10-c", "--out", str(tmp_path / "o")]) == 2
    assert "suite 'cifar10-c' evaluates cifar10 models; the checkpoint's dataset is 'digits'" in capsys.readouterr().err
    assert _run(["--ckpt", str(ckpt), "--suite", "digits-c", "--corruptions", "fogg", "--out", str(tmp_path)]) == 2
    assert "--corruptions: unknown value(s) fogg" in capsys.readouterr().err
    assert _run(["--ckpt", str(tmp_path / "missing.pt")]) == 2
    assert "missing.pt" in capsys.readouterr().err


def test_alexnet_baseline_supplies_the_clean_error_of_relative_mce(tmp_path):
    from PIL import Image

    from tests._evaluation_data import write_imagenet_c

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (4, 224, 224, 3), dtype=np.uint8)
    labels = np.array([0, 1, 0, 1])
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):  # clean val: Resize(256) is a no-op here
        folder = tmp_path / "imagenet" / "val" / f"n{label:08d}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.pad(image, ((16, 16), (16, 16), (0, 0)))).save(folder / f"v{i}.png")
    write_imagenet_c(tmp_path / "ImageNet-C", images, labels, ("fog",), (1,))
    torch.manual_seed(0)
    # torchvision's layouts; 2 classes because the ImageNet-C reader checks class folders against the outputs
    torch.save(build_model("alexnet", 2).state_dict(), tmp_path / "alexnet.pth")
    torch.save(build_model("resnet50", 2, width=8).state_dict(), tmp_path / "resnet50.pth")
    common = ["--data-root", str(tmp_path), "--no-plots", "--workers", "0", "--batch-size", "4"]
    assert _run(["--ckpt", str(tmp_path / "alexnet.pth"), "--arch", "alexnet", "--suite", "clean",
                 "--out", str(tmp_path / "alexnet"), *common]) == 0
    alexnet_clean = json.loads((tmp_path / "alexnet" / "results.json").read_text())
    assert alexnet_clean["checkpoint"]["name"] == "alexnet"
    code = _run(["--ckpt", str(tmp_path / "resnet50.pth"), "--suite", "clean", "--suite", "imagenet-c",
                 "--corruptions", "fog", "--severities", "1", "--baseline-ckpt", str(tmp_path / "alexnet.pth"),
                 "--baseline-arch", "alexnet", "--out", str(tmp_path / "out"), *common])
    assert code == 0
    aggregates = json.loads((tmp_path / "out" / "results.json").read_text())["suites"]["imagenet-c"]["aggregates"]
    assert aggregates["alexnet_clean_error"] == alexnet_clean["suites"]["clean"]["aggregates"]["error"]


def test_the_cli_runs_through_evaluation_evaluate(tmp_path, monkeypatch):
    ckpt = write_tiny_checkpoint(tmp_path / "last.pt")
    calls = []

    def spy(model, suites, **kwargs):
        calls.append((suites, kwargs))
        return evaluation.evaluate(model, suites, **kwargs)

    monkeypatch.setattr(evaluate, "evaluate", spy)
    assert _run(["--ckpt", str(ckpt), "--suite", "clean", "--limit", "100", "--no-plots", "--device", "auto",
                 "--out", str(tmp_path / "o")]) == 0
    ((suites, kwargs),) = calls
    assert suites == ["clean"] and kwargs["model_info"].source == "ours" and kwargs["checkpoint_path"] == str(ckpt)
    assert kwargs["options"].inference.device == ("cuda" if torch.cuda.is_available() else "cpu")


def test_unknown_device_is_a_clear_error(tmp_path, capsys):
    ckpt = write_tiny_checkpoint(tmp_path / "last.pt")
    assert _run(["--ckpt", str(ckpt), "--device", "tpu", "--out", str(tmp_path / "o")]) == 2
    assert "--device='tpu'" in capsys.readouterr().err


def _generate(argv: list[str]) -> int:
    import generate

    return generate.main(argv)


def test_a_generated_set_given_as_a_folder_is_labelled_generated_not_released(tmp_path):
    ckpt = write_tiny_checkpoint(tmp_path / "tiny.pt")
    folder = tmp_path / "digits-c-seed7"
    assert _generate(["c", "--source", "digits", "--limit", "100", "--corruptions", "fog", "--severities", "1,3",
                      "--seed", "7", "--device", "cpu", "--out", str(folder)]) == 0
    common = ["--ckpt", str(ckpt), "--suite", "digits-c", "--corruptions", "fog", "--severities", "1,3", "--limit",
              "100", "--no-plots"]
    assert _run([*common, "--root", f"digits-c={folder}", "--out", str(tmp_path / "files")]) == 0
    assert _run([*common, "--generate", "--seed", "7", "--out", str(tmp_path / "memory")]) == 0
    files = json.loads((tmp_path / "files" / "results.json").read_text())["suites"]["digits-c"]
    memory = json.loads((tmp_path / "memory" / "results.json").read_text())["suites"]["digits-c"]
    source = files["source"]
    assert source["kind"] == "generated-files" and source["path"] == str(folder)
    assert (source["seed"], source["preset"], source["severities"]) == (7, "cifar", [1, 3])
    assert source["version"] == json.loads((folder / "manifest.json").read_text())["environment"]["augmix-robustness"]
    assert "generated-files" in (tmp_path / "files" / "results.md").read_text()
    strip = lambda cells: [{k: v for k, v in c.items() if k != "seconds"} for c in cells]  # noqa: E731
    assert strip(files["cells"]) == strip(memory["cells"])  # the files are the in-memory set, by the seeding contract
    saved = json.loads((tmp_path / "files" / "cells" / "digits-c" / "fog-1.json").read_text())["fingerprint"]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert saved["data"]["images"]["manifest_sha256"] == manifest["files"]["fog.npy"]["sha256"]


def test_default_output_folders_are_unique_per_checkpoint(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    runs = [write_tiny_checkpoint(tmp_path / name / "last.pt", seed=k) for k, name in enumerate(("run-a", "run-b"))]
    best = write_tiny_checkpoint(tmp_path / "run-a" / "best.pt", seed=2)
    other = write_tiny_checkpoint(tmp_path / "downloads" / "last.pt", seed=3)
    other.rename(tmp_path / "downloads" / "model.pt")
    for ckpt in (*runs, best, tmp_path / "downloads" / "model.pt"):
        assert _run(["--ckpt", str(ckpt), "--limit", "100", "--no-plots"]) == 0
    sha = sha256_file(tmp_path / "downloads" / "model.pt")
    expected = [tmp_path / "run-a" / "eval", tmp_path / "run-b" / "eval", tmp_path / "run-a" / "eval-best",
                tmp_path / "results" / f"model-{sha[:8]}"]
    owners = [json.loads((folder / "results.json").read_text())["checkpoint"]["sha256"] for folder in expected]
    assert owners == [sha256_file(p) for p in (*runs, best, tmp_path / "downloads" / "model.pt")]
    assert json.loads((expected[0] / "evaluated-checkpoint.json").read_text())["sha256"] == owners[0]
    assert not (tmp_path / "results" / "last").exists()


def test_another_checkpoint_is_refused_in_an_output_folder_unless_overwrite(tmp_path, capsys):
    a, b = write_tiny_checkpoint(tmp_path / "a.pt"), write_tiny_checkpoint(tmp_path / "b.pt", seed=1)
    out = tmp_path / "out"
    common = ["--limit", "100", "--no-plots", "--out", str(out)]
    assert _run(["--ckpt", str(a), *common]) == 0
    before = (out / "results.json").read_bytes()
    capsys.readouterr()
    assert _run(["--ckpt", str(b), *common]) == 2
    err = capsys.readouterr().err
    assert "holds the results of another checkpoint" in err and "--overwrite" in err and "new --out" in err
    assert (out / "results.json").read_bytes() == before
    assert _run(["--ckpt", str(b), *common, "--overwrite"]) == 0
    assert json.loads((out / "results.json").read_text())["checkpoint"]["sha256"] == sha256_file(b)
    assert not (out / ".augmix.lock").exists()  # the lock is released


def test_precision_is_float32_by_default_and_recorded(tmp_path, capsys):
    ckpt = write_tiny_checkpoint(tmp_path / "a.pt")
    assert _run(["--ckpt", str(ckpt), "--limit", "100", "--no-plots", "--out", str(tmp_path / "o")]) == 0
    config = json.loads((tmp_path / "o" / "results.json").read_text())["config"]
    assert config["amp"] == "off" and config["precision"]["mode"] == "float32" and config["autocast_dtype"] is None
    assert _run(["--ckpt", str(ckpt), "--limit", "100", "--no-plots", "--out", str(tmp_path / "b"), "--amp",
                 "bf16"]) == 0
    config = json.loads((tmp_path / "b" / "results.json").read_text())["config"]
    assert config["precision"]["mode"] == "bf16-autocast" and config["autocast_dtype"] == "bfloat16"
    assert "precision bf16 autocast" in capsys.readouterr().out
    help_text = evaluate.get_args_parser().format_help()
    assert "off (default): float32" in " ".join(help_text.split()) and "TF32" in help_text
