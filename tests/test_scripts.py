"""scripts/: every training and SLURM script checks its inputs and, with DRY_RUN=1, prints the commands it would run."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(script: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "DRY_RUN": "1", "TORCHRUN": "torchrun", **env}
    for key in ("SLURM_JOB_NODELIST", "SLURM_JOB_NUM_NODES", "SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT"):
        if key not in env:
            full_env.pop(key, None)
    return subprocess.run(["bash", str(ROOT / script), *args], env=full_env, capture_output=True, text=True,
                          timeout=30)


@pytest.fixture
def data_root(tmp_path):
    for folder in ("cifar-10-batches-py", "cifar-100-python", "imagenet/train", "imagenet/val", "ImageNet-C"):
        (tmp_path / folder).mkdir(parents=True)
    return tmp_path


def test_cifar_grid_runs_each_job_under_torchrun_with_gpus(data_root):
    proc = _run("scripts/train_cifar.sh", "wrn", "cifar10", "augmix standard", GPUS="4",
                AUGMIX_DATA_ROOT=str(data_root))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines == [
        "+ torchrun --standalone --nproc_per_node 4 train.py --config cifar10_wrn.yaml --resume auto "
        "train.out_dir=runs/cifar10_wrn_augmix",
        "+ torchrun --standalone --nproc_per_node 4 train.py --config cifar10_wrn.yaml --resume auto "
        "train.out_dir=runs/cifar10_wrn_standard augment.mode=standard"]
    one_gpu = _run("scripts/train_cifar.sh", "wrn", "cifar10", "augmix", AUGMIX_DATA_ROOT=str(data_root), PYTHON="py")
    assert one_gpu.stdout.startswith("+ py train.py --config cifar10_wrn.yaml")


def test_scripts_check_their_inputs_before_running(tmp_path, data_root):
    missing = _run("scripts/train_cifar.sh", "wrn", "cifar10", AUGMIX_DATA_ROOT=str(tmp_path / "nowhere"))
    assert missing.returncode == 2 and "cifar-10-batches-py" in missing.stderr and not missing.stdout
    assert "config cifar10_nonet.yaml not found" in _run("scripts/train_cifar.sh", "nonet", "cifar10",
                                                         AUGMIX_DATA_ROOT=str(data_root)).stderr
    assert "GPUS must be a positive integer" in _run("scripts/train_cifar.sh", GPUS="two",
                                                      AUGMIX_DATA_ROOT=str(data_root)).stderr
    no_ckpt = _run("scripts/slurm/evaluate.sbatch", str(tmp_path / "missing.pt"), "imagenet-c",
                   AUGMIX_DATA_ROOT=str(data_root))
    assert no_ckpt.returncode == 2 and "missing.pt does not exist" in no_ckpt.stderr


def test_imagenet_scripts_train_then_evaluate_under_torchrun(data_root):
    proc = _run("scripts/train_imagenet_ddp.sh", "optim.lr=0.2", GPUS="8", AUGMIX_DATA_ROOT=str(data_root))
    assert proc.returncode == 0, proc.stderr
    train, evaluate = proc.stdout.splitlines()
    assert train == ("+ torchrun --standalone --nproc_per_node 8 train.py --config imagenet_resnet50.yaml "
                     "--resume auto train.out_dir=runs/imagenet_resnet50 eval.suites=\\[\\] optim.lr=0.2")
    assert evaluate.startswith("+ torchrun --standalone --nproc_per_node 8 evaluate.py --ckpt "
                               "runs/imagenet_resnet50/last.pt --suite imagenet-c")
    single = _run("scripts/train_imagenet.sh", AUGMIX_DATA_ROOT=str(data_root), PYTHON="py")
    assert single.stdout == "+ py train.py --config imagenet_resnet50.yaml --resume auto\n"


def test_slurm_scripts_rendezvous_on_the_first_node(tmp_path, data_root):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "scontrol").write_text("#!/bin/sh\nprintf 'gpu-a01\\ngpu-a02\\n'\n")
    (bin_dir / "scontrol").chmod(0o755)
    slurm = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "SLURM_JOB_NODELIST": "gpu-a[01-02]",
             "SLURM_JOB_NUM_NODES": "2", "SLURM_JOB_ID": "77", "AUGMIX_DATA_ROOT": str(data_root)}
    train = _run("scripts/slurm/train_imagenet.sbatch", "train.batch_size=512", **slurm)
    assert train.returncode == 0, train.stderr
    assert train.stdout.startswith(
        "+ srun --kill-on-bad-exit=1 torchrun --nnodes 2 --nproc-per-node 8 --rdzv-id 77 --rdzv-backend c10d "
        "--rdzv-endpoint gpu-a01:29500 train.py --config imagenet_resnet50.yaml --resume auto")
    assert train.stdout.rstrip().endswith("train.batch_size=512")
    ckpt = tmp_path / "run" / "last.pt"
    ckpt.parent.mkdir()
    ckpt.write_bytes(b"")
    evaluate = _run("scripts/slurm/evaluate.sbatch", str(ckpt), "imagenet-c", **slurm)
    assert evaluate.returncode == 0, evaluate.stderr
    assert "--rdzv-endpoint gpu-a01:29500 evaluate.py --ckpt" in evaluate.stdout
    generate = _run("scripts/slurm/generate_imagenet_c.sbatch", AUGMIX_DATA_ROOT=str(data_root),
                    SLURM_ARRAY_TASK_ID="3", SLURM_ARRAY_TASK_COUNT="16", PYTHON="py")
    assert generate.returncode == 0, generate.stderr
    assert generate.stdout.startswith("+ py generate.py c --source imagefolder") and "--shard 3/16" in generate.stdout
    unsharded = _run("scripts/slurm/generate_imagenet_c.sbatch", AUGMIX_DATA_ROOT=str(data_root))
    assert unsharded.returncode != 0 and "sbatch --array" in unsharded.stderr
