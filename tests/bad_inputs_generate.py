"""Bad-input rows for generate.py (see tests/badinput.py): output folders that are not ours, foreign files in a
partly generated set, busy and stale locks, out-of-range numbers, unknown names, missing or broken sources,
devices this machine lacks. Every row runs on the digits set (--limit 8) or a 4-image folder, in process."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np

from tests.badinput import EXIT_ENVIRONMENT, EXIT_USAGE, Row, Workspace, copy_shared

TINY = ["--source", "digits", "--limit", "8", "--device", "cpu"]
C_TINY = ["c", *TINY, "--corruptions", "gaussian_noise"]
HIDDEN_TEMPS = (".draft.txt.abcd1234.tmp", "sub/.photo.JPEG.k9k9k9k9.tmp", "sub/deeper/.fog.npy.zz__zz__.tmp")


def _digits_c(folder: Path) -> Path:
    """A finished digits -C set of gaussian_noise (8 images, 5 severities), written by the CLI itself."""
    from generate import main

    out = folder / "out"
    assert main(["c", *TINY, "--corruptions", "gaussian_noise", "--out", str(out)]) == 0
    return out


def _image_folder(folder: Path) -> Path:
    """Two class folders of two small JPEGs each (an ImageNet-style val tree)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for wnid in ("n01440764", "n01443537"):
        (folder / "val" / wnid).mkdir(parents=True)
        for i in range(2):
            pixels = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / "val" / wnid / f"ILSVRC2012_val_{wnid[-2:]}{i}.JPEG")
    return folder / "val"


def _imagenet_c(folder: Path) -> Path:
    """The 4-image folder and its ImageNet-C tree of gaussian_noise at severity 2, written by the CLI."""
    from generate import main

    _image_folder(folder)
    assert main([*JPEG_C, "--data-root", str(folder / "val"), "--out", str(folder / "out")]) == 0
    return folder


JPEG_C = ["c", "--source", "imagefolder", "--corruptions", "gaussian_noise", "--severities", "2", "--workers", "0",
          "--device", "cpu"]
SHARED = {"generate-digits-c": _digits_c, "generate-image-folder": _image_folder, "generate-imagenet-c": _imagenet_c}


def _write(ws: Workspace, relative: str, data: bytes | str = b"x") -> Path:
    path = ws.path(relative)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def _foreign_folder(ws: Workspace) -> None:
    _write(ws, "out/notes.txt", "mine")
    for name in HIDDEN_TEMPS:
        _write(ws, f"out/{name}", "a draft of someone else's")


def _home_like(ws: Workspace) -> None:
    """The workspace itself plays the user's home folder: --out . must not sweep its hidden temp files."""
    _write(ws, "thesis.tex", "text")
    for name in HIDDEN_TEMPS:
        _write(ws, name, "editor temp")


def _partial(ws: Workspace) -> None:
    copy_shared(ws, "generate-digits-c", "out")


def _partial_with(relative: str, array: np.ndarray):
    def prepare(ws: Workspace) -> None:
        _partial(ws)
        np.save(ws.path(relative), array)
    return prepare


def _lock(ws: Workspace, relative: str, pid: int) -> None:
    from runtime.locks import _process_start

    _write(ws, relative, json.dumps({"host": socket.gethostname(), "pid": pid, "start": _process_start(pid),
                                     "since": "earlier", "command": "generate.py c (another run)"}))


def _live_lock(relative: str):
    def prepare(ws: Workspace) -> None:
        _partial(ws)
        _lock(ws, relative, os.getpid())  # this very process: alive for the whole row
    return prepare


def _stale_lock(ws: Workspace) -> None:
    _partial(ws)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    _lock(ws, "out/.augmix.lock", dead.pid)


def _cifar_only_test_garbage(ws: Workspace) -> None:
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        _write(ws, f"data/cifar-10-batches-py/{name}", b"not a pickle")


def _broken_image_folder(ws: Workspace) -> None:
    shutil.copytree(ws.shared["generate-image-folder"], ws.path("val"))
    _write(ws, "val/n01443537/ILSVRC2012_val_broken.JPEG", b"\xff\xd8\xff\xe0 truncated")


def _imagenet_c_with_foreign_unit(ws: Workspace) -> None:
    shutil.copytree(ws.shared["generate-imagenet-c"], ws.root, dirs_exist_ok=True)
    _write(ws, "out/shot_noise/2/n01440764/ILSVRC2012_val_640.JPEG", b"someone else's picture")


def _row(id: str, covers: str, argv: list[str], code: int, message: str, **kw) -> Row:
    return Row(id=id, covers=covers, cli="generate", argv=lambda ws, argv=argv: list(argv), code=code,
               message=message, **kw)


def _range_rows() -> list[Row]:
    """Every numeric flag outside its stated range: one line naming the flag, nothing computed."""
    cases = [
        ("limit-zero", [*C_TINY[:4], "0", *C_TINY[5:], "--out", "o"], "--limit: expected an integer >= 1, got 0"),
        ("limit-negative", ["c", "--source", "digits", "--limit", "-3", "--out", "o"], "expected an integer >= 1"),
        ("limit-not-a-number", ["c", "--source", "digits", "--limit", "8k", "--out", "o"], "got '8k'"),
        ("batch-size-zero", [*C_TINY, "--batch-size", "0", "--out", "o"], "--batch-size: expected an integer >= 1"),
        ("workers-negative", [*C_TINY, "--workers", "-1", "--out", "o"], "--workers: expected an integer in 0..256"),
        ("seed-negative", [*C_TINY, "--seed", "-1", "--out", "o"], "--seed: expected an integer in 0.."),
        ("severity-zero", [*C_TINY, "--severities", "0,1", "--out", "o"], "severities must be distinct integers"),
        ("severity-six", [*C_TINY, "--severities", "3,6", "--out", "o"], "in 1..5"),
        ("severity-empty-item", [*C_TINY, "--severities", "1,,2", "--out", "o"], "in 1..5"),
        ("shard-index-too-large", [*C_TINY, "--shard", "2/2", "--out", "o"], "K in 0..N-1"),
        ("shard-count-zero", [*C_TINY, "--shard", "0/0", "--out", "o"], "N >= 1"),
        ("shard-not-k-of-n", [*C_TINY, "--shard", "3", "--out", "o"], "expected K/N"),
        ("p-difficulty-four", ["p", *TINY, "--difficulty", "4", "--out", "o"], "--difficulty: expected an integer "
                                                                               "in 1..3"),
        ("p-batch-size-negative", ["p", *TINY, "--batch-size", "-4", "--out", "o"], "--batch-size"),
        ("p-x264-preset-unknown", ["p", *TINY, "--x264-preset", "snail", "--out", "o"], "invalid choice: 'snail'"),
        ("grid-num-images-zero", ["grid", "--source", "digits", "--num-images", "0", "--out", "g.png"],
         "--num-images: expected an integer in 1..1000"),
        ("grid-cell-size-zero", ["grid", "--source", "digits", "--cell-size", "0", "--out", "g.png"],
         "--cell-size: expected an integer in 8..1024"),
        ("grid-colors-one", ["grid", "--source", "digits", "--colors", "1", "--out", "g.png"],
         "--colors: expected an integer in 2..256"),
    ]
    return [_row(f"generate-{name}", "a number outside its stated range is refused when parsed", argv, EXIT_USAGE,
                 message) for name, argv, message in cases]


ROWS = [
    # an --out that is not ours is refused first: nothing in it is removed, created or locked
    _row("generate-grid-out-exists", "grid never replaces an existing PNG without --overwrite",
         ["grid", "--source", "digits", "--out", "g.png"], EXIT_USAGE, "already exists",
         prepare=lambda ws: _write(ws, "g.png", b"\x89PNG mine")),
    _row("generate-out-foreign-folder-untouched", "a non-empty folder without our manifest is refused before any "
         "temp file in it is removed", [*C_TINY, "--out", "out"], EXIT_USAGE, "no manifest.json",
         prepare=_foreign_folder),
    _row("generate-out-dot-sweeps-nothing", "--out . in a folder of other files (a home folder) is refused and its "
         "hidden *.tmp files survive", [*C_TINY, "--out", "."], EXIT_USAGE, "refusing to mix", prepare=_home_like),
    _row("generate-out-is-a-file", "--out naming a file", [*C_TINY, "--out", "notes.txt"], EXIT_USAGE,
         "not a directory", prepare=lambda ws: _write(ws, "notes.txt", "mine")),
    _row("generate-out-foreign-manifest", "a manifest.json of another program is not ours", [*C_TINY, "--out", "out"],
         EXIT_USAGE, "not a generation manifest",
         prepare=lambda ws: _write(ws, "out/manifest.json", json.dumps({"format": "someone-else"}))),
    # foreign files at our output paths in a partly generated set: named, never adopted, never deleted
    _row("generate-foreign-right-shape-not-adopted", "an all-zero fog.npy of the right shape that the manifest does "
         "not record is named, not adopted", [*C_TINY[:-1], "gaussian_noise,fog", "--out", "out"], EXIT_USAGE,
         "fog.npy", prepare=_partial_with("out/fog.npy", np.zeros((40, 32, 32, 3), np.uint8))),
    _row("generate-foreign-wrong-shape-not-deleted", "a snow.npy of another shape is named, not deleted",
         [*C_TINY[:-1], "snow", "--out", "out"], EXIT_USAGE, "snow.npy",
         prepare=_partial_with("out/snow.npy", np.ones((3, 8), np.uint8))),
    _row("generate-foreign-labels-not-adopted", "a labels.npy nobody recorded, in a folder with our manifest",
         [*C_TINY, "--out", "out"], EXIT_USAGE, "labels.npy",
         prepare=lambda ws: (_partial(ws), _write(ws, "out/labels.npy", b"theirs"), _strip_record(ws, "labels.npy"))),
    _row("generate-foreign-jpeg-in-unit-folder", "a JPEG at an ImageNet-C output path of a unit not in progress",
         [*JPEG_C[:4], "gaussian_noise,shot_noise", *JPEG_C[5:], "--data-root", "val", "--out", "out"], EXIT_USAGE,
         "ILSVRC2012_val_640.JPEG", prepare=_imagenet_c_with_foreign_unit),
    # one writer per folder
    _row("generate-out-in-use", "a second generation into a folder a live process holds is refused, naming it",
         [*C_TINY, "--out", "out"], EXIT_ENVIRONMENT, "is in use by process", prepare=_live_lock("out/.augmix.lock")),
    _row("generate-shard-in-use", "a second copy of shard 0/2 is refused, naming the holder",
         [*C_TINY, "--shard", "0/2", "--out", "out"], EXIT_ENVIRONMENT, "is in use by process",
         prepare=_live_lock("out/.shards/0-of-2/.augmix.lock")),
    _row("generate-whole-run-beside-live-shard", "a single-process run (or --finalize) beside a live shard is "
         "refused", ["c", "--finalize", "--out", "out"], EXIT_ENVIRONMENT, "shard lock 1-of-2",
         prepare=_live_lock("out/.shards/1-of-2/.augmix.lock")),
    _row("generate-stale-lock-taken-over", "the lock of a killed generation is taken over and the run resumes",
         [*C_TINY, "--out", "out"], 0, "taking over the stale lock", prepare=_stale_lock,
         creates=("out/manifest.json", "out/.augmix.lock")),
    _row("generate-finalize-without-manifest", "--finalize on a folder that holds no generation",
         ["c", "--finalize", "--out", "empty"], EXIT_USAGE, "holds no manifest.json"),
    _row("generate-finalize-with-shard", "--finalize is a single step after the shards",
         ["c", "--finalize", "--shard", "0/2", "--out", "out"], EXIT_USAGE, "drop --shard", prepare=_partial),
    # names are checked against the registries, never used as paths
    _row("generate-corruption-typo", "a misspelt corruption gets the closest name", [*C_TINY[:-1], "fogg", "--out",
         "o"], EXIT_USAGE, "did you mean 'fog'"),
    _row("generate-perturbation-typo", "a misspelt perturbation gets the closest name",
         ["p", *TINY, "--perturbations", "translte", "--out", "o"], EXIT_USAGE, "did you mean 'translate'"),
    _row("generate-perturbation-path", "a perturbation that looks like a path is an unknown name, not a path",
         ["p", *TINY, "--perturbations", "../../x/translate", "--out", "o"], EXIT_USAGE,
         "unknown perturbation '../../x/translate'"),
    _row("generate-difficulty-on-non-noise", "a difficulty the perturbation does not have",
         ["p", *TINY, "--perturbations", "rotate", "--difficulty", "2", "--out", "o"], EXIT_USAGE,
         "only for the noise perturbations"),
    # sources, devices
    _row("generate-source-missing", "--source omitted", ["c", "--out", "o"], EXIT_USAGE, "--source is required"),
    _row("generate-cifar-missing", "an empty data root: the expected files are named",
         ["c", "--source", "cifar10", "--data-root", "data", "--out", "o"], EXIT_USAGE, "test_batch",
         prepare=lambda ws: ws.path("data").mkdir()),
    _row("generate-cifar-not-a-pickle", "a CIFAR batch that is not a pickle names the file",
         ["c", "--source", "cifar10", "--data-root", "data", "--out", "o"], EXIT_USAGE, "test_batch",
         prepare=_cifar_only_test_garbage),
    _row("generate-imagefolder-without-root", "--source imagefolder needs --data-root",
         ["c", "--source", "imagefolder", "--out", "o"], EXIT_USAGE, "needs --data-root"),
    _row("generate-imagefolder-missing", "a data root that does not exist is named",
         ["c", "--source", "imagefolder", "--data-root", "nowhere", "--out", "o"], EXIT_USAGE, "nowhere"),
    _row("generate-undecodable-image", "a source image that does not decode is named in one line",
         ["c", "--source", "imagefolder", "--data-root", "val", "--out", "out", "--corruptions", "gaussian_noise",
          "--severities", "1", "--workers", "0", "--device", "cpu"], EXIT_USAGE,
         "cannot decode source image", prepare=_broken_image_folder, creates=("out/*",)),
    _row("generate-undecodable-image-in-worker", "a decode worker's failure is one line naming the file, not the "
         "worker's traceback", ["c", "--source", "imagefolder", "--data-root", "val", "--out", "out",
                                "--corruptions", "gaussian_noise", "--severities", "1", "--workers", "1",
                                "--device", "cpu"], EXIT_USAGE, "ILSVRC2012_val_broken.JPEG",
         prepare=_broken_image_folder, creates=("out/*",), subprocess=True),
    _row("generate-device-not-a-device", "a device name torch does not know", [*C_TINY[:-2], "--corruptions",
         "fog", "--device", "tpu", "--out", "o"], EXIT_USAGE, "--device"),
    _row("generate-device-absent", "a CUDA device this machine does not have", [*C_TINY[:-2], "--corruptions",
         "fog", "--device", "cuda:99", "--out", "o"], EXIT_ENVIRONMENT, "--device=cuda:99"),
    *_range_rows(),
]


def _strip_record(ws: Workspace, key: str) -> None:
    path = ws.path("out/manifest.json")
    manifest = json.loads(path.read_text())
    del manifest["files"][key]
    path.write_text(json.dumps(manifest))
