"""Evaluation suites: clean, -C (CIFAR-10/100-C, ImageNet-C, digits-C), -P and calibration.

A suite orchestrates: it picks its data source (evaluation/sources.py: released files, or generated in memory),
runs the predictor cell by cell, keeps each (suite, corruption, severity) cell in the cell store as it completes
(evaluation/store.py) and hands per-sample statistics to evaluation/metrics.py. It computes no metric itself.
``run_evaluation`` runs a list of suites for a model whose identity is known (evaluation/api.py builds it).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from corruptions import CORRUPTIONS, SEVERITIES
from corruptions.sequences import is_noise_perturbation
from evaluation import metrics as M
from evaluation.inference import InferenceSettings, Predictor
from evaluation.progress import EvalProgress
from evaluation.report import new_results, write_report, write_tensorboard
from evaluation.sources import (
    CleanSet,
    GeneratedCorruptions,
    GeneratedPerturbations,
    ReleasedCorruptions,
    ReleasedPerturbations,
    clean_pairs,
    load_clean_set,
    perturbation_data_file,
)
from evaluation.store import CellStore
from loaders.released import decoder_versions
from runtime.distributed import print_main
from runtime.environment import environment_record
from runtime.files import data_root


@dataclass(frozen=True)
class SuiteSpec:
    """What a suite evaluates: ``kind`` clean | corruption | perturbation | calibration; ``folder`` the released
    set under the data root (None: generated only); ``preset`` the corruptions/ parameter preset."""

    name: str
    kind: str
    dataset: str | None = None
    folder: str | None = None
    preset: str | None = None
    benchmark: str = "cifar"  # cifar: unnormalised means | imagenet: AlexNet-normalised mCE, ImageNet-P frame counts


SUITES: Mapping[str, SuiteSpec] = MappingProxyType({s.name: s for s in (
    SuiteSpec("clean", "clean"),
    SuiteSpec("calibration", "calibration"),
    SuiteSpec("cifar10-c", "corruption", "cifar10", "CIFAR-10-C", "cifar"),
    SuiteSpec("cifar100-c", "corruption", "cifar100", "CIFAR-100-C", "cifar"),
    SuiteSpec("imagenet-c", "corruption", "imagenet", "ImageNet-C", "imagenet", "imagenet"),
    SuiteSpec("digits-c", "corruption", "digits", None, "cifar"),
    SuiteSpec("cifar10-p", "perturbation", "cifar10", "CIFAR-10-P", "cifar"),
    SuiteSpec("cifar100-p", "perturbation", "cifar100", "CIFAR-100-P", "cifar"),
    SuiteSpec("imagenet-p", "perturbation", "imagenet", "ImageNet-P", "imagenet", "imagenet"),
    SuiteSpec("digits-p", "perturbation", "digits", None, "cifar"),
)})
DATASET_SUITES: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "cifar10": ("clean", "cifar10-c", "cifar10-p", "calibration"),
    "cifar100": ("clean", "cifar100-c", "cifar100-p", "calibration"),
    "imagenet": ("clean", "imagenet-c", "imagenet-p", "calibration"),
    "digits": ("clean", "digits-c", "digits-p", "calibration"),
})


@dataclass(frozen=True)
class EvalOptions:
    """Everything about an evaluation run except the model."""

    data_root: str | None = None          # datasets and released -C/-P folders; None = $AUGMIX_DATA_ROOT or ./data
    out_dir: str | None = None            # results.json, results.md, plots, cells/ (resume); None = nothing written
    inference: InferenceSettings = field(default_factory=InferenceSettings)
    generate: bool = False                # build -C/-P in memory from the clean test set instead of released files
    seed: int = 0                         # seed of generated sets (per chunk, corruptions/chunks.py)
    limit: int | None = None              # first N test images / videos per cell (quick looks)
    corruptions: tuple[str, ...] | None = None    # None: all 19 (extras skipped when their files are absent)
    severities: tuple[int, ...] = SEVERITIES
    perturbations: tuple[str, ...] | None = None  # None: every perturbation available
    difficulty: int = 1                   # -P frame step d for non-noise sequences (docs/metrics.md §4.2)
    roots: Mapping[str, str] = field(default_factory=dict)  # suite or dataset name -> folder, overrides defaults
    recompute: bool = False               # ignore finished cells in out_dir/cells
    baseline: Mapping[str, Any] | None = None  # -P normalisers: report.perturbation_baseline(results of a run)
    alexnet_clean_error: float = M.ALEXNET_CLEAN_ERROR  # for relative mCE (docs/metrics.md §3.3)
    imagenet_c_resize: bool = False       # NON-STANDARD Resize(256)+CenterCrop(224) on ImageNet-C (labelled)
    tensorboard: str | None = None        # write headline scalars to this log dir
    tensorboard_step: int = 0
    plots: bool = True


def resolve_suites(names: Sequence[str], dataset: str) -> list[str]:
    """Expand ``all`` to the suites of ``dataset`` and check every name fits it.

    Raises:
        ValueError: an unknown suite (lists valid ones) or one for another dataset.
    """
    out: list[str] = []
    for name in names:
        if name == "all":
            if dataset not in DATASET_SUITES:
                raise ValueError(f"suite 'all' needs a known dataset ({', '.join(DATASET_SUITES)}), "
                                 f"the checkpoint says {dataset!r}")
            out += DATASET_SUITES[dataset]
            continue
        if name not in SUITES:
            raise ValueError(f"unknown suite {name!r}; valid: all, {', '.join(SUITES)}")
        spec = SUITES[name]
        if spec.dataset is not None and spec.dataset != dataset:
            raise ValueError(f"suite {name!r} evaluates {spec.dataset} models; the checkpoint's dataset is "
                             f"{dataset!r} (suites for it: {', '.join(DATASET_SUITES.get(dataset, ('clean',)))})")
        out.append(name)
    return list(dict.fromkeys(out))


def run_evaluation(model: nn.Module, info: Any, suites: Sequence[str], options: EvalOptions,
                   checkpoint_path: str | Path | None = None) -> dict:
    """Evaluate ``model`` on ``suites``: the runner behind evaluation.evaluate() (so evaluate.py) and train.py's hook.

    Args:
        model: maps normalised (B, 3, H, W) float images to (B, K) logits; moved to ``options.inference.device``.
        info: a models.weights.ModelInfo (name, num_classes, dataset, mean, std, image_size, source, epoch, sha256);
            ``sha256`` identifies the model in the fingerprint of every stored cell.
        suites: suite names or "all" (see SUITES / DATASET_SUITES).
        options: data, output, inference and subset settings.
        checkpoint_path: recorded in the results.

    Returns:
        The results dict (schema of evaluation/report.py), also written to ``options.out_dir`` when set: after every
        suite (results.json) and at the end (results.md and plots).
    """
    requested = resolve_suites(suites, info.dataset)
    out_dir = Path(options.out_dir) if options.out_dir else None
    ctx = _Context(Predictor(model, info.mean, info.std, options.inference), info, options,
                   CellStore(out_dir / "cells" if out_dir else None, options.recompute))
    results = new_results(_checkpoint_record(info, checkpoint_path), _config_record(options, requested),
                          environment_record(options.inference.device, decoders=decoder_versions()))
    start = time.perf_counter()
    for name in requested:
        spec = SUITES[name]
        reason = ctx.unavailable(spec)
        if reason and "all" in suites and name not in suites:
            print_main(f"[{name}] skipped: {reason}")
            results.setdefault("skipped", {})[name] = reason
            continue
        if reason:
            raise FileNotFoundError(f"suite {name}: {reason}")
        t0 = time.perf_counter()
        results["suites"][name] = _RUNNERS[spec.kind](ctx, spec)
        results["suites"][name]["timing"]["seconds"] = time.perf_counter() - t0
        if out_dir:
            write_report(out_dir, results, options.baseline, plots=False)
    results["timing"]["seconds"] = time.perf_counter() - start
    if out_dir:
        write_report(out_dir, results, options.baseline, plots=options.plots)
    if options.tensorboard:
        write_tensorboard(results, options.tensorboard, options.tensorboard_step)
    return results


class _Context:
    """State shared by the suites of one run: the predictor, the cell store and the clean test set (loaded once)."""

    def __init__(self, predictor: Predictor, info: Any, options: EvalOptions, store: CellStore):
        self.predictor, self.info, self.options, self.store = predictor, info, options, store
        self.device = predictor.device
        self.progress = EvalProgress()  # cell lines; tqdm bars on a terminal
        self._clean: CleanSet | None = None
        amp = options.inference.amp_dtype()
        self.fingerprint = {"checkpoint_sha256": info.sha256, "limit": options.limit,
                            "amp": None if amp is None else str(amp).replace("torch.", "")}

    def folder(self, key: str, default: str | Path) -> Path:
        """``--root KEY=DIR`` when given, else ``default`` under the data root."""
        return Path(self.options.roots.get(key) or data_root(self.options.data_root) / default)

    def generated(self, spec: SuiteSpec) -> bool:
        return self.options.generate or spec.folder is None

    def unavailable(self, spec: SuiteSpec) -> str | None:
        """Why a suite cannot run here (its released folder is missing), or None."""
        if spec.kind in ("clean", "calibration") or self.generated(spec):
            return None
        folder = self.folder(spec.name, spec.folder)
        return None if folder.is_dir() else (f"released data folder {folder} does not exist (set --data-root, "
                                             f"--root {spec.name}=DIR, or use --generate)")

    def clean(self) -> CleanSet:
        """The clean test set of the model's dataset, cut to ``limit``."""
        if self._clean is None:
            dataset = self.info.dataset
            if dataset == "imagenet":
                root = data_root(self.options.data_root)
                folder = self.folder("imagenet", root / "val" if (root / "val").is_dir() else root / "imagenet" / "val")
            else:
                folder = self.folder(dataset, "")
            self._clean = load_clean_set(dataset, folder, self.options.limit)
        return self._clean

    def corruptions(self, spec: SuiteSpec) -> ReleasedCorruptions | GeneratedCorruptions:
        if self.generated(spec):
            return GeneratedCorruptions(self.clean(), spec.preset, self.options.seed)
        return ReleasedCorruptions(self.folder(spec.name, spec.folder), spec.benchmark, self.info.num_classes,
                                   self.options.limit, self.options.imagenet_c_resize)

    def perturbations(self, spec: SuiteSpec) -> ReleasedPerturbations | GeneratedPerturbations:
        if self.generated(spec):
            return GeneratedPerturbations(self.clean(), spec.preset, self.options.seed)
        return ReleasedPerturbations(self.folder(spec.name, spec.folder), spec.benchmark, self.options.limit)


def _checkpoint_record(info: Any, path: str | Path | None) -> dict:
    fields = ("name", "num_classes", "dataset", "mean", "std", "image_size", "source", "epoch", "sha256", "model_args")
    return {"path": None if path is None else str(path), **{k: getattr(info, k, None) for k in fields},
            "model": getattr(info, "display_name", None) or info.name}  # WRN-10-2; "name" keeps the registry key


def _config_record(options: EvalOptions, suites: list[str]) -> dict:
    record = dataclasses.asdict(options)
    record["baseline"] = None if options.baseline is None else {k: options.baseline.get(k) for k in ("name", "sha256")}
    record.update(record.pop("inference"))
    amp = options.inference.amp_dtype()
    record.update(suites=suites, autocast_dtype=None if amp is None else str(amp).replace("torch.", ""),
                  channels_last=options.inference.use_channels_last())
    return record


def _classify(pairs: Iterable[tuple[Tensor, Tensor]]) -> tuple[dict, dict[str, np.ndarray]]:
    """Cell record (metrics.classification_summary) and per-sample arrays from (logits, labels) batches."""
    parts: dict[str, list[Tensor]] = {}
    for logits, labels in pairs:
        for key, value in M.per_sample_statistics(logits, labels).items():
            parts.setdefault(key, []).append(value)
    stats = {key: torch.cat(values).cpu() for key, values in parts.items()}
    arrays = {"confidence": stats["confidence"].numpy(), "correct": stats["correct"].numpy()}
    return M.classification_summary(stats), arrays


def _cached_cell(ctx: _Context, suite: str, cell: str, fingerprint: dict, compute) -> tuple[dict, dict, bool]:
    """A finished cell from the store, or ``compute()`` timed and saved; the flag says whether it was computed."""
    hit = ctx.store.load(suite, cell, fingerprint)
    if hit is not None:
        return hit[0], hit[1], False
    t0 = time.perf_counter()
    record, arrays = compute()
    record["seconds"] = time.perf_counter() - t0
    ctx.store.save(suite, cell, fingerprint, record, arrays)
    return record, arrays, True


def _clean_cell(ctx: _Context) -> tuple[dict, dict, bool]:
    clean = ctx.clean()
    fingerprint = {**ctx.fingerprint, "data": clean.where}
    return _cached_cell(ctx, "clean", "clean", fingerprint, lambda: _classify(clean_pairs(clean, ctx.predictor)))


def _suite_result(kind: str, spec: SuiteSpec | None, ctx: _Context, source: dict, cells: list, aggregates: dict,
                  counts: dict, **extra) -> dict:
    return {"kind": kind, "dataset": ctx.info.dataset, "benchmark": spec.benchmark if spec else None,
            "source": source, "cells": cells, "aggregates": aggregates,
            "timing": {"cells_computed": counts["computed"], "cells_reused": counts["reused"]}, **extra}


def run_clean(ctx: _Context, spec: SuiteSpec) -> dict:
    """Top-1 error, NLL and Brier on the clean test set (ImageNet: Resize(256) + CenterCrop(224))."""
    record, _, computed = _clean_cell(ctx)
    ctx.progress.cell_done(spec.name, "clean", record, computed)
    preprocessing = ("Resize(256) + CenterCrop(224) + Normalize" if ctx.info.dataset == "imagenet"
                     else "ToTensor + Normalize, no crop or resize")
    return _suite_result("clean", spec, ctx, {"kind": "clean", "path": ctx.clean().where},
                         [{"name": "clean", **record}], {k: record[k] for k in ("n", "error", "nll", "brier")},
                         {"computed": int(computed), "reused": int(not computed)}, preprocessing=preprocessing)


def run_calibration(ctx: _Context, spec: SuiteSpec) -> dict:
    """RMS calibration error (both variants), ECE-15, MCE, NLL, Brier and the reliability bins on clean data."""
    record, arrays, computed = _clean_cell(ctx)
    ctx.progress.cell_done(spec.name, "clean", record, computed)
    if record["n"] < M.RMS_BIN_SIZE:
        raise ValueError(f"calibration needs at least {M.RMS_BIN_SIZE} test images, got {record['n']} (--limit?)")
    notes = ["rms_calib_error_hendrycks reproduces calib_err of hendrycks/outlier-exposure, which skips the last "
             "(highest-confidence) 100-sample bin; rms_calib_error sums every bin (docs/metrics.md §5.1)"]
    if record["n"] < 2 * M.RMS_BIN_SIZE:
        notes.append(f"only {record['n']} images: one adaptive bin, so the paper-compatible RMS is 0 by construction")
    return _suite_result("calibration", spec, ctx, {"kind": "clean", "path": ctx.clean().where},
                         [{"name": "clean", **record}], {k: v for k, v in record.items() if k != "seconds"},
                         {"computed": int(computed), "reused": int(not computed)}, notes=notes,
                         reliability=M.reliability_bins(arrays["confidence"], arrays["correct"]))


def run_corruption(ctx: _Context, spec: SuiteSpec) -> dict:
    """Every (corruption, severity) cell of a -C suite, then the CIFAR or ImageNet aggregates and the calibration of
    the corrupted predictions (mean over cells and pooled)."""
    opts = ctx.options
    source = ctx.corruptions(spec)
    names, notes = source.names(opts.corruptions)
    cells, arrays, counts = [], {}, {"computed": 0, "reused": 0}
    ctx.progress.start_suite(spec.name, len(names) * len(opts.severities))
    for name in names:
        for severity in opts.severities:
            fingerprint = {**ctx.fingerprint, **source.source, "corruption": name, "severity": severity,
                           "resize": opts.imagenet_c_resize}
            compute = lambda n=name, s=severity: _classify(  # noqa: E731
                ctx.progress.batches(source.pairs(ctx.predictor, n, s), f"{n} s{s}"))
            record, cell_arrays, computed = _cached_cell(ctx, spec.name, f"{name}-{severity}", fingerprint, compute)
            ctx.progress.cell_done(spec.name, f"{name} s{severity}", record, computed)
            counts["computed" if computed else "reused"] += 1
            cells.append({"corruption": name, "severity": severity, **record})
            arrays[name, severity] = cell_arrays
    errors = {name: {c["severity"]: c["error"] for c in cells if c["corruption"] == name} for name in names}
    if spec.benchmark == "imagenet":
        clean_error, note = _clean_error_for_relative_mce(ctx)
        notes += [note] if note else []
        aggregates = M.imagenet_c_summary(errors, clean_error, opts.alexnet_clean_error)
        aggregates["clean_error"] = clean_error
    else:
        aggregates = M.cifar_c_summary(errors)
        notes.append("mean corruption error: unnormalised mean over the 15 benchmark corruptions x 5 severities "
                     "(CIFAR convention, no AlexNet normalisation); extra corruptions are listed, never averaged in")
    aggregates["per_severity"] = {str(s): v for s, v in aggregates["per_severity"].items()}
    aggregates["calibration"] = _corrupted_calibration(cells, arrays)
    return _suite_result("corruption", spec, ctx, source.source, cells, aggregates, counts, notes=notes,
                         preprocessing=source.preprocessing)


def _clean_error_for_relative_mce(ctx: _Context) -> tuple[float | None, str | None]:
    try:
        record, _, computed = _clean_cell(ctx)
    except FileNotFoundError as exc:
        return None, f"relative mCE not computed: it needs the clean validation error ({exc})"
    ctx.progress.cell_done("imagenet-c", "clean (for relative mCE)", record, computed)
    return record["error"], None


def _corrupted_calibration(cells: list[dict], arrays: Mapping[tuple[str, int], Mapping[str, np.ndarray]]) -> dict:
    """Calibration of the benchmark corruptions' predictions, aggregated two named ways (docs/metrics.md §5.1,
    UNCERTAIN how the paper aggregated): the mean of the per-cell values and the value pooled over all cells."""
    bench = [c for c in cells if c["corruption"] in CORRUPTIONS and "rms_calib_error" in c]
    if not bench:
        return {}
    mean = {k: sum(c[k] for c in bench) / len(bench) for k in ("rms_calib_error_hendrycks", "rms_calib_error",
                                                                 "ece_15", "mce_15")}
    keys = [(c["corruption"], c["severity"]) for c in bench]
    confidence = torch.from_numpy(np.concatenate([arrays[k]["confidence"] for k in keys]))
    correct = torch.from_numpy(np.concatenate([arrays[k]["correct"] for k in keys]))
    return {"mean_over_cells": mean, "pooled": M.calibration_summary(confidence, correct), "cells": len(bench)}


def run_perturbation(ctx: _Context, spec: SuiteSpec) -> dict:
    """Flip probability, top-5 and Zipf distances per perturbation, then the -P aggregates (normalised only with
    a baseline measured on the same data, docs/metrics.md §4.4)."""
    source = ctx.perturbations(spec)
    d = ctx.options.difficulty
    cells, counts = [], {"computed": 0, "reused": 0}
    names = source.names(ctx.options.perturbations, d)
    ctx.progress.start_suite(spec.name, len(names))
    for name in names:
        fingerprint = {**ctx.fingerprint, **source.source, "perturbation": name, "difficulty": d}
        compute = lambda n=name: _perturbation_record(  # noqa: E731
            n, d, ctx.progress.batches(source.logits(ctx.predictor, n, d), n))
        record, _, computed = _cached_cell(ctx, spec.name, f"{name}-d{d}", fingerprint, compute)
        record["file"] = perturbation_data_file(name, d)
        ctx.progress.cell_done(spec.name, name, record, computed)
        counts["computed" if computed else "reused"] += 1
        cells.append(record)
    fp = {c["perturbation"]: c["flip_probability"] for c in cells}
    t5d = {c["perturbation"]: c["top5_distance"] for c in cells}
    baseline = (ctx.options.baseline or {}).get("suites", {}).get(spec.name)
    aggregates = M.perturbation_summary(fp, t5d, baseline, cifar=spec.benchmark == "cifar")
    notes = ["noise perturbations compare every frame with frame 0; the others compare frames d apart "
             f"(d = {d}); FP and uT5D are unnormalised"]
    if baseline is None:
        notes.append("no baseline given (--baseline-ckpt or --baseline-results): mFR / mT5D not computed; the AlexNet "
                     "normalisers of the published ImageNet-P numbers are not public (docs/metrics.md §4.4)")
    baseline_id = None if baseline is None else {k: (ctx.options.baseline or {}).get(k)
                                                 for k in ("name", "model", "sha256")}
    return _suite_result("perturbation", spec, ctx, source.source, cells, aggregates, counts, notes=notes,
                         baseline=baseline_id, preprocessing=source.preprocessing)


def _perturbation_record(name: str, difficulty: int, batches: Iterable[Tensor]) -> tuple[dict, dict]:
    noise = is_noise_perturbation(name)
    fp, t5d, zipf, frames = [], [], [], None
    for logits in batches:  # (B, T, K)
        frames = logits.shape[1]
        fp.append(M.flip_probability(M.predictions(logits), noise, difficulty))
        t5d.append(M.top5_distance(logits, noise, difficulty))
        zipf.append(M.zipf_distance(logits, noise, difficulty))
    fp_all = torch.cat(fp)
    return {"perturbation": name, "difficulty": difficulty, "videos": int(fp_all.numel()), "frames": frames,
            "flip_probability": fp_all.mean().item(), "top5_distance": torch.cat(t5d).mean().item(),
            "zipf_distance": torch.cat(zipf).mean().item()}, {}


_RUNNERS = MappingProxyType({"clean": run_clean, "calibration": run_calibration, "corruption": run_corruption,
                             "perturbation": run_perturbation})

