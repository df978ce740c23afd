"""The training step, one epoch, and clean evaluation. ``train_step`` reads top to bottom on one screen."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from runtime.seeding import derive_seed
from training.tracking import progress


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; the run stops without writing a checkpoint."""


@dataclass
class Stepper:
    """Everything one optimisation step touches."""
    model: nn.Module
    loss_fn: nn.Module                      # AugMixLoss: (logits, labels) -> (loss, {"ce", "jsd"})
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    amp_dtype: torch.dtype | None           # None = full precision
    channels_last: bool = False


@dataclass
class ViewMaker:
    """Turns a loader batch into the model input: [clean; aug1; aug2] (JSD), one AugMix view, or the clean view.

    tensor backend: the batch is (uint8 images, labels) and AugMix runs here, on the device, with a generator
    seeded from (seed, epoch, step) so a resumed run draws the same views. pil backend: the views arrive ready.
    """
    backend: str                            # "tensor" | "pil"
    mode: str                               # "augmix" | "standard"
    jsd: bool
    augmix: nn.Module | None                # tensor AugMix (None for pil / standard)
    normalize: Callable[[Tensor], Tensor]   # uint8 (B, 3, H, W) -> normalised float
    device: torch.device
    seed: int
    generator: torch.Generator = field(init=False)

    def __post_init__(self):
        self.generator = torch.Generator(device=self.device)

    def __call__(self, batch, epoch: int, step: int) -> tuple[Tensor, Tensor]:
        images, labels = batch
        labels = labels.to(self.device, non_blocking=True)
        if self.backend == "pil":
            views = images if isinstance(images, list | tuple) else [images]
            return torch.cat([v.to(self.device, non_blocking=True) for v in views]), labels
        images = images.to(self.device, non_blocking=True)
        if self.mode == "standard":
            return self.normalize(images), labels
        self.generator.manual_seed(derive_seed(self.seed, epoch, step, 1))
        if not self.jsd:
            return self.augmix(images, generator=self.generator), labels
        return self.augmix.jsd_views(images, generator=self.generator), labels  # (3B, 3, H, W): [clean; aug1; aug2]


def train_step(s: Stepper, inputs: Tensor, labels: Tensor) -> tuple[Tensor, dict[str, Tensor], Tensor]:
    """One forward/backward/update. Returns (loss, {"ce", "jsd"}, logits of the first B rows), all detached."""
    if s.channels_last:
        inputs = inputs.contiguous(memory_format=torch.channels_last)
    with torch.autocast(inputs.device.type, dtype=s.amp_dtype or torch.float32, enabled=s.amp_dtype is not None):
        logits = s.model(inputs)
    loss, terms = s.loss_fn(logits.float(), labels)
    if not torch.isfinite(loss):
        raise NonFiniteLossError(f"loss is {loss.item()} (ce={terms['ce'].item()}, jsd={terms['jsd'].item()})")
    s.optimizer.zero_grad(set_to_none=True)
    s.scaler.scale(loss).backward()
    s.scaler.step(s.optimizer)
    s.scaler.update()
    s.scheduler.step()
    return loss.detach(), terms, logits[: len(labels)].detach()


class StopRequest:
    """SIGTERM / SIGINT handler: the current step finishes, then the loop checkpoints and stops."""

    def __init__(self):
        self.signum: int | None = None
        self._previous = {}

    def __enter__(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum, frame):
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C aborts at once
        self.signum = signum

    @property
    def requested(self) -> bool:
        return self.signum is not None


@dataclass
class EpochResult:
    steps_done: int                 # steps completed in this epoch (from 0), including earlier resumed ones
    completed: bool                 # False when a stop was requested mid-epoch
    loss: float
    ce: float
    jsd: float
    train_error: float
    images_per_s: float
    seconds: float


def train_one_epoch(s: Stepper, views: ViewMaker, loader, epoch: int, start_step: int, stop: StopRequest,
                    on_log: Callable[[int, dict], None], log_every: int, max_steps: int = 0) -> EpochResult:
    """Run the steps of ``epoch`` from ``start_step`` until the epoch ends, ``max_steps`` or a stop request."""
    s.model.train()
    loader.set_epoch(epoch, start_step)
    total_steps = loader.steps_per_epoch() if not max_steps else min(max_steps, loader.steps_per_epoch())
    sums = torch.zeros(4, dtype=torch.float64, device=views.device)  # loss, ce, jsd, errors (sums over images)
    seen, step, start = 0, start_step, time.perf_counter()
    bar = progress(loader, total=total_steps - start_step, desc=f"epoch {epoch + 1}")
    for batch in bar:
        if step >= total_steps:
            break
        inputs, labels = views(batch, epoch, step)
        loss, terms, logits = train_step(s, inputs, labels)
        b = len(labels)
        sums += torch.stack([loss * b, terms["ce"] * b, terms["jsd"] * b,
                             (logits.argmax(1) != labels).sum()]).double()
        seen, step = seen + b, step + 1
        if step % log_every == 0 or step == total_steps:
            values = {"loss": loss.item(), "ce": terms["ce"].item(), "jsd": terms["jsd"].item(),
                      "lr": s.optimizer.param_groups[0]["lr"]}
            bar.set_postfix({k: f"{v:.3g}" for k, v in values.items()}, refresh=False)
            on_log(step, values)
        if stop.requested:
            break
    bar.close()
    seconds = time.perf_counter() - start
    means = (sums / max(seen, 1)).tolist()
    return EpochResult(step, step >= total_steps, means[0], means[1], means[2], means[3], seen / max(seconds, 1e-9),
                       seconds)


@torch.inference_mode()
def evaluate_error(model: nn.Module, batches, normalize: Callable[[Tensor], Tensor], device: torch.device,
                   amp_dtype: torch.dtype | None, channels_last: bool = False) -> tuple[float, float]:
    """Top-1 error and mean cross-entropy of ``model`` (eval mode) on ``(uint8 images, labels)`` batches."""
    model.eval()
    errors = torch.zeros((), dtype=torch.float64, device=device)
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    n = 0
    for images, labels in batches:
        images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        inputs = normalize(images)
        if channels_last:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            logits = model(inputs).float()
        errors += (logits.argmax(1) != labels).sum()
        loss_sum += F.cross_entropy(logits, labels, reduction="sum").double()  # the true mean (§9 defect 8)
        n += len(labels)
    if n == 0:
        raise ValueError("evaluation set is empty")
    return errors.item() / n, loss_sum.item() / n
