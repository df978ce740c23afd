"""GPU validation in one call: the ``gpu``-marked tests and the headline benchmarks, read from their ``BENCH {json}``
lines into one summary table.

    bash scripts/gpu_check.sh                # a CUDA machine: under 8 minutes
    bash scripts/gpu_check.sh --cpu-smoke    # the same pipeline reduced (--quick, --device cpu, tiny sizes), ~2 min

Steps, each a subprocess with its own time limit (all together within --budget seconds, 450 on a GPU) and its full
output in --log-dir/<step>.log:
``pytest -m gpu``; bench/augmix_throughput.py (views/s at 32 and 224 px: ours, the PIL backend, torchvision);
bench/train_step_overhead.py (AugMix + JSD step over the step on pre-made views, WRN-40-2, batch 128);
bench/train_epoch_throughput.py (train.py images/s on a synthetic CIFAR-10, projected 100-epoch recipe);
bench/corruptions_throughput.py (glass blur at 224 px, ours vs the per-image package); bench/eval_throughput.py
(evaluation over bare inference, bf16 autocast on CUDA). A step that fails or runs out of time is reported as such
and the others still run. Targets (a GPU's, not judged in the CPU smoke): ours > 100,000 AugMix views/s at 32 px,
step ratio <= 1.15, evaluation / bare >= 0.9.

Exit status: 0 when every step ran and no test failed, 1 otherwise, 2 for a usage error (no CUDA without
--cpu-smoke). Last lines: one ``BENCH {json}`` per check, then the whole summary.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from runtime.files import atomic_write_text  # noqa: E402

AUGMIX_32_TARGET = 100_000   # views/s of ours at 32 px on one GPU
STEP_RATIO_TARGET = 1.15     # AugMix + JSD step / step on pre-made views
EVAL_RATIO_TARGET = 0.9      # evaluation / bare inference
GPU_BUDGET_S = 450           # all steps on a GPU: the whole check stays under 8 minutes with start-up
SMOKE_BUDGET_S = 240


@dataclass(frozen=True)
class Step:
    """One check: the command for a GPU and for the CPU smoke (arguments after the script), and time limits."""

    name: str
    script: str              # a bench/ script, or "pytest"
    gpu_args: tuple[str, ...]
    smoke_args: tuple[str, ...]
    gpu_timeout_s: int
    smoke_timeout_s: int


STEPS = (
    Step("gpu_tests", "pytest", ("-m", "gpu", "-q", "-p", "no:cacheprovider", "tests"),
         ("-m", "gpu", "-q", "-p", "no:cacheprovider", "tests"), 180, 120),
    Step("augmix_throughput", "bench/augmix_throughput.py", ("--device", "cuda", "--sizes", "32", "224"),
         ("--quick", "--device", "cpu", "--sizes", "32", "224"), 60, 90),
    Step("train_step_overhead", "bench/train_step_overhead.py",
         ("--device", "cuda", "--batch", "128", "--depth", "40", "--width", "2"),
         ("--quick", "--device", "cpu", "--depth", "10"), 45, 90),
    Step("train_epoch_throughput", "bench/train_epoch_throughput.py", ("--device", "cuda", "--timeout", "140"),
         ("--quick", "--device", "cpu"), 150, 120),
    Step("corruptions_throughput", "bench/corruptions_throughput.py",
         ("--device", "cuda", "--corruptions", "glass_blur"), ("--quick", "--device", "cpu", "--corruptions",
                                                                "glass_blur"), 60, 90),
    Step("eval_throughput", "bench/eval_throughput.py", ("--device", "cuda"),
         ("--quick", "--device", "cpu", "--images", "200"), 45, 90),
)


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], add_help=add_help)
    parser.add_argument("--cpu-smoke", action="store_true",
                        help="run the same pipeline reduced on the CPU (each bench's --quick, tiny sizes; default off)")
    parser.add_argument("--log-dir", default=None,
                        help="folder for each step's output and summary.md (default: runs/gpu_check/<time>)")
    parser.add_argument("--budget", type=float, default=None,
                        help="seconds for all steps together: each step's limit is cut to what is left "
                             f"(default {GPU_BUDGET_S} on a GPU, {SMOKE_BUDGET_S} for --cpu-smoke)")
    parser.add_argument("--only", default=None,
                        help=f"comma list of steps to run (default all: {', '.join(s.name for s in STEPS)})")
    return parser


def run_step(step: Step, smoke: bool, log_dir: Path, left_s: float) -> dict:
    """Run one step within its own limit and the ``left_s`` seconds left of the budget; returns {"status": ok |
    failed | timeout | skipped, "rc", "seconds", "bench": its BENCH json or None, "tail": the last output lines when
    it did not succeed}."""
    args = step.smoke_args if smoke else step.gpu_args
    if step.script == "pytest":
        argv = [sys.executable, "-m", "pytest", *args]
    else:
        argv = [sys.executable, str(ROOT / step.script), *args]
    timeout = min(step.smoke_timeout_s if smoke else step.gpu_timeout_s, int(left_s))
    if timeout < 5:
        print(f"[{step.name}] skipped: the time budget is spent (--budget)", flush=True)
        return {"status": "skipped", "rc": None, "seconds": 0.0, "bench": None, "tail": []}
    print(f"[{step.name}] {' '.join(argv[1:])} (limit {timeout} s)", flush=True)
    start = time.perf_counter()
    # its own process group, so that a timeout also ends what it started (train.py under the epoch bench)
    proc = subprocess.Popen(argv, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
        rc, status = proc.returncode, "ok" if proc.returncode == 0 else "failed"
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        rc, status = None, "timeout"
    output = stdout + stderr
    seconds = time.perf_counter() - start
    atomic_write_text(log_dir / f"{step.name}.log", f"$ {' '.join(argv)}\n{output}")
    bench = None
    for line in output.splitlines():
        if line.startswith("BENCH "):
            bench = json.loads(line[len("BENCH "):])
    result = {"status": status, "rc": rc, "seconds": seconds, "bench": bench}
    if step.script == "pytest":
        result["tests"] = _pytest_counts(output)
        if status == "failed" and rc == 5 and not result["tests"].get("failed"):
            result["status"] = "ok"  # exit 5: no test collected for the marker, nothing failed
    elif status == "ok" and bench is None:
        result["status"] = "failed"  # the script must end with BENCH {json}
    if result["status"] != "ok":
        result["tail"] = output.strip().splitlines()[-15:]
    print(f"[{step.name}] {result['status']} in {seconds:.0f} s", flush=True)
    return result


def _pytest_counts(output: str) -> dict[str, int]:
    """{"passed": n, "skipped": n, ...} from pytest's last summary line."""
    summary = [line for line in output.splitlines() if re.search(r"\b(passed|failed|skipped|deselected|error)", line)]
    counts: dict[str, int] = {}
    for number, word in re.findall(r"(\d+) (passed|failed|skipped|deselected|errors?|xfailed|xpassed)",
                                   summary[-1] if summary else ""):
        counts["error" if word.startswith("error") else word] = int(number)
    return counts


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _met(value: float | None, ok: Callable[[float], bool], smoke: bool) -> str:
    if smoke:
        return "n/a (CPU smoke)"
    return "-" if value is None else ("yes" if ok(value) else "NO")


def summary_rows(results: dict[str, dict], smoke: bool) -> list[dict]:
    """One row per check: what was measured, the figure, the target and whether it was met."""
    rows = []
    for name, result in results.items():
        bench = result.get("bench") or {}
        if result["status"] != "ok":
            why = (f"{result['status'].upper()} (exit {result['rc']}); see {name}.log" if result["status"] != "skipped"
                   else "SKIPPED: the time budget was spent")
            rows.append({"check": name, "result": why, "target": "runs", "met": "NO", "value": None})
            continue
        rows += _ROWS[name](result, bench, smoke)
    return rows


def _tests_rows(result: dict, bench: dict, smoke: bool) -> list[dict]:
    counts = result["tests"]
    text = ", ".join(f"{n} {k}" for k, n in counts.items() if k != "deselected") or "no tests"
    failed = counts.get("failed", 0) + counts.get("error", 0)
    note = " (no CUDA)" if smoke and counts.get("skipped") and not counts.get("passed") else ""
    return [{"check": "gpu-marked tests (pytest -m gpu)", "result": text + note, "target": "none fails",
             "met": "yes" if not failed else "NO", "value": counts.get("passed", 0)}]


def _augmix_rows(result: dict, bench: dict, smoke: bool) -> list[dict]:
    rows = []
    for size in sorted({r["size"] for r in bench["rows"]}):
        by = {r["backend"].split(",")[0].split(" ")[0]: r for r in bench["rows"]
              if r["size"] == size and "compiled" not in r["backend"]}
        ours = by.get("ours", {})
        text = (f"ours {_rate(ours.get('views_per_s'))} (batch {ours.get('views_per_run')}); PIL "
                f"{_rate(by.get('PIL', {}).get('views_per_s'))}; torchvision "
                f"{_rate(by.get('torchvision', {}).get('views_per_s'))}")
        target = f"ours > {AUGMIX_32_TARGET:,}" if size == 32 else "-"
        met = _met(ours.get("views_per_s"), lambda v: v > AUGMIX_32_TARGET, smoke) if size == 32 else "-"
        rows.append({"check": f"AugMix views/s at {size} px", "result": text, "target": target, "met": met,
                     "value": ours.get("views_per_s")})
    return rows


def _step_rows(result: dict, bench: dict, smoke: bool) -> list[dict]:
    env = bench.get("env", {})
    return [{"check": f"AugMix+JSD step / pre-made views ({env.get('model', '?')}, batch {env.get('batch', '?')}, "
                      f"{env.get('amp', '?')})",
             "result": f"{bench['ratio']:.3f}", "target": f"<= {STEP_RATIO_TARGET}",
             "met": _met(bench["ratio"], lambda v: v <= STEP_RATIO_TARGET, smoke), "value": bench["ratio"]}]


def _epoch_rows(result: dict, bench: dict, smoke: bool) -> list[dict]:
    hours = bench["projected_100_epochs_s"] / 3600
    return [{"check": f"training epoch, WRN-{bench['depth']}-2 AugMix+JSD, batch {bench['batch']}, "
                      f"{bench['images']:,} synthetic CIFAR images",
             "result": f"{_rate(bench['images_per_s'])} images/s; 100-epoch CIFAR recipe ~{hours:.2f} h",
             "target": "-", "met": "-", "value": bench["images_per_s"]}]


def _corruption_rows(result: dict, bench: dict, smoke: bool) -> list[dict]:
    glass = bench.get("rows_224", {}).get("glass_blur", {})
    peer = (f"peer {glass['peer_img_s']:,.1f} img/s ({glass['ratio']:.1f}x)" if "peer_img_s" in glass
            else f"peer: {glass.get('peer_error', 'not installed')}")
    loop = (f"; {glass['ratio_vs_reference_loop']:.0f}x the reference loop"
            if glass.get("ratio_vs_reference_loop") else "")
    return [{"check": "glass blur at 224 px (ours vs per-image package)",
             "result": f"ours {_rate(glass.get('ours_img_s'))} img/s; {peer}{loop}", "target": "-", "met": "-",
             "value": glass.get("ours_img_s")}]


def _eval_rows(result: dict, bench: dict, smoke: bool) -> list[dict]:
    return [{"check": f"evaluation / bare inference ({bench.get('model')}, {bench.get('dtype')})",
             "result": f"{bench['ratio']:.3f} ({_rate(bench['eval_images_per_s'])} vs "
                       f"{_rate(bench['bare_images_per_s'])} images/s)",
             "target": f">= {EVAL_RATIO_TARGET}", "met": _met(bench["ratio"], lambda v: v >= EVAL_RATIO_TARGET, smoke),
             "value": bench["ratio"]}]


_ROWS = {"gpu_tests": _tests_rows, "augmix_throughput": _augmix_rows, "train_step_overhead": _step_rows,
         "train_epoch_throughput": _epoch_rows, "corruptions_throughput": _corruption_rows,
         "eval_throughput": _eval_rows}


def render(rows: list[dict], header: str) -> str:
    lines = [header, "", "| check | result | target | met |", "|---|---|---|---|"]
    lines += [f"| {r['check']} | {r['result']} | {r['target']} | {r['met']} |" for r in rows]
    return "\n".join(lines) + "\n"


def main(args: argparse.Namespace) -> int:
    import torch

    from runtime.environment import environment_record

    if not args.cpu_smoke and not torch.cuda.is_available():
        print("error: no CUDA device here; run with --cpu-smoke for the reduced CPU pipeline", file=sys.stderr)
        return 2
    steps = STEPS
    if args.only:
        wanted = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in wanted if n not in {s.name for s in STEPS}]
        if unknown or not wanted:
            print(f"error: --only: unknown step(s) {', '.join(unknown) or '(none given)'}; valid: "
                  f"{', '.join(s.name for s in STEPS)}", file=sys.stderr)
            return 2
        steps = tuple(s for s in STEPS if s.name in wanted)
    log_dir = Path(args.log_dir or ROOT / "runs" / "gpu_check" / time.strftime("%Y%m%d-%H%M%S"))
    log_dir.mkdir(parents=True, exist_ok=True)
    env = environment_record("cpu" if args.cpu_smoke else "cuda")
    budget = args.budget or (SMOKE_BUDGET_S if args.cpu_smoke else GPU_BUDGET_S)
    start = time.perf_counter()
    results = {}
    for step in steps:
        results[step.name] = run_step(step, args.cpu_smoke, log_dir, budget - (time.perf_counter() - start))
    seconds = time.perf_counter() - start
    rows = summary_rows(results, args.cpu_smoke)
    where = env.get("gpu") or f"{env.get('cpu')}, {env.get('cores')} cores"
    header = (f"# GPU check{' (CPU SMOKE: reduced sizes, not GPU figures)' if args.cpu_smoke else ''}: {where}; "
              f"torch {env.get('torch')}" + (f", CUDA {env['cuda']}" if env.get("cuda") else "")
              + f"; {seconds / 60:.1f} min; logs in {log_dir}")
    table = render(rows, header)
    atomic_write_text(log_dir / "summary.md", table)
    print("\n" + table)
    for row in rows:
        print("BENCH " + json.dumps({"bench": "gpu_check", **row}))
    ok = all(r["status"] == "ok" for r in results.values())  # a failed test fails its pytest step
    summary = {"bench": "gpu_check", "smoke": args.cpu_smoke, "seconds": seconds, "ok": ok, "env": env,
               "steps": {k: {key: v[key] for key in ("status", "rc", "seconds")} for k, v in results.items()},
               "rows": rows}
    print("BENCH " + json.dumps(summary))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
