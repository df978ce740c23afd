"""Sharded generation (generation/shards.py, ``generate.py c|p --shard K/N``, ``--finalize``): the shards of a job,
sequential or concurrent, write the bytes and the manifest checksums of a single-process run."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from generate import main
from generation.output import MANIFEST_NAME, SHARDS_DIR, WORK_DIR, load_manifest
from generation.shards import Shard, shard_items, work_items

ROOT = Path(__file__).resolve().parents[1]
C_ARGS = ["c", "--source", "digits", "--limit", "12", "--batch-size", "4", "--corruptions", "gaussian_noise,contrast",
          "--severities", "1,3", "--device", "cpu", "--seed", "5"]


def digests(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` but the manifest (which holds times)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != MANIFEST_NAME}


def recorded(folder: Path) -> dict:
    manifest = load_manifest(folder)
    return {"files": manifest["files"], "complete": manifest["complete"], "corruptions": manifest.get("corruptions"),
            "perturbations": manifest.get("perturbations")}


def test_round_robin_assignment_covers_every_item_once():
    units = [("fog", 1), ("fog", 2), ("snow", 1)]
    items = work_items(units, 3)
    assert items[:4] == [(0, ("fog", 1)), (0, ("fog", 2)), (0, ("snow", 1)), (1, ("fog", 1))]  # chunk-major
    for count in (1, 2, 4, 9, 10):
        shares = [shard_items(units, 3, Shard(k, count)) for k in range(count)]
        assert sorted(item for share in shares for item in share) == sorted(items)
        assert max(map(len, shares)) - min(map(len, shares)) <= 1
    with pytest.raises(ValueError, match="K in 0..N-1"):
        Shard(2, 2)


@pytest.fixture(scope="module")
def whole_c(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("whole") / "c"
    assert main([*C_ARGS, "--out", str(out)]) == 0
    return out


def test_sequential_shards_write_the_bytes_and_checksums_of_a_whole_run(tmp_path, whole_c, capsys):
    out = tmp_path / "c"
    assert main([*C_ARGS, "--out", str(out), "--shard", "1/2"]) == 0
    assert "wait for other shards" in capsys.readouterr().out
    assert load_manifest(out)["complete"] is False and not (out / "contrast.npy").exists()
    assert main([*C_ARGS, "--out", str(out), "--shard", "0/2"]) == 0  # the last to finish assembles
    assert "the set is complete" in capsys.readouterr().out
    assert digests(out) == digests(whole_c) and recorded(out) == recorded(whole_c)
    assert not (out / WORK_DIR).exists() and not list(out.rglob(".augmix.lock"))


def test_concurrent_shard_processes_write_the_bytes_of_a_whole_run(tmp_path, whole_c):
    out = tmp_path / "c"
    processes = [subprocess.Popen([sys.executable, "generate.py", *C_ARGS, "--out", str(out), "--shard", f"{k}/3"],
                                  cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for k in range(3)]
    for process in processes:
        _, err = process.communicate(timeout=300)
        assert process.returncode == 0, err[-2000:]
    assert digests(out) == digests(whole_c) and recorded(out) == recorded(whole_c)


def test_finalize_assembles_what_the_shards_left_and_names_missing_chunks(tmp_path, whole_c, capsys, monkeypatch):
    from generation import npy_files

    out = tmp_path / "c"
    assert main([*C_ARGS, "--out", str(out), "--shard", "0/2"]) == 0
    assert main(["c", "--finalize", "--out", str(out)]) == 2  # shard 1 has not run
    err = capsys.readouterr().err
    assert "lacks" in err and "gaussian_noise/1 chunk 0" not in err and "gaussian_noise/3 chunk 0" in err
    # shard 1 dies right after its last chunk, before assembling: --finalize does it
    def killed(*args):
        raise KeyboardInterrupt("killed before assembling")

    monkeypatch.setattr(npy_files, "finalize_npy_files", killed)
    with pytest.raises(KeyboardInterrupt):
        main([*C_ARGS, "--out", str(out), "--shard", "1/2"])
    monkeypatch.undo()
    assert load_manifest(out)["complete"] is False
    assert main(["c", "--finalize", "--out", str(out)]) == 0
    assert digests(out) == digests(whole_c) and recorded(out) == recorded(whole_c)
    assert not (out / SHARDS_DIR).exists()


def test_torchrun_rank_and_world_size_are_the_shard(tmp_path, whole_c, monkeypatch):
    out = tmp_path / "c"
    for rank in (1, 0):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", "2")
        assert main([*C_ARGS, "--out", str(out)]) == 0
        assert load_manifest(out)["complete"] is (rank == 0)
    assert digests(out) == digests(whole_c)


def test_shards_must_ask_for_the_same_units(tmp_path, capsys):
    out = tmp_path / "c"
    assert main([*C_ARGS, "--out", str(out), "--shard", "0/2"]) == 0
    other = [*C_ARGS[:8], "gaussian_noise", *C_ARGS[9:]]
    assert main([*other, "--out", str(out), "--shard", "1/2"]) == 2
    assert "needs the same selection" in capsys.readouterr().err


def test_sharded_cifar_p_and_imagenet_c_match_whole_runs(tmp_path, image_folder):
    p_args = ["p", "--source", "digits", "--limit", "6", "--batch-size", "2", "--perturbations",
              "translate,gaussian_noise", "--device", "cpu"]
    assert main([*p_args, "--out", str(tmp_path / "p-whole")]) == 0
    for k in range(2):
        assert main([*p_args, "--out", str(tmp_path / "p-shards"), "--shard", f"{k}/2"]) == 0
    assert digests(tmp_path / "p-shards") == digests(tmp_path / "p-whole")
    assert recorded(tmp_path / "p-shards") == recorded(tmp_path / "p-whole")

    image_folder(tmp_path / "val", per_class=2)
    c_args = ["c", "--source", "imagefolder", "--data-root", str(tmp_path / "val"), "--corruptions",
              "gaussian_noise", "--severities", "1,2", "--batch-size", "3", "--workers", "0", "--device", "cpu"]
    assert main([*c_args, "--out", str(tmp_path / "in-whole")]) == 0
    for k in (2, 0, 1):
        assert main([*c_args, "--out", str(tmp_path / "in-shards"), "--shard", f"{k}/3"]) == 0
    assert digests(tmp_path / "in-shards") == digests(tmp_path / "in-whole")
    assert recorded(tmp_path / "in-shards") == recorded(tmp_path / "in-whole")
    listed = json.loads((tmp_path / "in-shards" / MANIFEST_NAME).read_text())["files"]["gaussian_noise/2"]
    assert (tmp_path / "in-shards" / listed["checksums"]).is_file()
