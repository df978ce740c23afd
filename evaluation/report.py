"""Results on disk and on paper: results.json (versioned schema), results.md (the tables
a paper prints), PNG plots, TensorBoard scalars and a side-by-side comparison of runs.

results.json stores metrics as the functions of evaluation/metrics.py return them: error-like values as fractions
(results.md and compare print them x100), distances, NLL and Brier in their own units.
"""

from __future__ import annotations

import io
import json
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from runtime.files import atomic_write_bytes, atomic_write_json, atomic_write_text

SCHEMA = "augmix-robustness/eval-results"
SCHEMA_VERSION = 1
UNITS = ("error, CE, rCE, mCE, FP, FR, mFR, mT5D, calibration errors and accuracies are fractions (x100 for the "
         "percentages papers print); top5_distance and zipf_distance are mean distances per frame pair; nll in "
         "nats; brier in [0, 2]; seconds are wall-clock")
CIFAR_C_NOTE = ("mean corruption error = unnormalised mean of the 15 benchmark corruptions x 5 severities "
                "(CIFAR convention, no AlexNet normalisation); extra corruptions are listed, never averaged in")

# (aggregate key, label, scale) per suite kind: what headline tables, compare and TensorBoard show.
HEADLINES: Mapping[str, tuple[tuple[str, str, float], ...]] = {
    "clean": (("error", "top-1 error (%)", 100.0), ("nll", "NLL (nats)", 1.0), ("brier", "Brier score", 1.0)),
    "corruption-cifar": (
        ("corruption_error", "mean corruption error, 15 corruptions x 5 severities (%)", 100.0),
        ("corruption_error_19", "mean corruption error over all 19 corruptions (incl. extra) (%)", 100.0)),
    "corruption-imagenet": (
        ("mce", "mCE, AlexNet-normalised, 15 corruptions (%)", 100.0),
        ("relative_mce", "relative mCE (%)", 100.0),
        ("mean_error", "unnormalised mean error, 15 x 5 (not mCE) (%)", 100.0),
        ("mean_accuracy", "mean accuracy over 15 x 5 cells, RobustBench headline (%)", 100.0),
        ("mean_error_19", "unnormalised mean error over all 19 corruptions (%)", 100.0)),
    "perturbation": (
        ("mfp", "mFP: mean flip probability, ImageNet-P test list, unnormalised (%)", 100.0),
        ("mean_top5_distance", "mean top-5 distance, unnormalised", 1.0),
        ("cifar_p_mfp_script", "cifar_p_mfp_script: mean FP, authors' CIFAR-P list (spatter) (%)", 100.0),
        ("cifar_p_mfp_benchmark", "cifar_p_mfp_benchmark: mean FP, ImageNet-P test list (snow) (%)", 100.0),
        ("mfr", "mFR, normalised by the baseline (%)", 100.0),
        ("mt5d", "mT5D, normalised by the baseline (%)", 100.0)),
    "calibration": (
        ("rms_calib_error_hendrycks", "RMS calibration error, paper-compatible (last 100-sample bin skipped) (%)",
         100.0),
        ("rms_calib_error", "RMS calibration error, corrected (all bins) (%)", 100.0),
        ("ece_15", "ECE-15, (lower, upper] bins (%)", 100.0),
        ("mce_15", "MCE-15, largest bin gap (%)", 100.0),
        ("nll", "NLL (nats)", 1.0), ("brier", "Brier score", 1.0)),
}
CALIBRATION_KEYS = ("rms_calib_error_hendrycks", "rms_calib_error", "ece_15", "mce_15")


def new_results(checkpoint: Mapping[str, Any], config: Mapping[str, Any], env: Mapping[str, Any]) -> dict:
    """The skeleton of results.json: schema, checkpoint identity, evaluation config, environment; suites are added
    as they finish."""
    return {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "units": UNITS, "checkpoint": dict(checkpoint), "config": dict(config), "environment": dict(env),
            "suites": {}, "timing": {}}


def load_results(path: str | Path) -> dict:
    """Read a results.json (or the folder holding one), checking the schema.

    Raises:
        FileNotFoundError / ValueError: naming the file and what was expected.
    """
    path = Path(path)
    path = path / "results.json" if path.is_dir() else path
    if not path.is_file():
        raise FileNotFoundError(f"results file {path} does not exist")
    try:
        results = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(results, dict) or results.get("schema") != SCHEMA:
        raise ValueError(f"{path} is not an evaluation results file (schema {SCHEMA!r} expected)")
    if results.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(f"{path}: results schema version {results.get('schema_version')} is not supported "
                         f"(this code reads version {SCHEMA_VERSION})")
    return results


def write_report(out_dir: str | Path, results: Mapping, baseline: Mapping | None = None,
                 plots: bool = True) -> list[Path]:
    """Write results.json, results.md and the plots into ``out_dir``; returns the files written.

    Args:
        baseline: another run's results, drawn beside ours in the per-corruption plots.
    """
    out_dir = Path(out_dir)
    atomic_write_json(out_dir / "results.json", results)
    atomic_write_text(out_dir / "results.md", render_markdown(results))
    written = [out_dir / "results.json", out_dir / "results.md"]
    if plots:
        written += write_plots(out_dir, results, baseline)
    return written


def _pct(value: float | None, digits: int = 2) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.{digits}f}"


def _num(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def headline_kind(suite: Mapping) -> str:
    """The key of HEADLINES for a suite result."""
    if suite["kind"] == "corruption":
        return f"corruption-{suite.get('benchmark', 'cifar')}"
    return suite["kind"]


def headline_metrics(results: Mapping) -> dict[str, tuple[str, float]]:
    """``{"<suite>/<key>": (label, displayed value)}`` of every headline number present, displayed values scaled
    as printed (percent where the label says so)."""
    out = {}
    for name, suite in results["suites"].items():
        aggregates = suite.get("aggregates", {})
        partial = "" if aggregates.get("complete", True) else " [partial]"
        for key, label, scale in HEADLINES[headline_kind(suite)]:
            if aggregates.get(key) is not None:
                out[f"{name}/{key}"] = (label + partial, scale * aggregates[key])
    return out


def render_markdown(results: Mapping) -> str:
    """results.md: provenance, then per suite the tables a paper prints and the aggregates, every value labelled."""
    ckpt, env = results["checkpoint"], results["environment"]
    lines = [f"# Robustness evaluation: {ckpt.get('name')} ({ckpt.get('dataset')})", "",
             f"- checkpoint: `{ckpt.get('path')}` (source {ckpt.get('source')}, epoch {ckpt.get('epoch')}, "
             f"sha256 {str(ckpt.get('sha256'))[:16]}...)",
             f"- created {results.get('created')} on {env.get('gpu', env.get('device'))}, torch {env.get('torch')}; "
             f"batch size {results['config'].get('batch_size')}, "
             f"autocast {results['config'].get('autocast_dtype') or 'off'}, channels_last "
             f"{results['config'].get('channels_last')}",
             "- values in percent unless stated; results.json holds the same numbers as fractions", ""]
    renderers = {"clean": _md_clean, "calibration": _md_calibration, "corruption": _md_corruption,
                 "perturbation": _md_perturbation}
    for name, suite in results["suites"].items():
        lines += [f"## {name}", "", f"- data: {_describe_source(suite)}"]
        lines += [f"- {note}" for note in suite.get("notes", [])]
        lines += [""] + renderers[suite["kind"]](suite) + [""]
    return "\n".join(lines).rstrip() + "\n"


def _describe_source(suite: Mapping) -> str:
    source = suite.get("source", {})
    if source.get("kind") == "generated":
        return (f"GENERATED in memory from the clean test set by corruptions/ (seed {source.get('seed')}, preset "
                f"{source.get('preset')}): not the released files, so not comparable with leaderboard numbers")
    if source.get("kind") == "clean":
        text = f"clean test set: {source.get('path')}"
    else:
        text = f"{source.get('kind', 'released')} files at `{source.get('path')}`"
    return text + (f"; {suite['preprocessing']}" if suite.get("preprocessing") else "")


def _md_clean(suite: Mapping) -> list[str]:
    agg = suite["aggregates"]
    return _table(["metric", "value"], [["images", str(agg.get("n"))], ["top-1 error (%)", _pct(agg.get("error"))],
                                        ["NLL (nats)", _num(agg.get("nll"))], ["Brier score", _num(agg.get("brier"))]])


def _md_calibration(suite: Mapping) -> list[str]:
    agg = suite["aggregates"]
    rows = [[label, _pct(agg.get(key)) if scale == 100.0 else _num(agg.get(key))]
            for key, label, scale in HEADLINES["calibration"]]
    return _table([f"metric (clean test set, {agg.get('n')} images)", "value"], rows)


def _md_corruption(suite: Mapping) -> list[str]:
    agg = suite["aggregates"]
    imagenet = suite.get("benchmark") == "imagenet"
    errors = cell_errors(suite)
    severities = sorted({s for per in errors.values() for s in per})
    header = ["corruption"] + [f"s{s}" for s in severities] + ["mean"] + (["CE", "rCE"] if imagenet else [])
    rows = []
    for name, per in errors.items():
        row = [name + (" (extra)" if name in agg.get("extra", {}) else "")]
        row += [_pct(per.get(s)) for s in severities] + [_pct(sum(per.values()) / len(per))]
        if imagenet:
            row += [_pct(agg.get("ce", {}).get(name), 1), _pct(agg.get("rce", {}).get(name), 1)]
        rows.append(row)
    per_sev = agg.get("per_severity", {})
    mean_key = "mean_error" if imagenet else "corruption_error"
    rows.append(["**mean, benchmark corruptions**"] + [_pct(per_sev.get(str(s))) for s in severities]
                + [_pct(agg.get(mean_key))] + (["", ""] if imagenet else []))
    lines = ["Top-1 error (%) per corruption and severity:", ""] + _table(header, rows) + [""]
    partial = "" if agg.get("complete") else (f" — PARTIAL: {len(agg.get('corruptions_in_mean', []))} of 15 "
                                              "benchmark corruptions or not all 5 severities; not the published metric")
    if imagenet:
        lines.append(f"- **mCE** (AlexNet-normalised, mean CE over the 15 benchmark corruptions): "
                     f"**{_pct(agg.get('mce'))} %**{partial}")
        if agg.get("relative_mce") is not None:
            lines.append(f"- **relative mCE**: {_pct(agg['relative_mce'])} % (AlexNet clean error used: "
                         f"{_pct(agg['alexnet_clean_error'], 3)} %; clean error {_pct(agg.get('clean_error'))} %)")
        lines.append(f"- unnormalised mean error (15 x 5, not mCE): {_pct(agg.get('mean_error'))} %; mean accuracy "
                     f"(RobustBench headline): {_pct(agg.get('mean_accuracy'))} %")
        if agg.get("mean_error_19") is not None:
            lines.append(f"- unnormalised mean error over all 19 corruptions (incl. extra): "
                         f"{_pct(agg['mean_error_19'])} %")
    else:
        lines.append(f"- **mean corruption error** (15 corruptions x 5 severities, unnormalised): "
                     f"**{_pct(agg.get('corruption_error'))} %**{partial}")
        if agg.get("corruption_error_19") is not None:
            lines.append(f"- mean corruption error over all 19 corruptions (incl. extra): "
                         f"{_pct(agg['corruption_error_19'])} %")
    return lines + [""] + _md_corruption_calibration(agg.get("calibration", {}))


def _md_corruption_calibration(calib: Mapping) -> list[str]:
    if not calib:
        return []
    rows = [[label] + [_pct(calib.get(where, {}).get(key)) for where in ("mean_over_cells", "pooled")]
            for key, label, _ in HEADLINES["calibration"] if key in CALIBRATION_KEYS]
    return (["Calibration on corrupted data (mean over cells: each cell on its own images; pooled: all corrupted "
             "predictions of the benchmark corruptions at once):", ""]
            + _table(["metric", "mean over cells", "pooled"], rows))


def _md_perturbation(suite: Mapping) -> list[str]:
    agg = suite["aggregates"]
    normalised = "flip_rate" in agg
    header = ["perturbation", "difficulty", "videos", "frames", "FP (%)", "uT5D", "Zipf"]
    header += ["FR (%)", "T5D ratio (%)"] if normalised else []
    rows = []
    for cell in suite["cells"]:
        p = cell["perturbation"]
        shown = p if cell.get("file", p) == p else f"{p} (file {cell['file']})"
        row = [shown, str(cell["difficulty"]), str(cell["videos"]), str(cell["frames"]),
               _pct(cell["flip_probability"], 3), _num(cell["top5_distance"]), _num(cell["zipf_distance"], 4)]
        if normalised:
            row += [_pct(agg["flip_rate"].get(p), 1), _pct(agg["t5d_ratio"].get(p), 1)]
        rows.append(row)
    lines = _table(header, rows) + [""]
    partial = "" if agg.get("complete") else " (PARTIAL: not all 10 ImageNet-P test perturbations)"
    for key, label, scale in HEADLINES["perturbation"]:
        if agg.get(key) is not None:
            value = _pct(agg[key], 3) + " %" if scale == 100.0 else _num(agg[key])
            lines.append(f"- {label.replace(' (%)', '')}: **{value}**" + (partial if key in ("mfp", "mfr") else ""))
    baseline = suite.get("baseline")
    if baseline:
        lines.append(f"- baseline for FR/T5D ratios: {baseline.get('name')} (sha256 {str(baseline.get('sha256'))[:16]}"
                     f"...), evaluated on the same data; normalised values compare only across runs sharing it")
    return lines


def cell_errors(suite: Mapping) -> dict[str, dict[int, float]]:
    """corruption -> severity -> error of a corruption suite result, in the order the cells were evaluated."""
    errors: dict[str, dict[int, float]] = {}
    for cell in suite["cells"]:
        errors.setdefault(cell["corruption"], {})[int(cell["severity"])] = cell["error"]
    return errors


def write_plots(out_dir: str | Path, results: Mapping, baseline: Mapping | None = None) -> list[Path]:
    """PNG plots: per corruption suite, error per corruption (beside ``baseline``'s, when given) and error vs
    severity; the reliability diagram of the calibration suite."""
    out_dir = Path(out_dir)
    written = []
    for name, suite in results["suites"].items():
        if suite["kind"] == "corruption":
            other = (baseline or {}).get("suites", {}).get(name)
            written.append(_save(_plot_corruption_errors(name, suite, other, results), out_dir / f"{name}_errors.png"))
            written.append(_save(_plot_error_vs_severity(name, suite), out_dir / f"{name}_severity.png"))
        elif suite["kind"] == "calibration" and suite.get("reliability"):
            written.append(_save(_plot_reliability(suite["reliability"]), out_dir / "reliability.png"))
    return written


def _figure(width: float = 8.0, height: float = 4.5):
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend (Agg canvas on savefig)

    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, fig.subplots()


def _save(fig, path: Path) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def _plot_corruption_errors(name: str, suite: Mapping, baseline_suite: Mapping | None, results: Mapping):
    errors = cell_errors(suite)
    names = list(errors)
    ours = [100 * sum(v.values()) / len(v) for v in errors.values()]
    fig, ax = _figure(max(8.0, 0.45 * len(names)))
    x = np.arange(len(names))
    if baseline_suite is not None:
        theirs = cell_errors(baseline_suite)
        ax.bar(x - 0.2, [100 * sum(theirs[c].values()) / len(theirs[c]) if c in theirs else 0 for c in names], 0.4,
               label="baseline", color="#bbbbbb")
        ax.bar(x + 0.2, ours, 0.4, label=results["checkpoint"].get("name", "this run"), color="#3a6ea5")
    else:
        ax.bar(x, ours, 0.7, label=results["checkpoint"].get("name", "this run"), color="#3a6ea5")
    clean = results["suites"].get("clean", {}).get("aggregates", {}).get("error")
    if clean is not None:
        ax.axhline(100 * clean, color="k", linestyle="--", linewidth=1, label="clean error")
    ax.set_xticks(x, names, rotation=60, ha="right")
    ax.set_ylabel("top-1 error (%), mean over severities")
    ax.set_title(f"{name}: error per corruption")
    ax.legend()
    return fig


def _plot_error_vs_severity(name: str, suite: Mapping):
    errors = cell_errors(suite)
    fig, ax = _figure()
    for corruption, per in errors.items():
        severities = sorted(per)
        ax.plot(severities, [100 * per[s] for s in severities], marker="o", linewidth=1, alpha=0.6, label=corruption)
    per_sev = suite["aggregates"].get("per_severity", {})
    if per_sev:
        sev = sorted(int(s) for s in per_sev)
        ax.plot(sev, [100 * per_sev[str(s)] for s in sev], color="k", linewidth=3, label="mean (benchmark)")
    ax.set_xlabel("severity")
    ax.set_ylabel("top-1 error (%)")
    ax.set_title(f"{name}: error vs severity")
    ax.legend(fontsize=6, ncol=2)
    return fig


def _plot_reliability(bins: Mapping):
    edges = np.asarray(bins["edges"])
    centres, width = (edges[:-1] + edges[1:]) / 2, np.diff(edges)
    count = np.asarray(bins["count"])
    accuracy = np.where(count > 0, np.asarray(bins["accuracy"]), np.nan)
    fig, ax = _figure(5.0, 5.0)
    ax.bar(centres, np.nan_to_num(accuracy), width, edgecolor="k", color="#3a6ea5", label="accuracy")
    ax.plot([0, 1], [0, 1], "k--", linewidth=1, label="perfect calibration")
    ax.set_xlabel("confidence (15 equal-width bins)")
    ax.set_ylabel("accuracy")
    ax.set_title("reliability diagram (clean test set)")
    ax.legend()
    return fig


def compare_results(runs: Sequence[Mapping], labels: Sequence[str] | None = None) -> str:
    """Markdown table of two or more results side by side: every headline metric, then per-corruption errors of
    each corruption suite they share. With two runs, a last column gives the difference (second - first)."""
    labels = list(labels or [r["checkpoint"].get("name", f"run{i}") for i, r in enumerate(runs)])
    heads = [headline_metrics(r) for r in runs]
    keys = [k for k in dict.fromkeys(k for h in heads for k in h)]
    delta = len(runs) == 2
    header = ["metric"] + labels + (["difference"] if delta else [])
    rows = []
    for key in keys:
        label = next(h[key][0] for h in heads if key in h)
        values = [h[key][1] if key in h else None for h in heads]
        row = [f"{key.split('/')[0]}: {label}"] + [_num(v, 2) for v in values]
        if delta:
            row.append(_num(values[1] - values[0], 2) if None not in values else "-")
        rows.append(row)
    lines = _table(header, rows)
    shared = [n for n, s in runs[0]["suites"].items()
              if s["kind"] == "corruption" and all(n in r["suites"] for r in runs[1:])]
    for name in shared:
        errors = [cell_errors(r["suites"][name]) for r in runs]
        names = [c for c in errors[0] if all(c in e for e in errors[1:])]
        per_rows = [[c] + [_pct(sum(e[c].values()) / len(e[c])) for e in errors] for c in names]
        lines += ["", f"{name}: top-1 error (%) per corruption, mean over severities", ""]
        lines += _table(["corruption"] + labels, per_rows)
    return "\n".join(lines) + "\n"


def write_tensorboard(results: Mapping, log_dir: str | Path, step: int = 0) -> None:
    """Every headline number as a scalar ``eval/<suite>/<metric>`` (displayed units) at ``step``."""
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(log_dir)) as writer:
        for key, (_, value) in headline_metrics(results).items():
            writer.add_scalar(f"eval/{key}", value, step)


def perturbation_baseline(results: Mapping) -> dict:
    """The -P normalisers of a finished run (e.g. AlexNet, or a standard-training model) in the form
    ``EvalOptions.baseline`` takes: its identity and per-suite FP_p and uT5D_p."""
    suites = {name: {"flip_probability": {c["perturbation"]: c["flip_probability"] for c in suite["cells"]},
                     "top5_distance": {c["perturbation"]: c["top5_distance"] for c in suite["cells"]}}
              for name, suite in results["suites"].items() if suite["kind"] == "perturbation"}
    return {"name": results["checkpoint"].get("name"), "sha256": results["checkpoint"].get("sha256"),
            "suites": suites}
