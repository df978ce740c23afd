"""``python -m corruptions``: generate end to end on real data, the grid PNG, and clear errors on bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from corruptions import writers as W
from corruptions.__main__ import main
from tests._generation_data import registered_corruptions, write_image_folder

ROOT = Path(__file__).resolve().parents[1]
REGISTERED = registered_corruptions()
needs_corruption = pytest.mark.skipif(not REGISTERED, reason="no corruption registered yet")


@needs_corruption
def test_generate_on_digits_end_to_end_in_a_subprocess(tmp_path):
    out = tmp_path / "digits-c"
    chosen = REGISTERED[:4]  # every registered corruption runs in test_corruptions_generate.py; here: the CLI
    command = [sys.executable, "-m", "corruptions", "generate", "--source", "digits", "--out", str(out),
               "--limit", "12", "--batch-size", "8", "--corruptions", ",".join(chosen), "--device", "cpu"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "wrote" in result.stdout
    from loaders.digits import load_digits

    _, labels = load_digits(train=False)
    stored = np.load(out / "labels.npy")
    assert stored.dtype == np.uint8 and stored.tolist() == labels[:12].tolist() * 5
    manifest = json.loads((out / W.MANIFEST_NAME).read_text())
    assert manifest["source"]["name"] == "digits" and manifest["source"]["num_images"] == 12
    assert manifest["generated"] is True and manifest["complete"] is True
    assert manifest["settings"]["batch_size"] == 8 and manifest["settings"]["preset"] == "cifar"
    assert manifest["corruptions"] == list(chosen)
    for corruption in chosen:
        data = np.load(out / f"{corruption}.npy", mmap_mode="r")
        assert data.shape == (60, 32, 32, 3) and data.dtype == np.uint8
        assert manifest["files"][f"{corruption}.npy"]["sha256"] == W.sha256_file(out / f"{corruption}.npy")
    try:
        from loaders.released import load_cifar_c_labels, open_cifar_c
    except ImportError:  # the reader is another helper's module
        return
    labels_read = load_cifar_c_labels(out, num_classes=10)
    assert open_cifar_c(out, REGISTERED[0], labels_read).images.shape == (60, 32, 32, 3)


@needs_corruption
def test_generate_from_cifar_pickles_and_rerun_is_a_no_op(tmp_path, capsys):
    from loaders.synthetic import write_cifar_pickles

    write_cifar_pickles(tmp_path / "data", "cifar100", num_train=10, num_test=7)
    args = ["generate", "--source", "cifar100", "--data-root", str(tmp_path / "data"), "--out", str(tmp_path / "c"),
            "--corruptions", REGISTERED[0], "--severities", "1,3", "--device", "cpu"]
    assert main(args) == 0
    data = np.load(tmp_path / "c" / f"{REGISTERED[0]}.npy")
    assert data.shape == (14, 32, 32, 3)  # 2 severities x 7 test images
    manifest = W.load_manifest(tmp_path / "c")
    assert manifest["source"]["path"].endswith("cifar-100-python")
    before = (tmp_path / "c" / f"{REGISTERED[0]}.npy").stat().st_mtime_ns
    assert main(args) == 0
    assert (tmp_path / "c" / f"{REGISTERED[0]}.npy").stat().st_mtime_ns == before  # finished file kept


@needs_corruption
def test_generate_imagefolder_writes_jpegs_for_every_class_folder(tmp_path):
    write_image_folder(tmp_path / "val", per_class=2)
    args = ["generate", "--source", "imagefolder", "--data-root", str(tmp_path / "val"), "--out", str(tmp_path / "c"),
            "--corruptions", REGISTERED[0], "--severities", "2", "--limit", "1", "--workers", "0", "--device", "cpu"]
    assert main(args) == 0
    folder = tmp_path / "c" / REGISTERED[0] / "2"
    assert sorted(p.name for p in folder.iterdir()) == ["n01440764", "n01443537"]  # empty class kept for labels
    files = list(folder.rglob("*.JPEG"))
    assert [p.name for p in files] == ["ILSVRC2012_val_00000001.JPEG"]
    assert Image.open(files[0]).size == (224, 224)


def test_unknown_corruption_is_a_usage_error_naming_it(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["generate", "--source", "digits", "--out", "unused", "--corruptions", "gaussian_noise,fogg"])
    assert exit_info.value.code == 2
    assert "unknown corruption 'fogg'" in capsys.readouterr().err


def test_missing_dataset_files_are_named(tmp_path, capsys):
    code = main(["generate", "--source", "cifar10", "--data-root", str(tmp_path), "--out", str(tmp_path / "out"),
                 "--corruptions", "gaussian_noise"])
    err = capsys.readouterr().err
    assert code == 2 and "error:" in err and "cifar-10-batches-py" in err and "test_batch" in err
    assert not (tmp_path / "out").exists()
    code = main(["generate", "--source", "imagefolder", "--data-root", str(tmp_path / "nope"), "--out",
                 str(tmp_path / "out")])
    assert code == 2 and "nope" in capsys.readouterr().err


@needs_corruption
def test_unwritable_output_folder_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "a-file").write_text("x")
    code = main(["generate", "--source", "digits", "--limit", "2", "--out", str(tmp_path / "a-file" / "out"),
                 "--corruptions", REGISTERED[0], "--device", "cpu"])
    assert code == 2 and "cannot write to output folder" in capsys.readouterr().err


@needs_corruption
def test_grid_writes_a_labelled_png_of_the_expected_layout(tmp_path):
    chosen = REGISTERED[:2]
    out = tmp_path / "grid.png"
    assert main(["grid", "--source", "digits", "--num-images", "1", "--out", str(out), "--corruptions",
                 ",".join(chosen), "--device", "cpu"]) == 0
    with Image.open(out) as grid:
        # 150 px labels + 6 columns x (96 px cell + 2 px gap); 26 px header + rows x (96 + 2)
        assert grid.format == "PNG" and grid.size == (150 + 6 * 98, 26 + len(chosen) * 98)
        pixels = np.asarray(grid.convert("RGB"))
    assert (pixels[:26] < 128).any()  # column labels were drawn
    photo = tmp_path / "photo.png"
    Image.fromarray(np.full((300, 260, 3), 90, np.uint8)).save(photo)
    assert main(["grid", "--images", str(photo), "--preset", "tiny", "--cell-size", "64", "--out",
                 str(tmp_path / "g2.png"), "--corruptions", chosen[0], "--device", "cpu"]) == 0
    assert Image.open(tmp_path / "g2.png").size == (150 + 6 * 66, 26 + 66)


def test_grid_needs_exactly_one_image_source(tmp_path, capsys):
    assert main(["grid", "--out", str(tmp_path / "g.png")]) == 2
    assert "exactly one of --images" in capsys.readouterr().err
    assert main(["grid", "--images", str(tmp_path / "missing.jpg"), "--out", str(tmp_path / "g.png")]) == 2
    assert "missing.jpg" in capsys.readouterr().err
