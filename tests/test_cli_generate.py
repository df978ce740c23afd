"""``generate.py c | p | grid``: end to end on real data (in a subprocess), and clear errors on bad input, full or
read-only disks and busy folders (the bad-input table, tests/bad_inputs_generate.py, holds the rest)."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from corruptions import ALL_CORRUPTIONS
from generate import main
from generation.output import MANIFEST_NAME, load_manifest
from runtime.files import sha256_file

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "generate.py", *args, "--device", "cpu"], cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith("wrote")
    return result


def test_c_p_and_grid_on_digits_end_to_end_in_subprocesses(tmp_path):
    from corruptions import SEVERITIES
    from loaders.digits import load_digits
    from loaders.released import load_cifar_c_labels, open_cifar_c, open_cifar_p

    _, labels = load_digits(train=False)
    chosen = ALL_CORRUPTIONS[:4]  # every corruption runs in test_generation_corruption_sets.py; here: the CLI
    run_cli("c", "--source", "digits", "--out", str(tmp_path / "c"), "--limit", "12", "--batch-size", "8",
            "--corruptions", ",".join(chosen))
    stored = np.load(tmp_path / "c" / "labels.npy")
    assert stored.dtype == np.uint8 and stored.tolist() == labels[:12].tolist() * 5
    manifest = json.loads((tmp_path / "c" / MANIFEST_NAME).read_text())
    assert manifest["source"]["name"] == "digits" and manifest["source"]["num_images"] == 12
    assert manifest["generated"] is True and manifest["complete"] is True
    assert manifest["settings"]["batch_size"] == 8 and manifest["settings"]["preset"] == "cifar"
    assert manifest["corruptions"] == list(chosen) and manifest["environment"]["device"] == "cpu"
    for corruption in chosen:
        data = np.load(tmp_path / "c" / f"{corruption}.npy", mmap_mode="r")
        assert data.shape == (60, 32, 32, 3) and data.dtype == np.uint8
        assert manifest["files"][f"{corruption}.npy"]["sha256"] == sha256_file(tmp_path / "c" / f"{corruption}.npy")
    labels_read = load_cifar_c_labels(tmp_path / "c", SEVERITIES, num_classes=10)
    assert open_cifar_c(tmp_path / "c", chosen[0], SEVERITIES, labels_read).images.shape == (60, 32, 32, 3)

    run_cli("p", "--source", "digits", "--out", str(tmp_path / "p"), "--limit", "6", "--batch-size", "4",
            "--perturbations", "translate,gaussian_noise")
    manifest = load_manifest(tmp_path / "p")
    assert manifest["complete"] and manifest["perturbations"] == ["gaussian_noise", "translate"]
    assert open_cifar_p(tmp_path / "p", "translate", num_videos=6).shape[0] == 6

    run_cli("grid", "--source", "digits", "--out", str(tmp_path / "grid.png"), "--corruptions", ",".join(chosen[:2]))
    with Image.open(tmp_path / "grid.png") as grid:  # 150 px labels + 6 x (96 + 2) px cells; 26 px header + rows
        assert grid.format == "PNG" and grid.size == (150 + 6 * 98, 26 + 2 * 98)


def test_generate_from_cifar_pickles_and_rerun_is_a_no_op(tmp_path, capsys):
    from loaders.synthetic import write_cifar_pickles

    write_cifar_pickles(tmp_path / "data", "cifar100", num_train=10, num_test=7)
    args = ["c", "--source", "cifar100", "--data-root", str(tmp_path / "data"), "--out", str(tmp_path / "c"),
            "--corruptions", ALL_CORRUPTIONS[0], "--severities", "1,3", "--device", "cpu"]
    assert main(args) == 0
    data = np.load(tmp_path / "c" / f"{ALL_CORRUPTIONS[0]}.npy")
    assert data.shape == (14, 32, 32, 3)  # 2 severities x 7 test images
    manifest = load_manifest(tmp_path / "c")
    assert manifest["source"]["path"].endswith("cifar-100-python")
    before = (tmp_path / "c" / f"{ALL_CORRUPTIONS[0]}.npy").stat().st_mtime_ns
    assert main(args) == 0
    assert (tmp_path / "c" / f"{ALL_CORRUPTIONS[0]}.npy").stat().st_mtime_ns == before  # finished file kept


def test_generate_imagefolder_writes_jpegs_for_every_class_folder(tmp_path, image_folder):
    image_folder(tmp_path / "val", per_class=2)
    args = ["c", "--source", "imagefolder", "--data-root", str(tmp_path / "val"), "--out", str(tmp_path / "c"),
            "--corruptions", ALL_CORRUPTIONS[0], "--severities", "2", "--limit", "1", "--workers", "0",
            "--device", "cpu"]
    assert main(args) == 0
    folder = tmp_path / "c" / ALL_CORRUPTIONS[0] / "2"
    assert sorted(p.name for p in folder.iterdir()) == ["n01440764", "n01443537"]  # empty class kept for labels
    files = list(folder.rglob("*.JPEG"))
    assert [p.name for p in files] == ["ILSVRC2012_val_00000001.JPEG"]
    assert Image.open(files[0]).size == (224, 224)


def test_unknown_corruption_is_a_usage_error_naming_it(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["c", "--source", "digits", "--out", "unused", "--corruptions", "gaussian_noise,fogg"])
    assert exit_info.value.code == 2
    assert "unknown corruption 'fogg'" in capsys.readouterr().err


def test_missing_dataset_files_are_named(tmp_path, capsys):
    code = main(["c", "--source", "cifar10", "--data-root", str(tmp_path), "--out", str(tmp_path / "out"),
                 "--corruptions", "gaussian_noise"])
    err = capsys.readouterr().err
    assert code == 2 and "error:" in err and "cifar-10-batches-py" in err and "test_batch" in err
    assert not (tmp_path / "out").exists()
    code = main(["c", "--source", "imagefolder", "--data-root", str(tmp_path / "nope"), "--out",
                 str(tmp_path / "out")])
    assert code == 2 and "nope" in capsys.readouterr().err


def test_unknown_device_is_a_clear_error(tmp_path, capsys):
    code = main(["c", "--source", "digits", "--limit", "2", "--out", str(tmp_path / "out"), "--device", "abacus"])
    assert code == 2 and "--device='abacus'" in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_unwritable_output_folder_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "a-file").write_text("x")
    code = main(["c", "--source", "digits", "--limit", "2", "--out", str(tmp_path / "a-file" / "out"),
                 "--corruptions", ALL_CORRUPTIONS[0], "--device", "cpu"])
    assert code == 2 and "cannot write to output folder" in capsys.readouterr().err


def test_grid_writes_a_labelled_png_of_the_expected_layout(tmp_path):
    chosen = ALL_CORRUPTIONS[:2]
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


def test_p_writes_the_noise_difficulty_sets_and_reports_bad_input(tmp_path, capsys):
    out = tmp_path / "DIGITS-P"
    assert main(["p", "--source", "digits", "--out", str(out), "--limit", "6", "--perturbations", "rotate,noise",
                 "--difficulty", "2", "--device", "cpu"]) == 2  # rotate has no difficulty 2
    assert "only for the noise perturbations" in capsys.readouterr().err and not out.exists()
    assert main(["p", "--source", "digits", "--out", str(out), "--limit", "6", "--difficulty", "2",
                 "--batch-size", "4", "--device", "cpu"]) == 0  # --difficulty alone: the three noise datasets
    assert sorted(p.name for p in out.glob("*.npy")) == ["gaussian_noise_2.npy", "labels.npy", "shot_noise_2.npy",
                                                          "speckle_noise_2.npy"]
    assert np.load(out / "shot_noise_2.npy").shape == (6, 31, 32, 32, 3)
    assert main(["p", "--source", "digits", "--preset", "imagenet", "--out", str(tmp_path / "x")]) == 2
    assert "does not fit --source digits" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["p", "--source", "digits", "--out", str(tmp_path / "y"), "--perturbations", "fog"])
    assert "unknown perturbation 'fog'" in capsys.readouterr().err


def _failing_replace(monkeypatch, code: int, after: int) -> list[str]:
    """Let ``after`` renames through, then fail every rename with ``code`` (a full or read-only disk; as root,
    chmod does not stop writes, so the failure is injected)."""
    real, seen = os.replace, []

    def replace(src, dst, *args, **kwargs):
        seen.append(str(dst))
        if len(seen) > after:
            raise OSError(code, os.strerror(code))
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)
    assert code in (errno.ENOSPC, errno.EROFS)
    return seen


def test_disk_full_names_the_file_says_what_is_kept_and_resumes(tmp_path, capsys, monkeypatch):
    args = ["c", "--source", "digits", "--limit", "12", "--batch-size", "4", "--corruptions", "gaussian_noise",
            "--device", "cpu"]
    assert main([*args, "--out", str(tmp_path / "ref")]) == 0
    seen = _failing_replace(monkeypatch, errno.ENOSPC, after=8)  # manifest, labels, a few chunks and records
    assert main([*args, "--out", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err
    assert f"cannot write {seen[-1]}: No space left on device" in err
    assert "finished chunk(s)" in err and "rerun the same command to resume" in err
    assert not list((tmp_path / "run").rglob("*.tmp"))
    monkeypatch.undo()
    assert main([*args, "--out", str(tmp_path / "run")]) == 0
    assert sha256_file(tmp_path / "run" / "gaussian_noise.npy") == sha256_file(tmp_path / "ref" / "gaussian_noise.npy")


def test_read_only_output_folder_is_an_environment_error_naming_it(tmp_path, capsys, monkeypatch):
    _failing_replace(monkeypatch, errno.EROFS, after=0)
    code = main(["c", "--source", "digits", "--limit", "8", "--corruptions", "fog", "--device", "cpu", "--out",
                 str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 1 and f"cannot write {tmp_path / 'out' / MANIFEST_NAME}: Read-only file system" in err
    assert [p.name for p in (tmp_path / "out").iterdir()] == []  # no temp file, no lock left behind


def test_second_generation_into_a_busy_folder_is_refused_naming_the_holder(tmp_path, capsys):
    from runtime.locks import folder_lock

    out = tmp_path / "out"
    with folder_lock(out, "output folder"):
        code = subprocess.run([sys.executable, "generate.py", "c", "--source", "digits", "--limit", "8",
                               "--corruptions", "fog", "--device", "cpu", "--out", str(out)], cwd=ROOT,
                              capture_output=True, text=True, timeout=120)
    assert code.returncode == 1 and f"is in use by process {os.getpid()}" in code.stderr
    assert "Traceback" not in code.stderr and [p.name for p in out.iterdir()] == []
