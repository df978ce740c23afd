"""Results on disk and on paper: results.json (versioned schema), results.md (the tables
a paper prints), PNG plots and TensorBoard scalars (comparing runs: evaluation/compare.py).

results.json stores metrics as the functions of evaluation/metrics.py return them: error-like values as fractions
(results.md and compare.md print them x100), distances, NLL and Brier in their own units.
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

from corruptions import ALL_CORRUPTIONS, CORRUPTIONS, EXTRA_CORRUPTIONS, SEVERITIES, SUBSETS
from corruptions.sequences import IMAGENET_P_TEST
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
EXTRA, ALL_NAMES = frozenset(EXTRA_CORRUPTIONS), frozenset(ALL_CORRUPTIONS)


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
    as printed (percent where the label says so); the label ends in ``[partial]`` when the number does not cover
    its whole benchmark (see :func:`is_complete`)."""
    out = {}
    for name, suite in results["suites"].items():
        aggregates = suite.get("aggregates", {})
        for key, label, scale in HEADLINES[headline_kind(suite)]:
            if aggregates.get(key) is not None:
                partial = "" if is_complete(aggregates, key) else " [partial]"
                out[f"{name}/{key}"] = (label + partial, scale * aggregates[key])
    return out


NORMALISED_KEYS = ("mfr", "mt5d")  # -P means over the perturbations that both the run and its baseline have


def is_complete(aggregates: Mapping, key: str) -> bool:
    """Whether aggregate ``key`` covers its whole benchmark: all 15 x 5 -C cells, all 10 ImageNet-P test
    perturbations, and for mFR / mT5D those 10 in the baseline too. The CIFAR-P named means exist only when their
    whole list is present."""
    if key in NORMALISED_KEYS and "normalised_complete" in aggregates:
        return bool(aggregates["normalised_complete"])
    if key.startswith("cifar_p_mfp_"):
        return True
    return bool(aggregates.get("complete", True))


def model_label(record: Mapping) -> str:
    """What a run's model is called in titles and legends: the display name (``WRN-10-2``) of a results file's
    ``checkpoint`` record or a baseline record, else its registry name (files written before display names)."""
    record = record.get("checkpoint", record)
    return str(record.get("model") or record.get("name") or "this run")


def partial_notes(results: Mapping) -> list[str]:
    """One line per suite whose headline numbers do not cover their whole benchmark, naming what is missing;
    plus the ``limit`` on images per cell when one was set. Empty when every number is the published metric."""
    notes = []
    limit = results.get("config", {}).get("limit")
    if limit:
        notes.append(f"every cell uses only the first {limit} images / videos (--limit)")
    for name, suite in results["suites"].items():
        agg = suite.get("aggregates", {})
        if suite["kind"] == "corruption" and not agg.get("complete", True):
            notes.append(f"{name}: {_missing_cells(suite)}")
        elif suite["kind"] == "perturbation":
            if not agg.get("complete", True):
                notes.append(f"{name}: mFP / mean top-5 distance over {len(agg.get('perturbations_in_mean', []))} of "
                             f"the {len(IMAGENET_P_TEST)} ImageNet-P test perturbations; missing "
                             f"{', '.join(agg.get('missing', [])) or '?'}")
            if agg.get("normalised_complete") is False and agg.get("baseline_missing"):
                notes.append(f"{name}: mFR / mT5D: the baseline has no value for "
                             f"{', '.join(agg['baseline_missing'])}")
    return notes


def _missing_cells(suite: Mapping) -> str:
    errors = cell_errors(suite)
    bench = [c for c in CORRUPTIONS if c in errors]
    missing = [c for c in CORRUPTIONS if c not in errors]
    text = f"{len(bench)} of {len(CORRUPTIONS)} benchmark corruptions"
    if missing:
        text += f" (missing {', '.join(missing)})" if len(missing) <= 5 else f" ({len(missing)} missing)"
    severities = sorted({s for c in bench for s in errors[c]})
    if bench and severities != sorted(SEVERITIES):
        text += f"; severities {', '.join(map(str, severities))} of 1-5"
    elif any(set(errors[c]) != set(SEVERITIES) for c in bench):
        text += "; some corruptions lack severities"
    return text + ": not the published metric"


def render_markdown(results: Mapping) -> str:
    """results.md: provenance, then per suite the tables a paper prints and the aggregates, every value labelled."""
    ckpt, env, config = results["checkpoint"], results["environment"], results["config"]
    model = model_label(ckpt)
    registry = f" (registry name `{ckpt['name']}`)" if ckpt.get("name") and ckpt["name"] != model else ""
    partial = partial_notes(results)
    lines = [f"# Robustness evaluation: {model} ({ckpt.get('dataset')})", "",
             f"- model: **{model}**{registry}, checkpoint `{ckpt.get('path')}` (source {ckpt.get('source')}, epoch "
             f"{ckpt.get('epoch')}, sha256 {str(ckpt.get('sha256'))[:16]}...)",
             f"- device: {_describe_device(env)}; torch {env.get('torch')}",
             f"- precision: {_describe_precision(config)}; batch size {config.get('batch_size')}, channels_last "
             f"{config.get('channels_last')}",
             f"- data: {_describe_data(results)}",
             ("- **PARTIAL**: " + "; ".join(partial)) if partial else
             "- complete: every headline number covers its whole benchmark",
             f"- created {results.get('created')}; values in percent unless stated (results.json holds the same "
             "numbers as fractions)", ""]
    renderers = {"clean": _md_clean, "calibration": _md_calibration, "corruption": _md_corruption,
                 "perturbation": _md_perturbation}
    for name, suite in results["suites"].items():
        lines += [f"## {name}", "", f"- data: {_describe_source(suite)}"]
        lines += [f"- {note}" for note in suite.get("notes", [])]
        lines += [""] + renderers[suite["kind"]](suite) + [""]
    return "\n".join(lines).rstrip() + "\n"


def _describe_device(env: Mapping) -> str:
    device = str(env.get("device", "?"))
    if env.get("gpu"):
        return f"{device} ({env['gpu']}" + (f", CUDA {env['cuda']})" if env.get("cuda") else ")")
    details = [str(env[k]) for k in ("cpu",) if env.get(k)]
    details += [f"{env['cores']} cores"] if env.get("cores") else []
    return device + (f" ({', '.join(details)})" if details else "")


def _describe_precision(config: Mapping) -> str:
    autocast = config.get("autocast_dtype")
    precision = config.get("precision")
    if precision is None:
        return f"autocast {autocast}" if autocast else "float32 (no autocast)"
    return str(precision) + (f" (autocast {autocast})" if autocast else "")


def _source_kind(source: Mapping) -> str:
    """A short name of where a suite's data came from, for the header (any kind string is shown as given)."""
    kind = str(source.get("kind", "released"))
    if kind == "generated":
        return f"generated in memory (seed {source.get('seed')}, preset {source.get('preset')})"
    if kind == "clean":
        return "clean test set"
    if kind == "released":
        return "released files"
    details = [f"{k} {source[k]}" for k in ("seed", "preset", "manifest") if source.get(k) is not None]
    return kind.replace("_", " ") + (f" ({', '.join(details)})" if details else "")


def _describe_data(results: Mapping) -> str:
    groups: dict[str, list[str]] = {}
    for name, suite in results["suites"].items():
        groups.setdefault(_source_kind(suite.get("source", {})), []).append(name)
    return "; ".join(f"{', '.join(names)}: {kind}" for kind, names in groups.items()) or "no suites"


def _describe_source(suite: Mapping) -> str:
    source = suite.get("source", {})
    kind = str(source.get("kind", "released"))
    if kind == "generated":
        return (f"GENERATED in memory from the clean test set by corruptions/ (seed {source.get('seed')}, preset "
                f"{source.get('preset')}): not the released files, so not comparable with leaderboard numbers")
    if kind == "clean":
        text = f"clean test set: {source.get('path')}"
    elif kind == "released":
        text = f"released files at `{source.get('path')}`"
    else:
        text = f"{_source_kind(source)} at `{source.get('path')}`"
        if kind.startswith("generated"):
            text += ": generated by corruptions/, not the released files, so not comparable with leaderboard numbers"
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
    partial = "" if agg.get("complete") else f" — PARTIAL: {_missing_cells(suite)}"
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
    n_test = len(IMAGENET_P_TEST)
    for key, label, scale in HEADLINES["perturbation"]:
        if agg.get(key) is not None:
            value = _pct(agg[key], 3) + " %" if scale == 100.0 else _num(agg[key])
            lines.append(f"- {label.replace(' (%)', '')}: **{value}**" + _perturbation_partial(agg, key, n_test))
    baseline = suite.get("baseline")
    if baseline:
        lines.append(f"- baseline for FR/T5D ratios: {model_label(baseline)} (sha256 "
                     f"{str(baseline.get('sha256'))[:16]}...), evaluated on the same data; normalised values compare "
                     "only across runs sharing it")
    return lines


def _perturbation_partial(agg: Mapping, key: str, n_test: int) -> str:
    if is_complete(agg, key):
        return ""
    if key in NORMALISED_KEYS and "normalised_complete" in agg:
        used = agg.get("normalised_perturbations_in_mean", [])
        why = []
        if agg.get("missing"):
            why.append(f"not run: {', '.join(agg['missing'])}")
        if agg.get("baseline_missing"):
            why.append(f"not in the baseline: {', '.join(agg['baseline_missing'])}")
        return (f" (PARTIAL: mean over {len(used)} of the {n_test} ImageNet-P test perturbations; "
                f"{'; '.join(why)}; not the published metric)")
    return (f" (PARTIAL: mean over {len(agg.get('perturbations_in_mean', []))} of the {n_test} ImageNet-P test "
            f"perturbations; not run: {', '.join(agg.get('missing', [])) or '?'})")


def cell_errors(suite: Mapping) -> dict[str, dict[int, float]]:
    """corruption -> severity -> error of a corruption suite result, in the order the cells were evaluated."""
    errors: dict[str, dict[int, float]] = {}
    for cell in suite["cells"]:
        errors.setdefault(cell["corruption"], {})[int(cell["severity"])] = cell["error"]
    return errors


def write_plots(out_dir: str | Path, results: Mapping, baseline: Mapping | None = None) -> list[Path]:
    """PNG plots: per corruption suite, error per corruption (beside ``baseline``'s, when it has that suite) and
    error vs severity per corruption family; per -P suite that ``baseline`` has, flip probability per perturbation
    beside the baseline's; the reliability diagram of the calibration suite.

    Args:
        baseline: another run's results, or its :func:`perturbation_baseline` (what ``EvalOptions.baseline``
            holds, from --baseline-results or --baseline-ckpt).
    """
    out_dir = Path(out_dir)
    written = []
    others = (baseline or {}).get("suites", {})
    other_label = model_label(baseline) if baseline else None
    for name, suite in results["suites"].items():
        if suite["kind"] == "corruption":
            other = others.get(name) if others.get(name, {}).get("cells") else None
            written.append(_save(plot_corruption_errors(name, suite, results, other, other_label),
                                 out_dir / f"{name}_errors.png"))
            written.append(_save(plot_error_vs_severity(name, suite, results), out_dir / f"{name}_severity.png"))
        elif suite["kind"] == "perturbation" and _flip_probabilities(others.get(name, {})):
            written.append(_save(plot_flip_probabilities(name, suite, results, others[name], other_label),
                                 out_dir / f"{name}_flip.png"))
        elif suite["kind"] == "calibration" and suite.get("reliability"):
            written.append(_save(plot_reliability(suite["reliability"], model_label(results)),
                                 out_dir / "reliability.png"))
    return written


OURS, THEIRS = "#3a6ea5", "#b0b0b0"
# Up to 7 lines per family panel, each with its own colour and marker (Okabe-Ito colours, colour-blind safe).
LINE_STYLES = (("#0072B2", "o"), ("#D55E00", "s"), ("#009E73", "^"), ("#CC79A7", "D"), ("#E69F00", "v"),
               ("#56B4E9", "P"), ("#000000", "X"))
FAMILIES = ("noise", "blur", "weather", "digital", "extra")


def _figure(width: float = 8.0, height: float = 4.5, ncols: int = 1, sharey: bool = False):
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend (Agg canvas on savefig)

    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, fig.subplots(1, ncols, sharey=sharey, squeeze=True)


def _save(fig, path: Path) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def _flip_probabilities(suite: Mapping) -> dict[str, float]:
    """perturbation -> FP of a -P suite result or of a baseline's -P entry."""
    if "flip_probability" in suite:
        return dict(suite["flip_probability"])
    return {c["perturbation"]: c["flip_probability"] for c in suite.get("cells", [])}


def plot_corruption_errors(name: str, suite: Mapping, results: Mapping, baseline_suite: Mapping | None = None,
                           baseline_label: str | None = None):
    """Bars of the mean error over severities per corruption (extra corruptions hatched, after a divider), beside
    the baseline's when given; the clean error and the benchmark mean as horizontal lines. Returns the Figure."""
    errors = cell_errors(suite)
    names = [c for c in errors if c not in EXTRA] + [c for c in errors if c in EXTRA]
    ours = np.array([100 * sum(errors[c].values()) / len(errors[c]) for c in names])
    fig, ax = _figure(max(8.0, 0.5 * len(names) + 2), 4.8)
    x = np.arange(len(names))
    hatch = ["//" if c in EXTRA else None for c in names]
    label = model_label(results)
    if baseline_suite is not None:
        theirs = cell_errors(baseline_suite)
        heights = [100 * sum(theirs[c].values()) / len(theirs[c]) if c in theirs else np.nan for c in names]
        ax.bar(x - 0.2, heights, 0.4, label=f"baseline: {baseline_label or 'baseline'}", color=THEIRS,
               hatch=hatch, edgecolor="k", linewidth=0.5)
        ax.bar(x + 0.2, ours, 0.4, label=label, color=OURS, hatch=hatch, edgecolor="k", linewidth=0.5)
    else:
        ax.bar(x, ours, 0.7, label=label, color=OURS, hatch=hatch, edgecolor="k", linewidth=0.5)
    clean = results["suites"].get("clean", {}).get("aggregates", {}).get("error")
    if clean is not None:
        ax.axhline(100 * clean, color="k", linestyle=":", linewidth=1.2, label=f"clean error ({100 * clean:.1f} %)")
    bench_mean = suite["aggregates"].get("corruption_error", suite["aggregates"].get("mean_error"))
    if bench_mean is not None:
        ax.axhline(100 * bench_mean, color="k", linestyle="--", linewidth=1.5,
                   label=f"benchmark mean, {label} ({100 * bench_mean:.1f} %)")
    n_bench = sum(c not in EXTRA for c in names)
    if 0 < n_bench < len(names):
        ax.axvline(n_bench - 0.5, color="0.4", linewidth=0.8)
        ax.text(n_bench - 0.4, 0.98, "extra (not in the mean)", transform=ax.get_xaxis_transform(), va="top",
                fontsize=8, color="0.3")
    ax.set_xticks(x, [c.replace("_", " ") for c in names], rotation=45, ha="right")
    ax.set_xlim(-0.6, len(names) - 0.4)
    ax.set_ylabel("top-1 error (%), mean over severities")
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    ax.set_title(f"{name}: {label}, error per corruption")
    fig.legend(loc="outside lower center", ncols=4, fontsize=8, frameon=False)
    return fig


def plot_error_vs_severity(name: str, suite: Mapping, results: Mapping):
    """One panel per corruption family (noise, blur, weather, digital, extra) with a line per corruption, and the
    mean over the benchmark corruptions as a thick black dashed line in every panel. Returns the Figure."""
    errors = cell_errors(suite)
    panels = [(f, [c for c in SUBSETS[f] if c in errors]) for f in FAMILIES]
    other = [c for c in errors if c not in ALL_NAMES]
    panels = [(f, cs) for f, cs in panels if cs] + ([("other", other)] if other else [])
    fig, axes = _figure(3.2 * max(len(panels), 1) + 0.6, 3.8, ncols=max(len(panels), 1), sharey=True)
    axes = np.atleast_1d(axes)
    per_sev = suite["aggregates"].get("per_severity", {})
    mean_sev = sorted(int(s) for s in per_sev)
    severities = sorted({s for per in errors.values() for s in per})
    for ax, (family, corruptions) in zip(axes, panels):
        for (colour, marker), corruption in zip(LINE_STYLES, corruptions):
            per = errors[corruption]
            sev = sorted(per)
            ax.plot(sev, [100 * per[s] for s in sev], color=colour, marker=marker, markersize=5, linewidth=1.4,
                    label=corruption.replace("_", " "))
        if mean_sev:
            ax.plot(mean_sev, [100 * per_sev[str(s)] for s in mean_sev], color="k", linestyle="--", linewidth=2.5,
                    label="benchmark mean")
        ax.set_title(family if family != "extra" else "extra (not in the mean)", fontsize=10)
        ax.set_xticks(severities or list(SEVERITIES))
        ax.set_xlim(min(severities or [1]) - 0.3, max(severities or [5]) + 0.3)
        ax.set_xlabel("severity")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left")
    axes[0].set_ylabel("top-1 error (%)")
    fig.suptitle(f"{name}: {model_label(results)}, error vs severity")
    return fig


def plot_flip_probabilities(name: str, suite: Mapping, results: Mapping, baseline_suite: Mapping,
                            baseline_label: str | None = None):
    """Flip probability per perturbation, this run beside the baseline whose values normalise mFR. Returns the
    Figure."""
    ours = _flip_probabilities(suite)
    theirs = _flip_probabilities(baseline_suite)
    names = list(ours)
    x = np.arange(len(names))
    fig, ax = _figure(max(7.0, 0.6 * len(names) + 2), 4.5)
    ax.bar(x - 0.2, [100 * theirs[p] if p in theirs else np.nan for p in names], 0.4, color=THEIRS, edgecolor="k",
           linewidth=0.5, label=f"baseline: {baseline_label or 'baseline'}")
    ax.bar(x + 0.2, [100 * ours[p] for p in names], 0.4, color=OURS, edgecolor="k", linewidth=0.5,
           label=model_label(results))
    ax.set_xticks(x, [p.replace("_", " ") for p in names], rotation=45, ha="right")
    ax.set_ylabel("flip probability (%)")
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    ax.set_title(f"{name}: flip probability per perturbation")
    fig.legend(loc="outside lower center", ncols=2, fontsize=8, frameon=False)
    return fig


def plot_reliability(bins: Mapping, label: str = "this run"):
    """Reliability diagram: accuracy per confidence bin (empty bins left out) against the diagonal, the gap to it
    shaded, and the share of samples per bin below. Returns the Figure."""
    edges = np.asarray(bins["edges"])
    centres, width = (edges[:-1] + edges[1:]) / 2, np.diff(edges)
    count = np.asarray(bins["count"], dtype=float)
    filled = count > 0
    accuracy = np.asarray(bins["accuracy"])
    confidence = np.asarray(bins["confidence"])
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.0, 6.0), layout="constrained")
    ax, hist = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    ax.bar(centres[filled], accuracy[filled], width[filled], edgecolor="k", linewidth=0.5, color=OURS,
           label="accuracy")
    ax.bar(centres[filled], (confidence - accuracy)[filled], width[filled], bottom=accuracy[filled],
           color="#d62728", alpha=0.3, edgecolor="#d62728", linewidth=0.5, label="gap to mean confidence")
    ax.plot([0, 1], [0, 1], "k--", linewidth=1, label="perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.set_title(f"reliability diagram, clean test set: {label}", fontsize=10)
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(alpha=0.3)
    ax.set_axisbelow(True)
    total = count.sum() or 1.0
    hist.bar(centres, 100 * count / total, width, color="0.5", edgecolor="k", linewidth=0.5)
    hist.set_xlabel(f"confidence ({len(centres)} equal-width bins)")
    hist.set_ylabel("samples (%)")
    hist.grid(alpha=0.3)
    hist.set_axisbelow(True)
    return fig


def write_tensorboard(results: Mapping, log_dir: str | Path, step: int = 0) -> None:
    """Every headline number as a scalar ``eval/<suite>/<metric>`` at ``step``, in the units results.md prints:
    errors and every error-like metric (error, mCE, CE-based means, FP, mFR, mT5D, calibration errors) in PERCENT,
    as training's ``train/error``, ``test/error`` and ``val/error``; NLL in nats, Brier and top-5 distances in their
    own units. Tag names carry no unit."""
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(log_dir)) as writer:
        for key, (_, value) in headline_metrics(results).items():
            writer.add_scalar(f"eval/{key}", value, step)


def perturbation_baseline(results: Mapping) -> dict:
    """A finished run (e.g. AlexNet, or a standard-training model) as the baseline ``EvalOptions.baseline`` takes:
    its identity (registry ``name``, display name ``model``, ``sha256``), per -P suite its FP_p and uT5D_p (the
    normalisers of mFR / mT5D), and per -C suite its cells (the baseline bars of the error plots)."""
    suites: dict[str, dict] = {}
    for name, suite in results["suites"].items():
        if suite["kind"] == "perturbation":
            suites[name] = {"kind": "perturbation",
                            "flip_probability": {c["perturbation"]: c["flip_probability"] for c in suite["cells"]},
                            "top5_distance": {c["perturbation"]: c["top5_distance"] for c in suite["cells"]}}
        elif suite["kind"] == "corruption":
            suites[name] = {"kind": "corruption", "cells": [{k: c[k] for k in ("corruption", "severity", "error")}
                                                            for c in suite["cells"]]}
    ckpt = results["checkpoint"]
    return {"name": ckpt.get("name"), "model": model_label(ckpt), "sha256": ckpt.get("sha256"), "suites": suites}
