"""Evaluation suites: clean, -C (CIFAR-10/100-C, ImageNet-C, digits-C), -P and calibration.

A suite orchestrates: it picks its data source (evaluation/sources.py: released files, or generated in memory),
runs the predictor cell by cell, keeps each (suite, corruption, severity) cell in the cell store as it completes
(evaluation/store.py) and hands per-sample statistics to evaluation/metrics.py. It computes no metric itself.
``plan_evaluation`` checks a whole evaluation (options, suites, data, class counts, output folder) before any cell is
computed; ``run_evaluation`` runs a list of suites for a model whose identity is known (evaluation/api.py builds it).
Under torchrun the ranks split the plan's cells (evaluation/sharding.py) and rank 0 writes the report.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from corruptions import ALL_CORRUPTIONS, CORRUPTIONS, SEVERITIES
from corruptions.sequences import ALL_PERTURBATION_NAMES, DIFFICULTIES, is_noise_perturbation
from evaluation import metrics as M
from evaluation.inference import AMP_DTYPES, InferenceSettings, Predictor
from evaluation.progress import EvalProgress, cell_summary
from evaluation.report import new_results, write_report, write_tensorboard
from evaluation.sharding import CellShare, agree, deal_unfinished
from evaluation.sources import (
    DATASET_CLASSES,
    CleanSet,
    GeneratedCorruptions,
    GeneratedPerturbations,
    ReleasedCorruptions,
    ReleasedPerturbations,
    check_class_count,
    clean_pairs,
    describe_source,
    load_clean_set,
    perturbation_data_file,
)
from evaluation.store import CELLS_DIR, CellStore, claim_output_folder, record_owner
from loaders.released import decoder_versions
from runtime.arguments import closest
from runtime.distributed import all_gather_values, print_main
from runtime.environment import environment_record
from runtime.files import data_root
from runtime.locks import folder_lock


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
    overwrite: bool = False               # out_dir may hold another checkpoint's results: replace them
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
            raise ValueError(f"unknown suite {name!r}{did_you_mean(name, ('all', *SUITES))}; valid: all, "
                             f"{', '.join(SUITES)}")
        spec = SUITES[name]
        if spec.dataset is not None and spec.dataset != dataset:
            raise ValueError(f"suite {name!r} evaluates {spec.dataset} models; the checkpoint's dataset is "
                             f"{dataset!r} (suites for it: {', '.join(DATASET_SUITES.get(dataset, ('clean',)))})")
        out.append(name)
    return list(dict.fromkeys(out))


def did_you_mean(name: str, valid: Sequence[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest valid name, or an empty string."""
    close = closest(name, valid)
    return f" (did you mean {close!r}?)" if close else ""


def check_names(values: Sequence | None, valid: Sequence, what: str) -> None:
    """Every value of ``values`` must be one of ``valid`` (names are never taken as paths).

    Raises:
        ValueError: naming the first unknown value, the closest valid one and the valid ones.
    """
    if values is None:
        return
    if isinstance(values, (str, int)) or not len(values):
        raise ValueError(f"{what}: expected a non-empty list of names, got {values!r}; valid: "
                         f"{', '.join(map(str, valid))}")
    for value in values:
        if value not in valid:
            raise ValueError(f"{what}: unknown value {value!r}{did_you_mean(value, valid)}; valid: "
                             f"{', '.join(map(str, valid))}")


# Every numeric option with its valid range: (EvalOptions or InferenceSettings field, minimum, what it is).
NUMERIC_OPTIONS = (("limit", 1, "images / videos per cell, or None for all"), ("seed", 0, "seed of generated sets"),
                   ("tensorboard_step", 0, "TensorBoard step"))
NUMERIC_INFERENCE = (("batch_size", 1, "images per forward pass"), ("chunk_images", 1, "images per transfer"),
                     ("workers", 0, "decode workers"))


def check_options(options: EvalOptions) -> None:
    """Ranges and names of every option (the command line checks the same ranges when it parses).

    Raises:
        ValueError: naming the option, its value and the valid range or names.
    """
    fields = [(options, name, low, what) for name, low, what in NUMERIC_OPTIONS]
    fields += [(options.inference, name, low, what) for name, low, what in NUMERIC_INFERENCE]
    for owner, name, low, what in fields:
        value = getattr(owner, name)
        if value is None and name == "limit":
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name}={value!r}: expected an integer >= {low} ({what})")
    if options.difficulty not in DIFFICULTIES:
        raise ValueError(f"difficulty={options.difficulty!r}: expected one of {', '.join(map(str, DIFFICULTIES))} "
                         "(-P frame step)")
    if not options.severities or any(isinstance(s, bool) or s not in SEVERITIES for s in options.severities):
        raise ValueError(f"severities={tuple(options.severities)!r}: expected severities in "
                         f"{SEVERITIES[0]}..{SEVERITIES[-1]}")
    if options.inference.amp not in AMP_DTYPES:
        raise ValueError(f"amp={options.inference.amp!r}: expected one of {', '.join(AMP_DTYPES)}")
    if not 0.0 < float(options.alexnet_clean_error) < 1.0:
        raise ValueError(f"alexnet_clean_error={options.alexnet_clean_error!r}: expected a fraction in (0, 1)")
    check_names(options.corruptions, ALL_CORRUPTIONS, "corruptions")
    check_names(options.perturbations, ALL_PERTURBATION_NAMES, "perturbations")
    for name in options.perturbations or ():
        perturbation_data_file(name, options.difficulty)  # e.g. a difficulty other perturbations do not have


@dataclass(frozen=True)
class EvaluationPlan:
    """What an evaluation will do, checked before any cell is computed.

    Attributes:
        suites: the suites to run, in order (``all`` expanded).
        skipped: suites of ``all`` whose data is not here, with the reason.
    """

    suites: tuple[str, ...]
    skipped: Mapping[str, str]


def plan_evaluation(suites: str | Sequence[str], options: EvalOptions, dataset: str, num_classes: int | None = None,
                    *, checkpoint_sha256: str | None = None, checkpoint_path: str | Path | None = None
                    ) -> EvaluationPlan:
    """Check a whole evaluation before any work: option ranges and names, suite names (with "did you mean"), data
    present for each suite (or generated), the model's class count against the data's classes, calibration's
    minimum sample count, and that ``options.out_dir`` does not hold another checkpoint's results.

    Args:
        suites: suite names or "all" (SUITES, DATASET_SUITES).
        options: the evaluation's options (EvalOptions).
        dataset: what the model was trained on (digits | cifar10 | cifar100 | imagenet).
        num_classes: the model's outputs; None skips the class checks.
        checkpoint_sha256, checkpoint_path: the model's identity, for the output-folder check (skipped when None).

    Returns:
        The suites to run and the ones of ``all`` skipped for missing data.

    Raises:
        ValueError: a bad option, suite, class count or output folder (the message names it and what is valid).
        FileNotFoundError: data a requested suite needs is missing (names the file or folder).
    """
    names = [suites] if isinstance(suites, str) else list(suites)
    check_options(options)
    if not names:
        raise ValueError(f"no suite given; valid: all, {', '.join(SUITES)}")
    requested = resolve_suites(names, dataset)
    if num_classes is not None and dataset in DATASET_CLASSES:
        check_class_count(f"dataset {dataset}", DATASET_CLASSES[dataset], num_classes)
    ctx = _Context(None, None, options, None, dataset=dataset, num_classes=num_classes)
    run, skipped = [], {}
    for name in requested:
        spec = SUITES[name]
        reason = ctx.unavailable(spec)
        if reason and "all" in names and name not in names:
            skipped[name] = reason
            continue
        if reason:
            raise FileNotFoundError(f"suite {name}: {reason}")
        ctx.check_data(spec)
        run.append(name)
    if options.out_dir and checkpoint_sha256:
        claim_output_folder(options.out_dir, checkpoint_sha256, None if checkpoint_path is None else
                            str(checkpoint_path), options.overwrite, check_only=True)
    return EvaluationPlan(tuple(run), MappingProxyType(skipped))


def run_evaluation(model: nn.Module, info: Any, suites: Sequence[str], options: EvalOptions,
                   checkpoint_path: str | Path | None = None, share: CellShare | None = None) -> dict | None:
    """Evaluate ``model`` on ``suites``: the runner behind evaluation.evaluate() (so evaluate.py) and train.py's hook.

    Everything is checked first (:func:`plan_evaluation`); then ``options.out_dir`` is claimed for this checkpoint
    (refused when it holds another's results, unless ``options.overwrite``) and locked for the run.

    With a ``share`` of several ranks (torchrun; every rank calls this with its own share), the ranks split the plan's
    cells through the cell store: each computes and stores its cells, then rank 0 writes the report from the store,
    as a one-process run would (same cells, same numbers). Rank 0 alone holds the lock and writes the owner file,
    report and TensorBoard scalars; it needs ``options.out_dir``.

    Args:
        model: maps normalised (B, 3, H, W) float images to (B, K) logits; moved to ``options.inference.device``.
        info: a models.weights.ModelInfo (name, num_classes, dataset, mean, std, image_size, source, epoch, sha256);
            ``sha256`` identifies the model in the fingerprint of every stored cell.
        suites: suite names or "all" (see SUITES / DATASET_SUITES).
        options: data, output, inference and subset settings.
        checkpoint_path: recorded in the results.
        share: this process's rank and the world size (CellShare.from_env() under torchrun); None: one process.

    Returns:
        The results dict (schema of evaluation/report.py), also written to ``options.out_dir`` when set: after every
        suite (results.json) and at the end (results.md and plots). None on ranks other than 0.
    """
    names = [suites] if isinstance(suites, str) else list(suites)
    path = None if checkpoint_path is None else str(checkpoint_path)
    if share is not None and share.enabled:
        return _run_shared(model, info, names, options, path, share)
    plan = plan_evaluation(names, options, info.dataset, info.num_classes, checkpoint_sha256=info.sha256,
                           checkpoint_path=path)
    if not options.out_dir:
        return _run_plan(model, info, plan, options, path, None)
    out_dir = Path(options.out_dir)
    with folder_lock(out_dir, "output folder"):
        claim_output_folder(out_dir, info.sha256, path, options.overwrite)
        return _run_plan(model, info, plan, options, path, out_dir)


def _run_shared(model: nn.Module, info: Any, names: list[str], options: EvalOptions, checkpoint_path: str | None,
                share: CellShare) -> dict | None:
    """One rank of a split evaluation: every rank checks the plan; rank 0 locks and claims the output folder; each
    rank computes its cells into the store; once all are stored, rank 0 runs the usual loop (every cell now reused)
    and writes the report. Ranks other than 0 return None."""
    start = time.perf_counter()
    plan, error = None, None
    try:
        share.check_process_group()
        if not options.out_dir:
            raise ValueError("splitting an evaluation across ranks needs an output folder (out_dir / --out): the "
                             "ranks hand their cells to rank 0 through <out>/cells")
        plan = plan_evaluation(names, options, info.dataset, info.num_classes, checkpoint_sha256=info.sha256,
                               checkpoint_path=checkpoint_path)
    except Exception as exc:  # re-raised by agree() on this rank, after every rank has heard of it
        error = exc
    agree(error, "to check the evaluation plan")
    out_dir = Path(options.out_dir)
    with contextlib.ExitStack() as held:
        if share.rank == 0:  # one writer; the lock keeps other evaluations out of the folder until the report is in
            try:
                held.enter_context(folder_lock(out_dir, "output folder"))
                claim_output_folder(out_dir, info.sha256, checkpoint_path, options.overwrite)
            except Exception as exc:  # re-raised by agree() on this rank
                error = exc
        agree(error, "to claim the output folder")
        store = CellStore(out_dir / CELLS_DIR, options.recompute)
        ctx = _Context(Predictor(model, info.mean, info.std, options.inference), info, options, store, share=share)
        computed = _compute_share(ctx, plan_cells(ctx, plan), share)
        by_rank = all_gather_values((computed, store.notes))  # returns once every rank has stored its cells
        if share.rank != 0:
            return None
        _check_shared_store(store, [cells for cells, _ in by_rank])
        store.recompute = False  # every cell is now finished: computed earlier, or by a rank just now
        store.notes = [note for _, notes in by_rank for note in notes]  # damaged cells other ranks recomputed
        ctx.computed_now = {tuple(cell) for cells, _ in by_rank for cell in cells}
        return _run_plan(model, info, plan, options, checkpoint_path, out_dir, ctx, start)


def _compute_share(ctx: _Context, cells: list[CellWork], share: CellShare) -> list[tuple[str, str]]:
    """Compute and store this rank's part of the plan's unfinished cells (sharding.deal_unfinished); returns the
    (suite, cell) keys computed. Every rank prints its own cell lines."""
    who = f"rank {share.rank}/{share.world_size}"

    def finished(index: int) -> bool:
        work = cells[index]
        return ctx.store.load(work.suite, work.key, work.fingerprint()) is not None

    def say(line: str) -> None:  # one write per line: the ranks share the terminal, and print's separate "\n" would
        sys.stdout.write(line + "\n")  # let another rank's line in between
        sys.stdout.flush()

    mine = deal_unfinished(share, len(cells), finished)
    say(f"{who}: computes {len(mine)} of the plan's {len(cells)} cells")
    computed = []
    for work in (cells[index] for index in mine):
        record, _, fresh = _cached_cell(ctx, work)
        if fresh:
            computed.append((work.suite, work.key))
            say(f"{who}: [{work.suite}] {work.label}: {cell_summary(record)} ({record['seconds']:.1f} s)")
    return computed


def _check_shared_store(store: CellStore, by_rank: list[list[tuple[str, str]]]) -> None:
    """Every cell another rank stored must be visible to rank 0 (a multi-node run needs a shared output folder)."""
    for rank, cells in enumerate(by_rank):
        for suite, cell in cells:
            path = store.folder / suite / f"{cell}.json"
            if not path.is_file():
                raise OSError(f"rank {rank} stored cell {suite}/{cell}, but rank 0 does not find {path}: with several "
                              "nodes the output folder (--out) must be on a file system all of them share")


def _run_plan(model: nn.Module, info: Any, plan: EvaluationPlan, options: EvalOptions, checkpoint_path: str | None,
              out_dir: Path | None, ctx: _Context | None = None, start: float | None = None) -> dict:
    if ctx is None:
        store = CellStore(out_dir / CELLS_DIR if out_dir else None, options.recompute)
        ctx = _Context(Predictor(model, info.mean, info.std, options.inference), info, options, store)
    store = ctx.store
    results = new_results(_checkpoint_record(info, checkpoint_path), _config_record(options, list(plan.suites)),
                          environment_record(options.inference.device, decoders=decoder_versions()))
    for name, reason in plan.skipped.items():
        print_main(f"[{name}] skipped: {reason}")
        results.setdefault("skipped", {})[name] = reason

    def write(plots: bool) -> None:
        if out_dir:
            written = write_report(out_dir, results, options.baseline, plots=plots)
            record_owner(out_dir, info.sha256, checkpoint_path, [p for p in written if Path(p).parent == out_dir])

    start = time.perf_counter() if start is None else start
    for name in plan.suites:
        spec = SUITES[name]
        t0 = time.perf_counter()
        results["suites"][name] = _RUNNERS[spec.kind](ctx, spec)
        results["suites"][name]["timing"]["seconds"] = time.perf_counter() - t0
        if store.notes:
            results["suites"][name].setdefault("notes", []).extend(store.notes)
            store.notes.clear()
        write(plots=False)
    results["timing"]["seconds"] = time.perf_counter() - start
    results["timing"]["ranks"] = ctx.share.world_size
    write(plots=options.plots)
    if options.tensorboard:
        write_tensorboard(results, options.tensorboard, options.tensorboard_step)
    return results


class _Context:
    """State shared by the suites of one run: the predictor, the cell store and the clean test set (loaded once)."""

    def __init__(self, predictor: Predictor | None, info: Any, options: EvalOptions, store: CellStore | None,
                 dataset: str | None = None, num_classes: int | None = None, share: CellShare | None = None):
        self.predictor, self.info, self.options, self.store = predictor, info, options, store
        self.share = share or CellShare()
        self.computed_now: set[tuple[str, str]] = set()  # stored cells the ranks of this run computed
        self.dataset = dataset if info is None else info.dataset
        self.num_classes = num_classes if info is None else info.num_classes
        self.device = None if predictor is None else predictor.device
        self.progress = EvalProgress()  # cell lines; tqdm bars on a terminal
        self._clean: CleanSet | None = None
        precision = options.inference.precision()
        self.fingerprint = {"checkpoint_sha256": None if info is None else info.sha256, "limit": options.limit,
                            "precision": precision["mode"], "tf32": precision["tf32"],
                            "device_type": torch.device(options.inference.device).type}

    def folder(self, key: str, default: str | Path) -> Path:
        """``--root KEY=DIR`` when given, else ``default`` under the data root."""
        return Path(self.options.roots.get(key) or data_root(self.options.data_root) / default)

    def generated(self, spec: SuiteSpec) -> bool:
        """Whether the suite's data is made in memory: --generate, or a suite without a released set (digits) whose
        folder (``--root NAME=DIR``, e.g. a set written by generate.py) is not given."""
        return self.options.generate or (spec.folder is None and not self.options.roots.get(spec.name))

    def unavailable(self, spec: SuiteSpec) -> str | None:
        """Why a suite cannot run here (its released folder is missing), or None."""
        if spec.kind in ("clean", "calibration") or self.generated(spec):
            return None
        folder = self.folder(spec.name, spec.folder or spec.name)
        return None if folder.is_dir() else (f"released data folder {folder} does not exist (set --data-root, "
                                             f"--root {spec.name}=DIR, or use --generate)")

    def clean_folder(self) -> Path:
        """Where the clean test set of the model's dataset lives (digits: nowhere, it ships with scikit-learn)."""
        if self.dataset == "imagenet":
            root = data_root(self.options.data_root)
            return self.folder("imagenet", root / "val" if (root / "val").is_dir() else root / "imagenet" / "val")
        return self.folder(self.dataset, "")

    def clean(self) -> CleanSet:
        """The clean test set of the model's dataset, cut to ``limit``."""
        if self._clean is None:
            self._clean = load_clean_set(self.dataset, self.clean_folder(), self.options.limit)
        return self._clean

    def check_data(self, spec: SuiteSpec) -> None:
        """Cheap checks of a suite's data before any work: files present, class counts, calibration's minimum.

        Raises:
            FileNotFoundError / ValueError: naming the file or folder and what was expected.
        """
        opts = self.options
        generated = self.generated(spec) and spec.kind in ("corruption", "perturbation")
        if generated and self.dataset == "imagenet":
            raise ValueError(f"suite {spec.name}: generating -C/-P in memory needs an in-memory clean test set "
                             "(CIFAR, digits); for ImageNet generate the files with generate.py and evaluate those")
        if spec.kind == "calibration" and opts.limit is not None and opts.limit < M.RMS_BIN_SIZE:
            raise ValueError(f"suite calibration needs at least {M.RMS_BIN_SIZE} test images (one adaptive "
                             f"calibration bin, docs/metrics.md §5.1); --limit {opts.limit} is below that")
        if spec.kind in ("clean", "calibration") or generated:
            self._check_clean()
        if spec.kind in ("clean", "calibration") or generated:
            return
        if spec.kind == "corruption":
            self._check_released_corruptions(spec)
        elif spec.kind == "perturbation":
            source = ReleasedPerturbations(self.folder(spec.name, spec.folder or spec.name), spec.benchmark, opts.limit)
            for name in source.names(opts.perturbations, opts.difficulty):
                source.fingerprint(name, opts.difficulty)  # names the missing file or folder
                if spec.benchmark != "imagenet":
                    from corruptions.sequences import num_frames
                    from loaders.released import open_cifar_p

                    file = perturbation_data_file(name, opts.difficulty)
                    open_cifar_p(source.folder, file, num_frames(file, spec.benchmark))

    def _check_clean(self) -> None:
        folder = self.clean_folder()
        if self.dataset in ("cifar10", "cifar100"):
            from loaders.cifar import CIFAR_SPLITS, cifar_folder

            for name in CIFAR_SPLITS[self.dataset]["test"]:
                path = cifar_folder(folder, self.dataset) / name
                if not path.is_file():
                    raise FileNotFoundError(f"{self.dataset} test batch {path} does not exist (set --data-root or "
                                            f"--root {self.dataset}=DIR to the folder holding "
                                            f"{cifar_folder('', self.dataset)}/)")
        elif self.dataset == "imagenet":
            if not folder.is_dir():
                raise FileNotFoundError(f"ImageNet validation folder {folder} does not exist (set --data-root or "
                                        "--root imagenet=DIR to a <wnid>/<image> folder)")
            classes = [d for d in folder.iterdir() if d.is_dir() and not d.name.startswith(".")]
            check_class_count(folder, len(classes), self.num_classes, "class folders")

    def _check_released_corruptions(self, spec: SuiteSpec) -> None:
        opts = self.options
        folder = self.folder(spec.name, spec.folder or spec.name)
        source = ReleasedCorruptions(folder, spec.benchmark, self.num_classes, opts.limit, opts.imagenet_c_resize)
        names, _ = source.names(opts.corruptions)
        missing = [s for s in opts.severities if s not in source.severities]
        if missing:
            raise ValueError(f"{folder}: holds severities {', '.join(map(str, source.severities))} (manifest.json), "
                             f"not {', '.join(map(str, missing))}; pass --severities")
        for name in names:
            if spec.benchmark == "imagenet":
                for severity in opts.severities:
                    cell = folder / name / str(severity)
                    if not cell.is_dir():
                        raise FileNotFoundError(f"ImageNet-C cell folder {cell} does not exist; expected "
                                                f"{folder}/<corruption>/<1..5>/<wnid>/<image>.JPEG")
                    classes = [d for d in cell.iterdir() if d.is_dir() and not d.name.startswith(".")]
                    check_class_count(cell, len(classes), self.num_classes, "class folders")
            elif not (folder / f"{name}.npy").is_file():
                raise FileNotFoundError(f"CIFAR-C {name} file {folder / f'{name}.npy'} does not exist (pass "
                                        "--corruptions to evaluate the ones present)")
        if spec.benchmark != "imagenet":
            from loaders.released import load_cifar_c_labels, open_cifar_c

            labels = load_cifar_c_labels(folder, source.severities, self.num_classes)  # shape, blocks, label range
            for name in names:  # header, dtype, shape and length of every file (memory-mapped: nothing read)
                open_cifar_c(folder, name, source.severities, labels)

    def corruptions(self, spec: SuiteSpec) -> ReleasedCorruptions | GeneratedCorruptions:
        if self.generated(spec):
            return GeneratedCorruptions(self.clean(), spec.preset, self.options.seed)
        return ReleasedCorruptions(self.folder(spec.name, spec.folder or spec.name), spec.benchmark, self.num_classes,
                                   self.options.limit, self.options.imagenet_c_resize)

    def perturbations(self, spec: SuiteSpec) -> ReleasedPerturbations | GeneratedPerturbations:
        if self.generated(spec):
            return GeneratedPerturbations(self.clean(), spec.preset, self.options.seed)
        return ReleasedPerturbations(self.folder(spec.name, spec.folder or spec.name), spec.benchmark,
                                     self.options.limit)


def _checkpoint_record(info: Any, path: str | Path | None) -> dict:
    fields = ("name", "num_classes", "dataset", "mean", "std", "image_size", "source", "epoch", "sha256", "model_args")
    return {"path": None if path is None else str(path), **{k: getattr(info, k, None) for k in fields},
            "model": getattr(info, "display_name", None) or info.name}  # WRN-10-2; "name" keeps the registry key


def _config_record(options: EvalOptions, suites: list[str]) -> dict:
    record = dataclasses.asdict(options)
    record["baseline"] = None if options.baseline is None else {k: options.baseline.get(k) for k in ("name", "sha256")}
    record.update(record.pop("inference"))
    precision = options.inference.precision()
    record.update(suites=suites, autocast_dtype=precision["autocast_dtype"], precision=precision,
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


@dataclass(frozen=True)
class CellWork:
    """One cell of a plan: where the store keeps it (``suite``/``key``), its name in progress lines, what its numbers
    depend on (``fingerprint()``, built when needed: it may stat every file of the cell) and ``compute()``, which
    returns its record and per-sample arrays."""

    suite: str
    key: str
    label: str
    fingerprint: Callable[[], dict]
    compute: Callable[[], tuple[dict, dict]]


def plan_cells(ctx: _Context, plan: EvaluationPlan) -> list[CellWork]:
    """Every cell ``plan`` needs, once each, in the order the suites run them (the clean cell serves clean,
    calibration and ImageNet-C's relative mCE)."""
    opts, cells = ctx.options, {}
    for name in plan.suites:
        spec = SUITES[name]
        if spec.kind in ("clean", "calibration"):
            work = [_clean_work(ctx)]
        elif spec.kind == "corruption":
            source = ctx.corruptions(spec)
            work = [_corruption_work(ctx, spec, source, c, s) for c in source.names(opts.corruptions)[0]
                    for s in opts.severities]
            if spec.benchmark == "imagenet":
                with contextlib.suppress(FileNotFoundError):  # no clean set: the suite notes that relative mCE is
                    work.append(_clean_work(ctx))              # not computed
        else:
            source = ctx.perturbations(spec)
            work = [_perturbation_work(ctx, spec, source, p, opts.difficulty)
                    for p in source.names(opts.perturbations, opts.difficulty)]
        for cell in work:
            cells.setdefault((cell.suite, cell.key), cell)
    return list(cells.values())


def _cached_cell(ctx: _Context, work: CellWork) -> tuple[dict, dict, bool]:
    """A finished cell from the store, or ``work.compute()`` timed and saved; the flag says whether it was computed
    in this run (here, or by another rank of a split run)."""
    fingerprint = work.fingerprint()
    hit = ctx.store.load(work.suite, work.key, fingerprint)
    if hit is not None:
        return hit[0], hit[1], (work.suite, work.key) in ctx.computed_now
    t0 = time.perf_counter()
    record, arrays = work.compute()
    record["seconds"] = time.perf_counter() - t0
    ctx.store.save(work.suite, work.key, fingerprint, record, arrays, writer=ctx.share.writer())
    return record, arrays, True


def _clean_work(ctx: _Context) -> CellWork:
    clean = ctx.clean()
    if len(clean.labels) and ctx.num_classes is not None and int(clean.labels.max()) >= ctx.num_classes:
        raise ValueError(f"{clean.where}: labels span 0..{int(clean.labels.max())}, but the model has "
                         f"{ctx.num_classes} outputs")
    return CellWork("clean", "clean", "clean", lambda: {**ctx.fingerprint, "data": clean.where,
                                                        "files": clean.fingerprint},
                    lambda: _classify(clean_pairs(clean, ctx.predictor)))


def _clean_cell(ctx: _Context) -> tuple[dict, dict, bool]:
    return _cached_cell(ctx, _clean_work(ctx))


def _corruption_work(ctx: _Context, spec: SuiteSpec, source: ReleasedCorruptions | GeneratedCorruptions, name: str,
                     severity: int) -> CellWork:
    label = f"{name} s{severity}"
    return CellWork(spec.name, f"{name}-{severity}", label,
                    lambda: {**ctx.fingerprint, "source": source.source, "data": source.fingerprint(name, severity),
                             "corruption": name, "severity": severity, "resize": ctx.options.imagenet_c_resize},
                    lambda: _classify(ctx.progress.batches(source.pairs(ctx.predictor, name, severity), label)))


def _perturbation_work(ctx: _Context, spec: SuiteSpec, source: ReleasedPerturbations | GeneratedPerturbations,
                       name: str, difficulty: int) -> CellWork:
    return CellWork(spec.name, f"{name}-d{difficulty}", name,
                    lambda: {**ctx.fingerprint, "source": source.source, "data": source.fingerprint(name, difficulty),
                             "perturbation": name, "difficulty": difficulty},
                    lambda: _perturbation_record(name, difficulty,
                                                 ctx.progress.batches(source.logits(ctx.predictor, name, difficulty),
                                                                      name)))


def _suite_result(kind: str, spec: SuiteSpec | None, ctx: _Context, source: dict, cells: list, aggregates: dict,
                  counts: dict, **extra) -> dict:
    return {"kind": kind, "dataset": ctx.dataset, "benchmark": spec.benchmark if spec else None,
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
        raise ValueError(f"suite calibration needs at least {M.RMS_BIN_SIZE} test images, the clean test set has "
                         f"{record['n']}")
    notes = ["rms_calib_error_hendrycks reproduces calib_err of hendrycks/outlier-exposure, which skips the last "
             "(highest-confidence) 100-sample bin; rms_calib_error sums every bin (docs/metrics.md §5.1)"]
    if record["n"] < 2 * M.RMS_BIN_SIZE:
        notes.append(f"only {record['n']} images: one adaptive bin, so the paper-compatible RMS is 0 by construction")
    return _suite_result("calibration", spec, ctx, {"kind": "clean", "path": ctx.clean().where},
                         [{"name": "clean", **record}], {k: v for k, v in record.items() if k != "seconds"},
                         {"computed": int(computed), "reused": int(not computed)}, notes=notes,
                         reliability=M.reliability_bins(arrays["confidence"], arrays["correct"]))


def _log_counts(suite: str, counts: dict) -> None:
    print_main(f"[{suite}] cells: {counts['computed']} computed, {counts['reused']} reused from earlier runs")


def run_corruption(ctx: _Context, spec: SuiteSpec) -> dict:
    """Every (corruption, severity) cell of a -C suite, then the CIFAR or ImageNet aggregates and the calibration of
    the corrupted predictions (mean over cells and pooled)."""
    opts = ctx.options
    source = ctx.corruptions(spec)
    print_main(f"[{spec.name}] data: {describe_source(source.source)}")
    names, notes = source.names(opts.corruptions)
    cells, arrays, counts = [], {}, {"computed": 0, "reused": 0}
    ctx.progress.start_suite(spec.name, len(names) * len(opts.severities))
    for name in names:
        for severity in opts.severities:
            record, cell_arrays, computed = _cached_cell(ctx, _corruption_work(ctx, spec, source, name, severity))
            ctx.progress.cell_done(spec.name, f"{name} s{severity}", record, computed)
            counts["computed" if computed else "reused"] += 1
            cells.append({"corruption": name, "severity": severity, **record})
            arrays[name, severity] = cell_arrays
    _log_counts(spec.name, counts)
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
    print_main(f"[{spec.name}] data: {describe_source(source.source)}")
    d = ctx.options.difficulty
    cells, counts = [], {"computed": 0, "reused": 0}
    names = source.names(ctx.options.perturbations, d)
    ctx.progress.start_suite(spec.name, len(names))
    for name in names:
        record, _, computed = _cached_cell(ctx, _perturbation_work(ctx, spec, source, name, d))
        record["file"] = perturbation_data_file(name, d)
        ctx.progress.cell_done(spec.name, name, record, computed)
        counts["computed" if computed else "reused"] += 1
        cells.append(record)
    _log_counts(spec.name, counts)
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

