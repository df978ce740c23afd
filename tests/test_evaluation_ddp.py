"""Evaluation split across torchrun ranks (evaluation/sharding.py, gloo on CPU): the same results as one process,
every cell computed once by the rank it is dealt to, a half-finished store resumed, and a bad input stopping all
ranks with one message."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import evaluate
from evaluation.sharding import CellShare, deal, deal_unfinished, rank_device
from evaluation.suites import EvalOptions, plan_cells, plan_evaluation, run_evaluation
from runtime.devices import DeviceError
from runtime.distributed import DistEnv
from tests._evaluation_data import model_info, tiny_classifier, write_tiny_checkpoint

ROOT = Path(__file__).resolve().parents[1]
CELLS = ["--suite", "digits-c", "--suite", "clean", "--generate", "--corruptions", "gaussian_noise,fog", "--limit",
         "64", "--batch-size", "64", "--device", "cpu", "--no-plots", "--workers", "0"]


def _run(argv: list[str]) -> int:
    return evaluate.main(evaluate.get_args_parser().parse_args(argv))


def _torchrun(argv: list[str]) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(ROOT / "evaluate.py"), *argv]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def _comparable(results: dict) -> dict:
    """A results dict without what differs between runs of the same evaluation: times, machine, output folder."""
    out = {k: v for k, v in results.items() if k not in ("created", "environment", "timing")}
    out["config"] = {k: v for k, v in results["config"].items() if k != "out_dir"}
    out["suites"] = {name: {**{k: v for k, v in suite.items() if k != "timing"},
                            "cells": [{k: v for k, v in c.items() if k != "seconds"} for c in suite["cells"]]}
                     for name, suite in results["suites"].items()}
    return out


def _writers(out: Path) -> dict[str, dict]:
    return {f"{p.parent.name}/{p.stem}": json.loads(p.read_text()).get("writer")
            for p in sorted((out / "cells").glob("*/*.json"))}


def test_unfinished_cells_are_dealt_round_robin_once_each():
    shares = [CellShare(rank, 3) for rank in range(3)]
    assert [[s.rank for s in shares if s.owns(i)] for i in range(5)] == [[0], [1], [2], [0], [1]]
    # each rank checked its slice (0 3 6 9 | 1 4 7 | 2 5 8) and found these unfinished: pooled 1 2 4 5 6 8 9
    unfinished = [[6, 9], [1, 4], [2, 5, 8]]
    dealt = [deal(unfinished, share) for share in shares]
    assert dealt == [[1, 5, 9], [2, 6], [4, 8]]
    assert sorted(i for part in dealt for i in part) == [1, 2, 4, 5, 6, 8, 9]
    assert deal_unfinished(CellShare(), 4, lambda i: i == 2) == [0, 1, 3]  # one process: no group needed
    assert CellShare.from_env(DistEnv(rank=1, local_rank=1, world_size=4)) == CellShare(1, 4)
    assert not CellShare().enabled and CellShare(1, 2).enabled
    with pytest.raises(ValueError, match="rank=2, world_size=2"):
        CellShare(2, 2)


def test_a_share_of_several_ranks_needs_their_process_group(tmp_path):
    options = EvalOptions(out_dir=str(tmp_path), generate=True, corruptions=("fog",), severities=(1,), limit=64)
    with pytest.raises(ValueError, match="a share of 2 ranks needs a process group of that size"):
        run_evaluation(tiny_classifier(), model_info("digits", 10), ["digits-c"], options, share=CellShare(1, 2))
    assert not tmp_path.joinpath("cells").exists()


def test_rank_device_is_the_cpu_or_each_ranks_own_gpu():
    env = DistEnv(rank=1, local_rank=1, world_size=2)
    assert rank_device("cpu", env) == torch.device("cpu")
    assert rank_device("auto", DistEnv()).type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="CUDA is not available"):
            rank_device("cuda", env)
        return
    with pytest.raises(DeviceError, match="each rank uses cuda:LOCAL_RANK"):
        rank_device("cuda:0", env)
    if torch.cuda.device_count() > 1:
        assert rank_device("cuda", env) == torch.device("cuda", 1)


def test_the_plan_lists_every_cell_once(tmp_path):
    options = EvalOptions(out_dir=str(tmp_path), generate=True, corruptions=("fog",), severities=(1, 2), limit=100)
    info = model_info("digits", 10)
    plan = plan_evaluation(["clean", "digits-c", "calibration"], options, "digits", 10)
    from evaluation.store import CellStore
    from evaluation.suites import _Context

    cells = plan_cells(_Context(None, info, options, CellStore(None)), plan)
    assert [(c.suite, c.key) for c in cells] == [("clean", "clean"), ("digits-c", "fog-1"), ("digits-c", "fog-2")]


def test_two_ranks_resume_a_one_process_store_and_match_one_process(tmp_path):
    """A one-process run stopped after severity 1 leaves its cells; 2 ranks under torchrun finish the suite,
    computing each missing cell exactly once, and report what one uninterrupted process reports."""
    ckpt = write_tiny_checkpoint(tmp_path / "tiny.pt")
    assert _run(["--ckpt", str(ckpt), *CELLS, "--severities", "1,3", "--out", str(tmp_path / "one")]) == 0
    assert _run(["--ckpt", str(ckpt), *CELLS, "--severities", "1", "--out", str(tmp_path / "two")]) == 0
    before = _writers(tmp_path / "two")
    proc = _torchrun(["--ckpt", str(ckpt), *CELLS, "--severities", "1,3", "--out", str(tmp_path / "two")])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    one = json.loads((tmp_path / "one" / "results.json").read_text())
    two = json.loads((tmp_path / "two" / "results.json").read_text())
    assert _comparable(two) == _comparable(one)
    assert two["timing"]["ranks"] == 2 and two["suites"]["digits-c"]["timing"]["cells_computed"] == 2
    writers = _writers(tmp_path / "two")
    assert {k: writers[k] for k in before} == before  # finished cells reused, not rewritten
    assert {k: (w["rank"], w["world_size"]) for k, w in writers.items() if k not in before} == {
        "digits-c/gaussian_noise-3": (0, 2), "digits-c/fog-3": (1, 2)}  # the 2 unfinished cells, one per rank
    computed = sorted(line.split(": error")[0] for line in proc.stdout.splitlines() if line.startswith("rank "))
    assert computed == ["rank 0/2: [digits-c] gaussian_noise s3", "rank 0/2: computes 1 of the plan's 5 cells",
                        "rank 1/2: [digits-c] fog s3", "rank 1/2: computes 1 of the plan's 5 cells"]
    assert proc.stdout.count("wrote ") == 1  # rank 0 alone reports


def test_a_bad_input_stops_every_rank_with_one_message(tmp_path):
    ckpt = write_tiny_checkpoint(tmp_path / "tiny.pt")
    proc = _torchrun(["--ckpt", str(ckpt), *CELLS, "--severities", "1", "--corruptions", "fogg",
                      "--out", str(tmp_path / "out")])
    assert proc.returncode != 0
    assert proc.stderr.count("unknown value(s) fogg (did you mean 'fog'?)") == 1, proc.stderr
    assert not (tmp_path / "out").exists()
