"""``evaluate()``: the Python door of the evaluator, for any ``nn.Module`` (ours, timm, torchvision, a loaded official
checkpoint). evaluate.py calls it too, so the command line and Python produce the same results dict.

    from evaluation import evaluate
    results = evaluate(model, ["cifar10-c"], dataset="cifar10", mean=(0.5,) * 3, std=(0.5,) * 3, data_root="/data")
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from evaluation.inference import InferenceSettings
from evaluation.sharding import CellShare
from evaluation.suites import EvalOptions, run_evaluation
from runtime.devices import resolve_device

if TYPE_CHECKING:
    from models.weights import ModelInfo

_OPTION_FIELDS = tuple(f.name for f in dataclasses.fields(EvalOptions) if f.name != "inference")
_INFERENCE_FIELDS = tuple(f.name for f in dataclasses.fields(InferenceSettings) if f.name != "device")


def evaluate(model: nn.Module, suites: str | Sequence[str] = ("clean",), *, dataset: str | None = None,
             mean: Sequence[float] | None = None, std: Sequence[float] | None = None, num_classes: int | None = None,
             data_root: str | Path | None = None, out_dir: str | Path | None = None,
             device: str | torch.device | None = None, options: EvalOptions | None = None,
             model_info: ModelInfo | None = None, checkpoint_path: str | Path | None = None,
             share: CellShare | None = None, **settings: Any) -> dict | None:
    """Evaluate ``model`` on robustness suites and return the results dict that results.json holds.

    Args:
        model: maps normalised (B, 3, H, W) float images to (B, K) logits; moved to ``device`` and put in eval mode.
        suites: suite names (evaluation.suites.SUITES) or "all" (the suites of ``dataset`` whose data is here).
        dataset: what the model was trained on (digits | cifar10 | cifar100 | imagenet): picks the clean test set
            and which suites fit.
        mean, std: per-channel normalisation of [0, 1] RGB inputs that the model expects.
        num_classes: the model's outputs; when given, labels and ImageNet class folders are checked against it.
        data_root: datasets and released -C/-P folders (default: $AUGMIX_DATA_ROOT or ./data).
        out_dir: when given, results.json, results.md, plots and the resumable per-cell store are written there; a
            folder holding another model's results is refused unless ``overwrite=True``.
        device: "auto" (CUDA when available), "cpu", "cuda:1", ...; default: ``options``' device, else auto.
        options: a full EvalOptions to start from; the keywords above and ``settings`` override its fields.
        model_info: the identity of a loaded checkpoint (models.weights.load_model); ``dataset``, ``mean``,
            ``std`` and ``num_classes`` default to its values. Without it, the model is identified by the SHA-256
            of its state dict, so the cell store never mixes results of different weights.
        checkpoint_path: recorded in the results.
        share: under torchrun, this rank's part (``CellShare.from_env()``, after ``init_process_group``; every rank
            calls evaluate()): the ranks split the cells through ``out_dir``'s cell store and rank 0 writes the report.
        **settings: any EvalOptions field (``generate``, ``seed``, ``limit``, ``corruptions``, ``severities``,
            ``perturbations``, ``difficulty``, ``roots``, ``baseline``, ``plots``, ``overwrite``, ...) or
            InferenceSettings field (``batch_size``, ``amp`` = off (float32, default) | bf16 | fp16,
            ``channels_last``, ``chunk_images``, ``workers``). Everything is checked before any work
            (evaluation.plan_evaluation).

    Returns:
        The results dict (schema of evaluation/report.py): checkpoint identity, config, environment, and per suite
        its cells and aggregates; None on ranks other than 0 of a ``share``.

    Raises:
        ValueError: an unknown setting, a missing dataset / mean / std, or a suite that does not fit the dataset.
        FileNotFoundError: the released data of a requested suite is missing (the message names the folder).
    """
    options = _options(options, data_root, out_dir, device, settings)
    info = _model_info(model, model_info, dataset, mean, std, num_classes)
    names = [suites] if isinstance(suites, str) else list(suites)
    return run_evaluation(model, info, names, options, checkpoint_path=checkpoint_path, share=share)


def _options(options: EvalOptions | None, data_root, out_dir, device, settings: dict[str, Any]) -> EvalOptions:
    unknown = sorted(set(settings) - set(_OPTION_FIELDS) - set(_INFERENCE_FIELDS))
    if unknown:
        raise ValueError(f"evaluate(): unknown setting(s) {', '.join(unknown)}; valid: "
                         f"{', '.join(_OPTION_FIELDS + _INFERENCE_FIELDS)}")
    chosen = device if device is not None or options is None else options.inference.device
    options = options or EvalOptions()
    inference = dataclasses.replace(options.inference, device=str(resolve_device(chosen and str(chosen), "device")),
                                    **{k: v for k, v in settings.items() if k in _INFERENCE_FIELDS})
    fields = {k: v for k, v in settings.items() if k in _OPTION_FIELDS}
    if data_root is not None:
        fields["data_root"] = str(data_root)
    if out_dir is not None:
        fields["out_dir"] = str(out_dir)
    for key in ("corruptions", "severities", "perturbations"):
        if isinstance(fields.get(key), (str, int)):
            fields[key] = (fields[key],)
        elif fields.get(key) is not None:
            fields[key] = tuple(fields[key])
    return dataclasses.replace(options, inference=inference, **fields)


def _model_info(model: nn.Module, info: ModelInfo | None, dataset, mean, std, num_classes) -> ModelInfo:
    from models.weights import ModelInfo  # imports torchvision (about a second): only when a model is evaluated

    given = {"dataset": dataset, "mean": None if mean is None else tuple(float(m) for m in mean),
             "std": None if std is None else tuple(float(s) for s in std), "num_classes": num_classes}
    if info is not None:
        return dataclasses.replace(info, **{k: v for k, v in given.items() if v is not None})
    missing = [k for k in ("dataset", "mean", "std") if given[k] is None]
    if missing:
        raise ValueError(f"evaluate(): {', '.join(missing)} required for a model without model_info (the dataset "
                         "picks the clean test set; mean/std normalise [0, 1] RGB inputs as the model was trained)")
    return ModelInfo(name=type(model).__name__, num_classes=num_classes, dataset=dataset, mean=given["mean"],
                     std=given["std"], image_size=None, source="nn.Module", epoch=None,
                     sha256=state_dict_sha256(model))


def state_dict_sha256(model: nn.Module) -> str:
    """SHA-256 over the names, dtypes, shapes and bytes of a module's state dict: the identity of its weights."""
    digest = hashlib.sha256()
    for name, value in model.state_dict().items():
        if not isinstance(value, torch.Tensor):
            digest.update(f"{name}={value!r};".encode())
            continue
        value = value.detach().cpu().contiguous()
        digest.update(f"{name}:{value.dtype}:{tuple(value.shape)};".encode())
        digest.update(value.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
