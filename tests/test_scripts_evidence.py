"""scripts/reproduce_digits.sh and scripts/gpu_check.sh run end to end in their reduced forms (QUICK=1,
--cpu-smoke), so the evidence pipelines cannot rot; their input checks and dry runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _bash(script: str, *args: str, timeout: int = 600, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(ROOT / script), *args], env={**os.environ, "PYTHON": sys.executable, **env},
                          capture_output=True, text=True, timeout=timeout)


def _table(text: str, first: str) -> list[list[str]]:
    """The rows (cells stripped) of the markdown table whose header starts with ``| first |``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first} |"))
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    assert set("".join(rows[1])) <= set("-|"), "the second line of a table is its separator"
    return [rows[0]] + rows[2:]


@pytest.mark.slow
def test_reproduce_digits_quick_writes_the_report_and_resumes(tmp_path):
    out = tmp_path / "reproduce"
    proc = _bash("scripts/reproduce_digits.sh", QUICK="1", OUT=str(out))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for name in ("report.md", "compare.md", "compare.json", "compare_digits-c.png", "commands.txt", "log.txt"):
        assert (out / name).is_file(), name
    for variant in ("standard", "augmix", "augmix_jsd"):
        assert (out / f"{variant}_s1" / "eval" / "results.json").is_file()
    compare = (out / "compare.md").read_text()
    header, *rows = _table(compare, "metric")
    assert header == ["metric", "standard", "augmix", "augmix_jsd"]
    values = {row[0]: row[1:] for row in rows}
    clean = values["clean: top-1 error (%)"]
    assert all(0.0 <= float(v) <= 100.0 for v in clean)
    # severity 3 only: the digits-C mean is marked as partial, never passed off as the benchmark number
    mean = values["digits-c: mean corruption error, 15 corruptions x 5 severities (%)"]
    assert all(v.endswith("(partial)") for v in mean)
    header, *per_corruption = _table(compare, "corruption")
    assert len(per_corruption) == 19 and per_corruption[0][0] == "gaussian_noise"
    data = json.loads((out / "compare.json").read_text())
    assert [g["label"] for g in data["groups"]] == ["standard", "augmix", "augmix_jsd"]
    report = (out / "report.md").read_text()
    assert "QUICK=1 smoke run" in report and compare.rstrip() in report and "compare_digits-c.png" in report
    assert "train.py --config quickstart.yaml --resume auto" in report and "augment.mode=standard" in report
    assert f"torch {__import__('torch').__version__}" in report
    # a second call skips the finished runs and rewrites the report
    again = _bash("scripts/reproduce_digits.sh", QUICK="1", OUT=str(out))
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count(": finished (eval/results.json at epoch 1), skipped") == 3
    assert "train.py" not in again.stdout.split("skipped")[-1].split("evaluate.py")[0]


def test_reproduce_digits_dry_run_groups_the_seeds_and_checks_inputs(tmp_path):
    proc = _bash("scripts/reproduce_digits.sh", DRY_RUN="1", OUT=str(tmp_path / "r"), VARIANTS="standard augmix_jsd",
                 SEEDS="1 2 3", timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 7 and not (tmp_path / "r").exists()
    assert lines[0].endswith(f"train.py --config quickstart.yaml --resume auto train.out_dir={tmp_path}/r/standard_s1 "
                             "train.seed=1 train.epochs=10 augment.mode=standard")
    assert lines[5].endswith(f"train.out_dir={tmp_path}/r/augmix_jsd_s3 train.seed=3 train.epochs=10")
    compare = lines[6].replace("\\,", ",")  # printf %q writes a comma as \,
    assert "--labels standard,augmix_jsd,standard,augmix_jsd,standard,augmix_jsd --out" in compare
    bad_seed = _bash("scripts/reproduce_digits.sh", DRY_RUN="1", SEEDS="1 two", timeout=60)
    assert bad_seed.returncode == 2 and "SEEDS must be whole numbers" in bad_seed.stderr
    bad_variant = _bash("scripts/reproduce_digits.sh", DRY_RUN="1", VARIANTS="standard mixup", timeout=60)
    assert bad_variant.returncode == 2 and "unknown variant mixup" in bad_variant.stderr
    bad_epochs = _bash("scripts/reproduce_digits.sh", DRY_RUN="1", EPOCHS="0", timeout=60)
    assert bad_epochs.returncode == 2 and "EPOCHS must be a positive integer" in bad_epochs.stderr


@pytest.mark.slow
def test_gpu_check_cpu_smoke_runs_every_step_into_one_summary(tmp_path):
    proc = _bash("scripts/gpu_check.sh", "--cpu-smoke", "--log-dir", str(tmp_path), timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("BENCH ")
    summary = json.loads(last[len("BENCH "):])
    assert summary["smoke"] is True and summary["ok"] is True
    assert set(summary["steps"]) == {"gpu_tests", "augmix_throughput", "train_step_overhead", "train_epoch_throughput",
                                     "corruptions_throughput", "eval_throughput"}
    checks = [row["check"] for row in summary["rows"]]
    assert checks[:3] == ["gpu-marked tests (pytest -m gpu)", "AugMix views/s at 32 px", "AugMix views/s at 224 px"]
    assert all(isinstance(row["value"], (int, float)) for row in summary["rows"])
    header, *rows = _table((tmp_path / "summary.md").read_text(), "check")
    assert header == ["check", "result", "target", "met"] and len(rows) == len(summary["rows"]) == 7
    assert (tmp_path / "eval_throughput.log").read_text().splitlines()[-1].startswith("BENCH ")


def test_gpu_check_without_cuda_asks_for_the_cpu_smoke(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the full check would run")
    proc = _bash("scripts/gpu_check.sh", "--log-dir", str(tmp_path), timeout=120)
    assert proc.returncode == 2 and "no CUDA device here; run with --cpu-smoke" in proc.stderr
    bad = _bash("scripts/gpu_check.sh", "--cpu-smoke", "--only", "gpu_tests,warp_drive", timeout=120)
    assert bad.returncode == 2 and "unknown step(s) warp_drive" in bad.stderr
