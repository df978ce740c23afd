"""What a run reports: TensorBoard scalars and image grids, a JSONL log with one line per epoch, tqdm bars."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from runtime.files import atomic_write_text


class RunTracker:
    """TensorBoard (``<run>/tb``) and ``<run>/metrics.jsonl``; a no-op on non-main ranks.

    Args:
        run_dir: the run directory.
        enabled: False on every rank but 0.
        resume_epoch: when resuming, log lines of later epochs (written after that checkpoint) are dropped, so the
            log never holds an epoch twice.
    """

    def __init__(self, run_dir: str | Path, enabled: bool = True, resume_epoch: int | None = None):
        self.run_dir, self.enabled = Path(run_dir), enabled
        self.log_path = self.run_dir / "metrics.jsonl"
        self.writer = None
        if not enabled:
            return
        if resume_epoch is not None and self.log_path.exists():
            keep = [line for line in self.log_path.read_text().splitlines()
                    if line.strip() and json.loads(line).get("epoch", 0) <= resume_epoch]
            atomic_write_text(self.log_path, "".join(line + "\n" for line in keep))
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(self.run_dir / "tb"))

    def scalars(self, step: int, values: dict[str, float]) -> None:
        if self.writer is not None:
            for tag, value in values.items():
                if value is not None:
                    self.writer.add_scalar(tag, value, step)

    def image_grid(self, tag: str, images: torch.Tensor, step: int, nrow: int) -> None:
        """``images``: (N, 3, H, W) float in [0, 1]."""
        if self.writer is not None:
            from torchvision.utils import make_grid

            self.writer.add_image(tag, make_grid(images.float().cpu(), nrow=nrow, padding=2), step)

    def log_epoch(self, record: dict[str, Any]) -> None:
        """Append one JSON line (flushed at once; a crash can only lose the line being written)."""
        if not self.enabled:
            return
        with open(self.log_path, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def progress(iterable, total: int, desc: str, enabled: bool = True):
    """A tqdm bar on an interactive terminal; silent in logs (CI, SLURM) and on non-main ranks."""
    return tqdm(iterable, total=total, desc=desc, leave=False, dynamic_ncols=True,
                disable=(not enabled) or not sys.stderr.isatty())
