"""Bad-input rows for evaluate.py (see tests/badinput.py): precision, output folders, stale and damaged cells,
generated sets given as files, class counts, the checks made before any work, and ordinary mistakes with data files,
devices and checkpoints. Rows that succeed (exit 0) pin behaviours a user relies on: resuming, recomputing changed
data, replacing another checkpoint's results only when asked."""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path

import numpy as np
import torch

from tests._evaluation_data import marked_images, smooth_images, write_cifar_c, write_imagenet_c, write_tiny_checkpoint
from tests.badinput import EXIT_ENVIRONMENT, EXIT_USAGE, Row, Workspace, copy_shared, run_cli

FAST = ["--no-plots", "--batch-size", "8", "--workers", "0"]


def _ckpt(dataset: str, num_classes: int, seed: int = 0):
    return lambda folder: write_tiny_checkpoint(folder / "tiny.pt", dataset=dataset, num_classes=num_classes, seed=seed)


def _cifar10_c(folder: Path) -> Path:
    images, labels = marked_images(8, seed=1), np.arange(8) % 10
    return write_cifar_c(folder / "CIFAR-10-C", images, labels, corruptions=("fog", "snow"))


def _imagenet_c(folder: Path) -> Path:
    images, labels = smooth_images(3, size=224, seed=2), np.array([0, 1, 2])
    return write_imagenet_c(folder / "ImageNet-C", images, labels, ("fog",), severities=(1,))


def _not_a_checkpoint(folder: Path) -> Path:
    path = folder / "notes.pt"
    path.write_bytes(b"these are my notes, not weights\n" * 8)
    return path


def _pickled_code(folder: Path) -> Path:
    import argparse

    path = folder / "code.pt"
    torch.save({"model": {}, "args": argparse.Namespace(lr=0.1)}, path)  # a class in the pickle
    return path


SHARED = {
    "eval-ckpt-digits": _ckpt("digits", 10),
    "eval-ckpt-digits-other": _ckpt("digits", 10, seed=1),
    "eval-ckpt-cifar10": _ckpt("cifar10", 10),
    "eval-ckpt-cifar10-4": _ckpt("cifar10", 4),
    "eval-ckpt-imagenet-3": _ckpt("imagenet", 3),
    "eval-ckpt-imagenet-4": _ckpt("imagenet", 4),
    "eval-cifar10-c": _cifar10_c,
    "eval-imagenet-c": _imagenet_c,
    "eval-not-a-checkpoint": _not_a_checkpoint,
    "eval-pickled-code": _pickled_code,
}


def ckpt(key: str):
    return lambda ws: str(ws.shared[key])


def _digits(ws: Workspace, *extra: str, key: str = "eval-ckpt-digits") -> list[str]:
    return ["--ckpt", str(ws.shared[key]), "--suite", "clean", "--limit", "100", "--out", str(ws.path("out")), *FAST,
            *extra]


def _cifar_c(ws: Workspace, *extra: str, key: str = "eval-ckpt-cifar10") -> list[str]:
    return ["--ckpt", str(ws.shared[key]), "--suite", "cifar10-c", "--corruptions", "fog,snow", "--severities", "1",
            "--data-root", str(ws.root), "--out", str(ws.path("out")), *FAST, *extra]


def _with_cifar_c(ws: Workspace) -> None:
    copy_shared(ws, "eval-cifar10-c", "CIFAR-10-C")


def _evaluated_cifar_c(ws: Workspace) -> None:
    """A finished evaluation of fog and snow (severity 1) in ws/out."""
    _with_cifar_c(ws)
    code, output = run_cli("evaluate", _cifar_c(ws), ws.root)
    assert code == 0, output


def _evaluated_by_another_checkpoint(ws: Workspace) -> None:
    code, output = run_cli("evaluate", _digits(ws, key="eval-ckpt-digits-other"), ws.root)
    assert code == 0, output
    ws.path("out/my-notes.txt").write_text("a file of mine in the results folder\n")


def _replace_fog(ws: Workspace) -> None:
    _evaluated_cifar_c(ws)
    fog = ws.path("CIFAR-10-C/fog.npy")
    np.save(fog, 255 - np.load(fog))  # same path, same shape, other images


def _truncate_npz(ws: Workspace) -> None:
    _evaluated_cifar_c(ws)
    npz = ws.path("out/cells/cifar10-c/fog-1.npz")
    npz.write_bytes(npz.read_bytes()[:40])


def _garble_json(ws: Workspace) -> None:
    _evaluated_cifar_c(ws)
    ws.path("out/cells/cifar10-c/fog-1.json").write_text('{"fingerprint": {"checkpoint_sha')


def _killed_after_one_cell(ws: Workspace) -> None:
    _evaluated_cifar_c(ws)
    for name in ("cells/cifar10-c/snow-1.json", "cells/cifar10-c/snow-1.npz", "results.json", "results.md"):
        ws.path(f"out/{name}").unlink()


def _generated_files(ws: Workspace) -> None:
    folder = copy_shared(ws, "eval-cifar10-c", "gen/fog-set")
    manifest = {"format": "augmix-robustness/generated-corruptions", "generated": True, "released": False,
                "layout": "cifar-c-npy", "settings": {"preset": "cifar", "seed": 7, "severities": [1, 2, 3, 4, 5]},
                "environment": {"augmix-robustness": "0.9.1"}, "files": {}, "complete": True}
    (folder / "manifest.json").write_text(json.dumps(manifest))


def _lock_out(ws: Workspace) -> None:
    ws.path("out").mkdir()
    ws.path("out/.augmix.lock").write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid(),
                                                       "since": "now", "command": "evaluate.py (another run)"}))


def _imagenet_val(classes: int):
    def prepare(ws: Workspace) -> None:
        for k in range(classes):
            folder = ws.path(f"imagenet/val/n{k:08d}")
            folder.mkdir(parents=True)
            (folder / "a.JPEG").write_bytes(b"")  # never read: the class count is checked first
    return prepare


def _imagenet_c_five_classes(ws: Workspace) -> None:
    for k in range(5):
        ws.path(f"ImageNet-C/fog/1/n{k:08d}").mkdir(parents=True)


def _cifar_c_labels_out_of_range(ws: Workspace) -> None:
    _with_cifar_c(ws)
    labels = np.load(ws.path("CIFAR-10-C/labels.npy"))
    labels[3::8] = 12  # the same test image in every severity block
    np.save(ws.path("CIFAR-10-C/labels.npy"), labels)


def _empty_fog(ws: Workspace) -> None:
    _with_cifar_c(ws)
    ws.path("CIFAR-10-C/fog.npy").write_bytes(b"")


def _truncated_fog(ws: Workspace) -> None:
    _with_cifar_c(ws)
    fog = ws.path("CIFAR-10-C/fog.npy")
    fog.write_bytes(fog.read_bytes()[:5000])


def _bad_jpeg(ws: Workspace) -> None:
    copy_shared(ws, "eval-imagenet-c", "ImageNet-C")
    victim = sorted(ws.path("ImageNet-C/fog/1").rglob("*.JPEG"))[1]
    victim.write_bytes(b"\xff\xd8 not really a jpeg")


def _bad_mp4(ws: Workspace) -> None:
    for k in range(3):
        folder = ws.path(f"ImageNet-P/scale/n{k:08d}")
        folder.mkdir(parents=True)
        (folder / "v.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 broken video")


def _imagenet_p(ws: Workspace, key: str = "eval-ckpt-imagenet-3") -> list[str]:
    return ["--ckpt", str(ws.shared[key]), "--suite", "imagenet-p", "--perturbations", "scale", "--data-root",
            str(ws.root), "--out", str(ws.path("out")), "--no-plots", "--batch-size", "31", "--workers", "1"]


def _copy_run_checkpoint(ws: Workspace) -> None:
    ws.path("run").mkdir()
    shutil.copy2(ws.shared["eval-ckpt-digits"], ws.path("run/last.pt"))


ROWS = [
    # precision
    Row(id="eval-amp-auto-is-gone", covers="precision is float32 unless bf16/fp16 is asked for explicitly",
        cli="evaluate", argv=lambda ws: _digits(ws, "--amp", "auto"), code=EXIT_USAGE, message="invalid choice"),
    Row(id="eval-default-precision-float32", covers="the run says its precision (float32 by default)",
        cli="evaluate", argv=lambda ws: _digits(ws), code=0, message="precision float32", creates=("out/*",)),
    # output folders
    Row(id="eval-out-holds-another-checkpoint", covers="another checkpoint's results folder is refused, nothing lost",
        cli="evaluate", argv=lambda ws: _digits(ws), code=EXIT_USAGE, message="holds the results of another checkpoint",
        prepare=_evaluated_by_another_checkpoint),
    Row(id="eval-overwrite-replaces-only-evaluator-files", covers="--overwrite replaces the evaluator's files, keeps "
        "the user's", cli="evaluate", argv=lambda ws: _digits(ws, "--overwrite"), code=0, message="wrote",
        prepare=_evaluated_by_another_checkpoint,
        creates=("out/results.*", "out/cells/*", "out/evaluated-checkpoint.json")),
    Row(id="eval-out-is-a-file", covers="--out naming a file", cli="evaluate",
        argv=lambda ws: _digits(ws)[:-len(FAST) - 1] + [str(ws.path("notes.txt"))] + FAST, code=EXIT_USAGE,
        message="is a file, not a folder", prepare=lambda ws: ws.path("notes.txt").write_text("mine\n")),
    Row(id="eval-out-locked", covers="an output folder in use by another evaluation is refused (environment)",
        cli="evaluate", argv=lambda ws: _digits(ws), code=EXIT_ENVIRONMENT, message="is in use by",
        prepare=_lock_out),
    Row(id="eval-run-checkpoint-default-out", covers="a run's last.pt goes to <run>/eval, not a shared folder",
        cli="evaluate", argv=lambda ws: ["--ckpt", str(ws.path("run/last.pt")), "--limit", "100", *FAST], code=0,
        message=os.sep.join(["", "run", "eval", "results.json"]), prepare=_copy_run_checkpoint,
        creates=("run/eval/*",)),
    # stale and damaged cells
    Row(id="eval-replaced-npy-is-recomputed", covers="a cell is keyed by what it read, not by the folder's path",
        cli="evaluate", argv=lambda ws: _cifar_c(ws), code=0, message="1 computed, 1 reused", prepare=_replace_fog,
        creates=("out/*",)),
    Row(id="eval-truncated-cell-npz", covers="a damaged stored cell is recomputed with a note", cli="evaluate",
        argv=lambda ws: _cifar_c(ws), code=0, message="fog-1.npz is damaged", prepare=_truncate_npz,
        creates=("out/*",)),
    Row(id="eval-bad-cell-json", covers="an unreadable cell record is recomputed with a note", cli="evaluate",
        argv=lambda ws: _cifar_c(ws), code=0, message="fog-1.json is damaged", prepare=_garble_json,
        creates=("out/*",)),
    Row(id="eval-killed-run-resumes", covers="a killed evaluation resumes its finished cells", cli="evaluate",
        argv=lambda ws: _cifar_c(ws), code=0, message="1 computed, 1 reused", prepare=_killed_after_one_cell,
        creates=("out/*",)),
    # generated files given as a folder
    Row(id="eval-generated-files-are-labelled", covers="a generated set under --root is not reported as released",
        cli="evaluate", argv=lambda ws: _cifar_c(ws, "--root", f"cifar10-c={ws.path('gen/fog-set')}"), code=0,
        message="generated by generate.py (seed 7, preset cifar, augmix-robustness 0.9.1)", prepare=_generated_files,
        creates=("out/*",)),
    # class counts
    Row(id="eval-cifar10-model-with-4-classes", covers="model classes against the dataset's classes",
        cli="evaluate", argv=lambda ws: _cifar_c(ws, key="eval-ckpt-cifar10-4"), code=EXIT_USAGE,
        message="the data has 10 classes, but the model has 4 outputs", prepare=_with_cifar_c),
    Row(id="eval-imagenet-clean-3-folders-4-classes", covers="clean suite: class folders against the model",
        cli="evaluate", argv=lambda ws: ["--ckpt", str(ws.shared["eval-ckpt-imagenet-4"]), "--data-root", str(ws.root),
                                         "--out", str(ws.path("out")), *FAST],
        code=EXIT_USAGE, message="3 class folders, but the model has 4 outputs", prepare=_imagenet_val(3)),
    Row(id="eval-imagenet-c-5-folders-3-classes", covers="-C suite: class folders against the model",
        cli="evaluate", argv=lambda ws: ["--ckpt", str(ws.shared["eval-ckpt-imagenet-3"]), "--suite", "imagenet-c",
                                         "--corruptions", "fog", "--severities", "1", "--data-root", str(ws.root),
                                         "--out", str(ws.path("out")), *FAST],
        code=EXIT_USAGE, message="5 class folders, but the model has 3 outputs", prepare=_imagenet_c_five_classes),
    Row(id="eval-cifar-c-label-out-of-range", covers="labels beyond the model's outputs", cli="evaluate",
        argv=lambda ws: _cifar_c(ws), code=EXIT_USAGE, message="labels span 0..12, expected 0..9",
        prepare=_cifar_c_labels_out_of_range),
    # the plan, checked before any work
    Row(id="eval-suite-typo", covers="a suite typo gets 'did you mean'", cli="evaluate",
        argv=lambda ws: _cifar_c(ws)[:3] + ["cifar10c"] + _cifar_c(ws)[4:], code=EXIT_USAGE,
        message="did you mean 'cifar10-c'", prepare=_with_cifar_c),
    Row(id="eval-corruption-typo", covers="--corruptions names with 'did you mean'", cli="evaluate",
        argv=lambda ws: _cifar_c(ws, "--corruptions", "fogg"), code=EXIT_USAGE, message="did you mean 'fog'",
        prepare=_with_cifar_c),
    Row(id="eval-corruption-path", covers="a corruption name is never a path component", cli="evaluate",
        argv=lambda ws: _cifar_c(ws, "--corruptions", "../CIFAR-10-C/fog"), code=EXIT_USAGE,
        message="unknown value(s) ../CIFAR-10-C/fog", prepare=_with_cifar_c),
    Row(id="eval-perturbation-typo", covers="--perturbations names with 'did you mean'", cli="evaluate",
        argv=lambda ws: _digits(ws, "--suite", "digits-p", "--generate", "--perturbations", "translat"),
        code=EXIT_USAGE, message="did you mean 'translate'"),
    Row(id="eval-severity-6", covers="--severities in 1..5", cli="evaluate",
        argv=lambda ws: _cifar_c(ws, "--severities", "6"), code=EXIT_USAGE, message="--severities: unknown value(s) 6",
        prepare=_with_cifar_c),
    Row(id="eval-limit-0", covers="--limit >= 1, checked when parsed", cli="evaluate",
        argv=lambda ws: _digits(ws, "--limit", "0"), code=EXIT_USAGE, message="expected an integer >= 1"),
    Row(id="eval-batch-size-0", covers="--batch-size >= 1", cli="evaluate",
        argv=lambda ws: _digits(ws, "--batch-size", "0"), code=EXIT_USAGE, message="expected an integer >= 1"),
    Row(id="eval-workers-negative", covers="--workers >= 0", cli="evaluate",
        argv=lambda ws: _digits(ws, "--workers=-1"), code=EXIT_USAGE, message="expected an integer >= 0"),
    Row(id="eval-seed-negative", covers="--seed >= 0", cli="evaluate",
        argv=lambda ws: _digits(ws, "--seed=-3"), code=EXIT_USAGE, message="expected an integer >= 0"),
    Row(id="eval-seed-not-a-number", covers="numeric options name the bad text", cli="evaluate",
        argv=lambda ws: _digits(ws, "--seed", "seven"), code=EXIT_USAGE, message="got 'seven'"),
    Row(id="eval-difficulty-4", covers="--difficulty in 1..3", cli="evaluate",
        argv=lambda ws: _digits(ws, "--difficulty", "4"), code=EXIT_USAGE, message="invalid choice"),
    Row(id="eval-alexnet-error-above-1", covers="--alexnet-clean-error is a fraction", cli="evaluate",
        argv=lambda ws: _digits(ws, "--alexnet-clean-error", "43.5"), code=EXIT_USAGE,
        message="expected a fraction in (0, 1)"),
    Row(id="eval-calibration-below-minimum", covers="calibration with --limit below its 100 samples, before work",
        cli="evaluate", argv=lambda ws: _digits(ws, "--suite", "calibration", "--limit", "50"), code=EXIT_USAGE,
        message="needs at least 100 test images"),
    Row(id="eval-released-folder-missing", covers="data present for each suite", cli="evaluate",
        argv=lambda ws: _cifar_c(ws), code=EXIT_USAGE, message="CIFAR-10-C does not exist"),
    Row(id="eval-cifar-test-batch-missing", covers="the clean suite's test batch, named before work",
        cli="evaluate", argv=lambda ws: ["--ckpt", str(ws.shared["eval-ckpt-cifar10"]), "--data-root", str(ws.root),
                                         "--out", str(ws.path("out")), *FAST],
        code=EXIT_USAGE, message="test_batch does not exist"),
    Row(id="eval-root-without-dir", covers="--root needs NAME=DIR", cli="evaluate",
        argv=lambda ws: _digits(ws, "--root", "cifar10-c"), code=EXIT_USAGE, message="expected NAME=DIR"),
    Row(id="eval-generate-imagenet", covers="ImageNet -C cannot be generated in memory", cli="evaluate",
        argv=lambda ws: ["--ckpt", str(ws.shared["eval-ckpt-imagenet-3"]), "--suite", "imagenet-c", "--generate",
                         "--data-root", str(ws.root), "--out", str(ws.path("out")), *FAST],
        code=EXIT_USAGE, message="generate the files with generate.py"),
    # ordinary mistakes with files, devices and checkpoints
    Row(id="eval-zero-byte-npy", covers="a 0-byte .npy", cli="evaluate", argv=lambda ws: _cifar_c(ws),
        code=EXIT_USAGE, message="fog.npy is empty (0 bytes)", prepare=_empty_fog),
    Row(id="eval-truncated-npy", covers="a truncated .npy, before any cell", cli="evaluate",
        argv=lambda ws: _cifar_c(ws), code=EXIT_USAGE, message="fog.npy is not a complete .npy file",
        prepare=_truncated_fog),
    Row(id="eval-bad-jpeg-in-decode-worker", covers="a decode worker's error names the file, no traceback",
        cli="evaluate", argv=lambda ws: ["--ckpt", str(ws.shared["eval-ckpt-imagenet-3"]), "--suite", "imagenet-c",
                                         "--corruptions", "fog", "--severities", "1", "--data-root", str(ws.root),
                                         "--out", str(ws.path("out")), "--no-plots", "--workers", "1"],
        code=EXIT_USAGE, message="is not a readable image", prepare=_bad_jpeg, creates=("out/*",)),
    Row(id="eval-bad-mp4-in-decode-worker", covers="an ImageNet-P decode worker's error names the file",
        cli="evaluate", argv=lambda ws: _imagenet_p(ws), code=EXIT_USAGE, message="is not a readable video",
        prepare=_bad_mp4, creates=("out/*",)),
    Row(id="eval-device-tpu", covers="an unknown device", cli="evaluate",
        argv=lambda ws: _digits(ws, "--device", "tpu"), code=EXIT_USAGE, message="--device='tpu'"),
    Row(id="eval-not-a-checkpoint", covers="a file that is not a checkpoint", cli="evaluate",
        argv=lambda ws: _digits(ws, key="eval-not-a-checkpoint"), code=EXIT_USAGE,
        message="not a readable torch checkpoint"),
    Row(id="eval-pickled-code-checkpoint", covers="a checkpoint that pickles code is refused, not run",
        cli="evaluate", argv=lambda ws: _digits(ws, key="eval-pickled-code"), code=EXIT_USAGE, message="refused"),
    Row(id="eval-missing-checkpoint", covers="a checkpoint path that does not exist", cli="evaluate",
        argv=lambda ws: ["--ckpt", str(ws.path("missing.pt"))], code=EXIT_USAGE, message="missing.pt"),
]

if not torch.cuda.is_available():
    ROWS.append(Row(id="eval-device-cuda-without-gpu", covers="--device cuda on a machine without CUDA (environment)",
                    cli="evaluate", argv=lambda ws: _digits(ws, "--device", "cuda"), code=EXIT_ENVIRONMENT,
                    message="CUDA is not available"))
