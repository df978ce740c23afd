"""Compare evaluation runs: side by side, or grouped by label (one group per method, one run per seed) as
mean ± sample standard deviation, with the difference of the group means. A number is averaged or differenced only
between runs that measured the same thing (dataset, data source, images per cell, the same -C cells or -P
perturbations); anything else is shown as n/a with a footnote that names what differs. Writes compare.md,
compare.json and one bar chart per corruption suite.
"""

from __future__ import annotations

import glob
import io
import math
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from corruptions import CORRUPTIONS, EXTRA_CORRUPTIONS, SEVERITIES
from evaluation.report import (
    HEADLINES,
    cell_errors,
    headline_kind,
    is_complete,
    load_results,
    model_label,
    partial_notes,
)
from runtime.files import atomic_write_bytes, atomic_write_json, atomic_write_text

COMPARE_SCHEMA = "augmix-robustness/compare"
COMPARE_SCHEMA_VERSION = 1
STD_NOTE = ("mean ± std over the runs of each label (n runs, in the column header); std is the SAMPLE standard "
            "deviation (ddof=1, n - 1 in the denominator), undefined for a single run")
DIFF_NOTE = ("difference of the group means ± its standard error sqrt(s_a²/n_a + s_b²/n_b); * marks |difference| "
             "> 2 standard errors, a rough guide with few seeds, not a significance test")
CORRUPTED_CALIBRATION = (
    ("mean_over_cells", "rms_calib_error_hendrycks",
     "RMS calibration error on corrupted data, paper-compatible, mean over cells (%)"),
    ("mean_over_cells", "rms_calib_error", "RMS calibration error on corrupted data, all bins, mean over cells (%)"),
    ("pooled", "rms_calib_error_hendrycks", "RMS calibration error on corrupted data, paper-compatible, pooled (%)"),
)
EXTRA = frozenset(EXTRA_CORRUPTIONS)


@dataclass(frozen=True)
class Run:
    """One evaluation run: its label (runs sharing a label form a group), where it was read from, its results."""

    label: str
    path: str
    results: Mapping[str, Any]


@dataclass(frozen=True)
class _Entry:
    """One metric of one run: its label, value as displayed, whether in percent, what it measured (signature)
    and whether it covers its whole benchmark."""

    label: str
    value: float
    percent: bool
    signature: tuple[tuple[str, Any], ...]
    complete: bool


def parse_group(text: str) -> tuple[str, str]:
    """``NAME=GLOB`` -> (name, glob pattern).

    Raises:
        ValueError: no ``=``, or an empty name or pattern.
    """
    name, sep, pattern = text.partition("=")
    if not sep or not name.strip() or not pattern.strip():
        raise ValueError(f"--group {text!r}: expected NAME=GLOB, e.g. standard='runs/standard_s*/eval'")
    return name.strip(), pattern.strip()


def collect_runs(paths: Sequence[str] = (), labels: Sequence[str] | None = None,
                 groups: Sequence[tuple[str, str]] = ()) -> list[Run]:
    """Read the runs to compare: ``paths`` (results.json files or their folders) with one label each, then every
    match of each ``(name, glob pattern)`` in ``groups`` (sorted) under that name. Runs sharing a label form a group.

    Args:
        labels: one per path; None: the model's registry name, made unique by a ``#i`` suffix when runs share it.

    Raises:
        ValueError: a label count that is not the number of paths, or a pattern that matches nothing.
        FileNotFoundError / ValueError: a path that is not an evaluation results file (load_results).
    """
    paths = list(paths)
    if labels is not None and len(labels) != len(paths):
        raise ValueError(f"--labels gives {len(labels)} label(s) for {len(paths)} run(s) of --compare; give one "
                         "label per run (runs with the same label form a group, e.g. standard,standard,augmix)")
    loaded = [load_results(p) for p in paths]
    labels = _default_labels(loaded) if labels is None else labels
    runs = [Run(label.strip(), str(p), r) for label, p, r in zip(labels, paths, loaded)]
    if any(not run.label for run in runs):
        raise ValueError(f"--labels {','.join(labels)!r}: a label is empty")
    for name, pattern in groups:
        matches = sorted(glob.glob(pattern))
        if not matches:
            raise ValueError(f"--group {name}={pattern}: the pattern matches no file or folder")
        runs += [Run(name, m, load_results(m)) for m in matches]
    if not runs:
        raise ValueError("nothing to compare: give --compare RESULTS ... and/or --group NAME=GLOB")
    return runs


def _default_labels(runs: Sequence[Mapping]) -> list[str]:
    """The models' registry names, with ``#i`` (the run's position) where runs share one: never a group by accident."""
    names = [str(r["checkpoint"].get("name") or "run") for r in runs]
    return [n if names.count(n) == 1 else f"{n}#{i + 1}" for i, n in enumerate(names)]


def _source_text(suite: Mapping) -> str:
    source = suite.get("source", {})
    kind = str(source.get("kind", "released"))
    if kind.startswith("generated"):
        return f"{kind} (seed {source.get('seed')}, preset {source.get('preset')})"
    return kind


def _run_metrics(results: Mapping) -> tuple[dict[str, _Entry], dict[str, dict[str, _Entry]]]:
    """Every comparable number of one run: headline metrics (plus the calibration of corrupted predictions) keyed
    ``<suite>/<key>``, and per corruption suite the per-corruption errors (mean over severities)."""
    config = results.get("config", {})
    headline: dict[str, _Entry] = {}
    per_corruption: dict[str, dict[str, _Entry]] = {}
    for name, suite in results["suites"].items():
        agg = suite.get("aggregates", {})
        base = (("dataset", results["checkpoint"].get("dataset")), ("data", _source_text(suite)),
                ("images per cell (--limit)", config.get("limit") or "all"),
                ("preprocessing", suite.get("preprocessing")))
        if suite["kind"] == "corruption":
            errors = cell_errors(suite)
            cells = tuple(sorted(f"{c} s{s}" for c in errors if c in CORRUPTIONS for s in errors[c]))
            signature = base + (("cells", cells),)
            per_corruption[name] = {
                c: _Entry(c + (" (extra, not in the mean)" if c in EXTRA else ""), 100 * statistics.fmean(per.values()),
                          True, base + (("severities", tuple(sorted(per))),), set(per) == set(SEVERITIES))
                for c, per in errors.items()}
        elif suite["kind"] == "perturbation":
            signature = base + (("perturbations", tuple(sorted(c["perturbation"] for c in suite["cells"]))),
                                ("difficulty", config.get("difficulty")),
                                ("-P baseline", (suite.get("baseline") or {}).get("sha256")))
        else:
            signature = base
        for key, label, scale in HEADLINES[headline_kind(suite)]:
            if agg.get(key) is not None:
                headline[f"{name}/{key}"] = _Entry(label, scale * agg[key], scale == 100.0, signature,
                                                   is_complete(agg, key))
        for where, key, label in CORRUPTED_CALIBRATION if suite["kind"] == "corruption" else ():
            value = agg.get("calibration", {}).get(where, {}).get(key)
            if value is not None:
                headline[f"{name}/calibration.{where}.{key}"] = _Entry(label, 100 * value, True, signature,
                                                                        bool(agg.get("complete", True)))
    return headline, per_corruption


def _describe(field: str, value: Any) -> str:
    if field == "cells" and isinstance(value, (tuple, list)):
        corruptions = {v.rsplit(" s", 1)[0] for v in value}
        return f"{len(value)} cells ({len(corruptions)} of {len(CORRUPTIONS)} benchmark corruptions)"
    if isinstance(value, (tuple, list)):
        return ", ".join(map(str, value)) or "none"
    return str(value)


def _difference_reason(signatures: Sequence[tuple], names: Sequence[str]) -> str | None:
    """Why runs with these metric signatures measured different things (the first field that differs), or None."""
    first = dict(signatures[0])
    for signature, name in zip(signatures[1:], names[1:]):
        other = dict(signature)
        for field in first:
            if first[field] != other.get(field):
                return (f"different {field}: {names[0]}: {_describe(field, first[field])}; "
                        f"{name}: {_describe(field, other.get(field))}")
    return None


class _Footnotes:
    """Numbered reasons, each text once."""

    def __init__(self):
        self.texts: list[str] = []

    def mark(self, text: str) -> str:
        if text not in self.texts:
            self.texts.append(text)
        return f"[{self.texts.index(text) + 1}]"


def _group_cell(label: str, runs: Sequence[Run], entries: Sequence[_Entry | None], notes: _Footnotes) -> dict:
    """mean, sample std, n and the values of one metric over the runs of one group, or why there is none."""
    present = [e for e in entries if e is not None]
    cell: dict[str, Any] = {"n": len(present), "values": [e.value for e in present] if present else [],
                            "mean": None, "std": None, "partial": any(not e.complete for e in present)}
    if not present:
        return cell
    if len(present) < len(entries):
        missing = [r.path for r, e in zip(runs, entries) if e is None]
        cell["na"] = notes.mark(f"{label}: {len(missing)} of {len(entries)} runs lack this number "
                                f"({', '.join(missing)})")
        return cell
    reason = _difference_reason([e.signature for e in present], [r.path for r in runs])
    if reason:
        cell["na"] = notes.mark(f"{label}: its runs measured different things, not averaged: {reason}")
        return cell
    cell["mean"] = statistics.fmean(cell["values"])
    cell["std"] = statistics.stdev(cell["values"]) if len(present) > 1 else None
    cell["signature"] = present[0].signature
    return cell


def _difference(a_label: str, a: dict, b_label: str, b: dict, notes: _Footnotes) -> dict:
    """Difference of two group cells (b - a) and its standard error, or why it is not shown."""
    if a["mean"] is None or b["mean"] is None:
        return {"difference": None, "se": None}
    reason = _difference_reason([a["signature"], b["signature"]], [a_label, b_label])
    if reason:
        return {"difference": None, "se": None, "na": notes.mark(f"{b_label} - {a_label} not computed: {reason}")}
    se = None
    if a["std"] is not None and b["std"] is not None:
        se = math.sqrt(a["std"] ** 2 / a["n"] + b["std"] ** 2 / b["n"])
    return {"difference": b["mean"] - a["mean"], "se": se}


def _metric_rows(keys: Sequence[str], per_run: Sequence[Mapping[str, _Entry]], groups: Mapping[str, list[int]],
                 runs: Sequence[Run], pairs: Sequence[tuple[str, str]], notes: _Footnotes) -> list[dict]:
    rows = []
    for key in keys:
        first = next(m[key] for m in per_run if key in m)
        row = {"key": key, "suite": key.split("/")[0], "label": first.label, "percent": first.percent, "groups": {},
               "differences": {}}
        for label, members in groups.items():
            row["groups"][label] = _group_cell(label, [runs[i] for i in members],
                                               [per_run[i].get(key) for i in members], notes)
        for a, b in pairs:
            row["differences"][f"{b} - {a}"] = _difference(a, row["groups"][a], b, row["groups"][b], notes)
        for cell in row["groups"].values():
            cell.pop("signature", None)
        rows.append(row)
    return rows


def summarise(runs: Sequence[Run]) -> dict:
    """The comparison (what compare.json holds): groups, then per metric each group's mean, sample std (ddof=1), n
    and values, and the differences of group means: every other group against the first when a label repeats,
    else (plain side by side) second - first for exactly two runs. Values are as displayed: percent where the label
    says (%), NLL in nats, Brier in [0, 2]."""
    groups: dict[str, list[int]] = {}
    for i, run in enumerate(runs):
        groups.setdefault(run.label, []).append(i)
    labels = list(groups)
    grouped = any(len(m) > 1 for m in groups.values())
    if grouped:
        pairs = [(labels[0], b) for b in labels[1:]]
    else:
        pairs = [(labels[0], labels[1])] if len(labels) == 2 else []
    notes = _Footnotes()
    metrics = [_run_metrics(r.results) for r in runs]
    headline = [m[0] for m in metrics]
    keys = list(dict.fromkeys(k for h in headline for k in h))
    summary = {"schema": COMPARE_SCHEMA, "schema_version": COMPARE_SCHEMA_VERSION,
               "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "grouped": grouped, "std": STD_NOTE,
               "units": "values as displayed: percent where the label says (%), NLL in nats, Brier score in [0, 2]",
               "groups": [{"label": label, "n": len(m), "runs": [runs[i].path for i in m],
                           "models": sorted({model_label(runs[i].results) for i in m}),
                           "notes": list(dict.fromkeys(n for i in m for n in partial_notes(runs[i].results)))}
                          for label, m in groups.items()],
               "differences": [f"{b} - {a}" for a, b in pairs],
               "metrics": _metric_rows(keys, headline, groups, runs, pairs, notes), "per_corruption": {}}
    suites = list(dict.fromkeys(s for m in metrics for s in m[1]))
    for suite in suites:
        per_run = [m[1].get(suite, {}) for m in metrics]
        names = list(dict.fromkeys(c for p in per_run for c in p))
        names = [c for c in names if c not in EXTRA] + [c for c in names if c in EXTRA]
        summary["per_corruption"][suite] = _metric_rows(names, per_run, groups, runs, pairs, notes)
    summary["footnotes"] = notes.texts
    return summary


def _fmt(value: float | None, percent: bool) -> str:
    return "-" if value is None else f"{value:.{2 if percent else 4}f}"


def _value_text(cell: Mapping, percent: bool, grouped: bool) -> str:
    if "na" in cell:
        return f"n/a {cell['na']}"
    if cell["mean"] is None:
        return "-"
    text = _fmt(cell["mean"], percent)
    if grouped:
        text += " ± " + (_fmt(cell["std"], percent) if cell["std"] is not None else "n/a (1 run)")
    return text + (" (partial)" if cell["partial"] else "")


def _difference_text(diff: Mapping, percent: bool) -> str:
    if "na" in diff:
        return f"n/a {diff['na']}"
    if diff["difference"] is None:
        return "-"
    text = _fmt(diff["difference"], percent)
    if diff["se"] is not None:
        text += f" ± {_fmt(diff['se'], percent)}" + ("*" if abs(diff["difference"]) > 2 * diff["se"] else "")
    return text


def _table(first: str, rows: Sequence[Mapping], summary: Mapping, name: Any) -> list[str]:
    grouped = summary["grouped"]
    header = [first] + [f"{g['label']} (n={g['n']})" if grouped else g["label"] for g in summary["groups"]]
    header += summary["differences"] if grouped else (["difference"] if summary["differences"] else [])
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in rows:
        cells = [name(row)] + [_value_text(row["groups"][g["label"]], row["percent"], grouped)
                               for g in summary["groups"]]
        cells += [_difference_text(row["differences"][d], row["percent"]) for d in summary["differences"]]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def render_compare(summary: Mapping) -> str:
    """compare.md: the headline table (clean, -C, calibration ...; one column per label), the per-corruption
    errors of each corruption suite, then the runs behind each label and the footnotes."""
    lines = _table("metric", summary["metrics"], summary, lambda r: f"{r['suite']}: {r['label']}")
    for suite, rows in summary["per_corruption"].items():
        lines += ["", f"{suite}: top-1 error (%) per corruption, mean over severities", ""]
        lines += _table("corruption", rows, summary, lambda r: r["label"])
    lines += ["", "Runs:", ""]
    for group in summary["groups"]:
        lines.append(f"- {group['label']}: {group['n']} run(s), {', '.join(group['models'])}: "
                     + ", ".join(f"`{p}`" for p in group["runs"]))
        lines += [f"  - PARTIAL: {note}" for note in group["notes"]]
    lines += ["", f"- {STD_NOTE}." if summary["grouped"] else "- one run per label: values as measured.",
              "- error-like values in percent (2 decimals); NLL in nats and Brier score with 4 decimals."]
    if summary["grouped"] and summary["differences"]:
        lines.append(f"- {DIFF_NOTE}.")
    lines.append("- (partial): that number does not cover its whole benchmark (fewer cells or severities).")
    lines += [f"- [{i + 1}] {text}" for i, text in enumerate(summary["footnotes"])]
    return "\n".join(lines) + "\n"


def compare_results(runs: Sequence[Mapping], labels: Sequence[str] | None = None) -> str:
    """Markdown comparison of results dicts: side by side (with second - first for two runs), or grouped as
    mean ± std when ``labels`` repeat (see :func:`summarise`)."""
    labels = _default_labels(runs) if labels is None else list(labels)
    if len(labels) != len(runs):
        raise ValueError(f"{len(labels)} label(s) for {len(runs)} run(s): give one label per run")
    return render_compare(summarise([Run(label, f"run {i + 1}", r) for i, (label, r) in enumerate(zip(labels, runs))]))


def plot_compare(summary: Mapping, suite: str):
    """Grouped bars of the error per corruption (mean over severities) of ``suite``, one colour per label, with
    error bars of the sample std over its runs; the clean error and the benchmark mean first. Returns the Figure."""
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend

    rows = [r for r in summary["metrics"] if r["key"] in ("clean/error", f"{suite}/corruption_error")]
    rows += summary["per_corruption"][suite]
    names = [{"clean/error": "clean", f"{suite}/corruption_error": "mean (15)"}.get(r["key"], r["key"]) for r in rows]
    groups = [g["label"] for g in summary["groups"]]
    fig = Figure(figsize=(min(16.0, max(8.0, 0.25 * len(rows) * len(groups) + 3)), 4.8), layout="constrained")
    ax = fig.subplots()
    x = np.arange(len(rows))
    width = 0.8 / len(groups)
    colours = ("#b0b0b0", "#3a6ea5", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9")
    for k, label in enumerate(groups):
        cells = [r["groups"][label] for r in rows]
        means = [np.nan if c["mean"] is None else c["mean"] for c in cells]
        stds = [0.0 if c["std"] is None else c["std"] for c in cells]
        n = next(g["n"] for g in summary["groups"] if g["label"] == label)
        hatch = ["//" if name in EXTRA else None for name in names]
        ax.bar(x - 0.4 + width * (k + 0.5), means, width, yerr=stds, capsize=2, color=colours[k % len(colours)],
               edgecolor="k", linewidth=0.5, hatch=hatch, error_kw={"linewidth": 0.8},
               label=f"{label} (n={n})")
    n_head = sum("/" in r["key"] for r in rows)
    if 0 < n_head < len(rows):
        ax.axvline(n_head - 0.5, color="0.4", linewidth=0.8)
    ax.set_xticks(x, [n.replace("_", " ") for n in names], rotation=45, ha="right")
    ax.set_xlim(-0.6, len(rows) - 0.4)
    ax.set_ylabel("top-1 error (%), mean over severities")
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    bars = "error bars: sample std over runs (ddof=1)" if summary["grouped"] else "one run per label"
    ax.set_title(f"{suite}: error per corruption ({bars}; hatched: extra, not in the mean)", fontsize=10)
    fig.legend(loc="outside lower center", ncols=min(len(groups), 4), fontsize=8, frameon=False)
    return fig


def compare_files(out_dir: str | Path, summary: Mapping) -> list[Path]:
    """The files :func:`write_compare` writes for ``summary``."""
    out_dir = Path(out_dir)
    return ([out_dir / "compare.md", out_dir / "compare.json"]
            + [out_dir / f"compare_{suite}.png" for suite in summary["per_corruption"]])


def write_compare(out_dir: str | Path, summary: Mapping, overwrite: bool = False) -> list[Path]:
    """Write compare.md, compare.json and compare_<suite>.png per corruption suite into ``out_dir``.

    Raises:
        FileExistsError: one of those files exists and ``overwrite`` is off (nothing is written then).
    """
    targets = compare_files(out_dir, summary)
    existing = [str(p) for p in targets if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"refusing to replace {', '.join(existing)} (pass --overwrite to replace them)")
    atomic_write_text(targets[0], render_compare(summary))
    atomic_write_json(targets[1], summary)
    for path, suite in zip(targets[2:], summary["per_corruption"]):
        buffer = io.BytesIO()
        plot_compare(summary, suite).savefig(buffer, format="png", dpi=110)
        atomic_write_bytes(path, buffer.getvalue())
    return targets
