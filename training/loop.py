"""The training step, one epoch, and clean evaluation. ``train_step`` reads top to bottom on one screen."""

from __future__ import annotations

import dataclasses
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from runtime.distributed import all_reduce_sum
from runtime.seeding import derive_seed
from training.tracking import progress

# Test-only fault injection: the rank named here reports a non-finite loss at its first step.
NAN_RANK_VARIABLE = "AUGMIX_TEST_NAN_RANK"


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
    seeded from (seed, epoch, step) so a resumed run draws the same views. Under torchrun the batch is this rank's
    ``part`` of a global batch of ``total`` images: the draws are made for all ``total`` and sliced, so each image
    gets the views it would get in one process. pil backend: the views arrive ready (seeded per sample).
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

    def __call__(self, batch, epoch: int, step: int, part: slice = slice(None), total: int | None = None
                 ) -> tuple[Tensor, Tensor]:
        images, labels = batch
        labels = labels.to(self.device, non_blocking=True)
        if self.backend == "pil":
            views = images if isinstance(images, list | tuple) else [images]
            return torch.cat([v.to(self.device, non_blocking=True) for v in views]), labels
        images = images.to(self.device, non_blocking=True)
        if self.mode == "standard":
            return self.normalize(images), labels
        self.generator.manual_seed(derive_seed(self.seed, epoch, step, 1))
        n = len(images) if total is None else total
        mine = torch.arange(n, device=self.device)[part]  # this rank's positions in the global batch
        if not self.jsd:
            return self.augmix.mix(images, _select(self.augmix.sample(n, self.generator, self.device), mine)), labels
        # As AugMix.jsd_views on the global batch: one draw for [images; images], aug1 at i, aug2 at n + i.
        draws = _select(self.augmix.sample(2 * n, self.generator, self.device), torch.cat([mine, mine + n]))
        augmented = self.augmix.mix(torch.cat([images, images]), draws)
        return torch.cat([self.normalize(images), augmented]), labels  # (3B, 3, H, W): [clean; aug1; aug2]


def _select(draws, positions: Tensor):
    """The draws of the samples at ``positions`` (every field of ChainDraws leads with the batch axis)."""
    return dataclasses.replace(draws, **{f.name: getattr(draws, f.name)[positions]
                                         for f in dataclasses.fields(draws)})


def train_step(s: Stepper, inputs: Tensor, labels: Tensor, share: float = 1.0,
               vote: Callable[[Tensor, dict[str, Tensor]], None] | None = None
               ) -> tuple[Tensor, dict[str, Tensor], Tensor]:
    """One forward/backward/update. Returns (loss, {"ce", "jsd"}, logits of the first B rows), all detached.

    ``share``: this rank's images x world size / global batch (1 unless the global batch splits unevenly);
    DDP averages gradients over ranks, so scaling by it makes the update that of the global batch's mean loss.
    ``vote``: raises NonFiniteLossError when the loss is non-finite on this or (under torchrun) any rank.
    """
    if s.channels_last:
        inputs = inputs.contiguous(memory_format=torch.channels_last)
    with torch.autocast(inputs.device.type, dtype=s.amp_dtype or torch.float32, enabled=s.amp_dtype is not None):
        logits = s.model(inputs)
    loss, terms = s.loss_fn(logits.float(), labels)
    (vote or check_finite)(loss, terms)  # before backward: its gradient all-reduce would wait for a stopped rank
    s.optimizer.zero_grad(set_to_none=True)
    s.scaler.scale(loss if share == 1.0 else loss * share).backward()
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


def check_finite(loss: Tensor, terms: dict[str, Tensor]) -> None:
    if not torch.isfinite(loss):
        raise NonFiniteLossError(f"loss is {loss.item()} (ce={terms['ce'].item()}, jsd={terms['jsd'].item()})")


class RankVote:
    """Once per step, before backward, every rank learns whether any rank's loss is non-finite and whether any rank
    was asked to stop (SIGTERM / SIGINT), with one all-reduce of world_size + 1 numbers. All ranks then raise
    at the same step, or finish it and stop together; none is left waiting in a gradient all-reduce.
    """

    def __init__(self, stop: StopRequest, rank: int, world_size: int, device: torch.device):
        self.stop, self.rank, self.world_size, self.device = stop, rank, world_size, device
        self.inject_nan = os.environ.get(NAN_RANK_VARIABLE) == str(rank)
        self.stop_agreed = False

    def __call__(self, loss: Tensor, terms: dict[str, Tensor]) -> None:
        flags = torch.zeros(self.world_size + 1, device=self.device)
        flags[self.rank] = (~torch.isfinite(loss)).float() + float(self.inject_nan)
        flags[-1] = float(self.stop.requested)
        votes = all_reduce_sum(flags).tolist()
        bad_ranks = [r for r, v in enumerate(votes[:-1]) if v > 0]
        self.stop_agreed = votes[-1] > 0
        if bad_ranks:
            here = (f"loss is {loss.item()} (ce={terms['ce'].item()}, jsd={terms['jsd'].item()}) on rank "
                    f"{self.rank}" if self.rank in bad_ranks else f"rank {self.rank}'s loss is finite")
            raise NonFiniteLossError(f"non-finite loss on rank(s) {', '.join(map(str, bad_ranks))}; {here}")

    @property
    def requested(self) -> bool:
        """The stop every rank agreed on at this step's vote."""
        return self.stop_agreed

    @property
    def signum(self) -> int | None:
        """The signal this rank received, or SIGTERM when another rank's stop was agreed."""
        return self.stop.signum or (signal.SIGTERM if self.stop_agreed else None)


@dataclass
class EpochSums:
    """What an epoch's logged means are made of, summed over all ranks' images so far. A mid-epoch checkpoint
    stores them, so the resumed epoch reports the same means as an uninterrupted one."""
    loss: float = 0.0               # sums over images of the per-image loss terms
    ce: float = 0.0
    jsd: float = 0.0
    errors: float = 0.0             # misclassified clean (or single-view) images
    images: int = 0
    seconds: float = 0.0            # training time spent in this epoch


@dataclass
class EpochResult:
    steps_done: int                 # steps completed in this epoch (from 0), including earlier resumed ones
    completed: bool                 # False when a stop was requested mid-epoch
    loss: float
    ce: float
    jsd: float
    train_error: float
    images_per_s: float             # of this invocation's steps
    seconds: float                  # of the whole epoch, earlier invocations included
    sums: EpochSums                 # the totals these means come from


def train_one_epoch(s: Stepper, views: ViewMaker, loader, epoch: int, start_step: int, stop: StopRequest | RankVote,
                    on_log: Callable[[int, dict], None], log_every: int, max_steps: int = 0,
                    show_progress: bool = True, carried: EpochSums | None = None) -> EpochResult:
    """Run the steps of ``epoch`` from ``start_step`` until the epoch ends, ``max_steps`` or a stop request.

    ``stop``: a StopRequest (one process), or a RankVote under torchrun, which also checks the loss on every rank.
    Losses and errors are summed over all ranks' images, so the result describes the global batches.
    ``carried``: the sums of this epoch's steps before ``start_step`` (resuming mid-epoch); they seed the sums.
    """
    s.model.train()
    loader.set_epoch(epoch, start_step)
    total_steps = loader.steps_per_epoch() if not max_steps else min(max_steps, loader.steps_per_epoch())
    vote = stop if isinstance(stop, RankVote) else None
    world_size = vote.world_size if vote else 1
    sums = torch.zeros(4, dtype=torch.float64, device=views.device)  # loss, ce, jsd, errors (sums over images)
    seen, step, start = 0, start_step, time.perf_counter()
    earlier = carried or EpochSums()
    if vote is None or vote.rank == 0:  # global sums: added once, before the sum over ranks
        sums += torch.tensor([earlier.loss, earlier.ce, earlier.jsd, earlier.errors], dtype=torch.float64,
                             device=views.device)
        seen = earlier.images
    bar = progress(loader, total=total_steps - start_step, desc=f"epoch {epoch + 1}", enabled=show_progress)
    for batch in bar:
        if step >= total_steps:
            break
        _, total, part = loader.shard(step)
        inputs, labels = views(batch, epoch, step, part, total)
        b = len(labels)
        loss, terms, logits = train_step(s, inputs, labels, b * world_size / total, vote)
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
    if world_size > 1:  # sums and image counts over all ranks
        totals = all_reduce_sum(torch.cat([sums, sums.new_tensor([seen])]))
        sums, seen = totals[:4], int(totals[4].item())
    total = EpochSums(*sums.tolist(), images=seen, seconds=earlier.seconds + seconds)
    means = (sums / max(seen, 1)).tolist()
    return EpochResult(step, step >= total_steps, means[0], means[1], means[2], means[3],
                       (seen - earlier.images) / max(seconds, 1e-9), total.seconds, total)


@torch.inference_mode()
def evaluate_error(model: nn.Module, batches, normalize: Callable[[Tensor], Tensor], device: torch.device,
                   amp_dtype: torch.dtype | None, channels_last: bool = False) -> tuple[float, float]:
    """Top-1 error and mean cross-entropy of ``model`` (eval mode) on ``(uint8 images, labels)`` batches.

    Under torchrun each rank passes its shard and gets the global values: error and loss sums and image counts
    are summed over ranks (exact counts, not an average of per-rank percentages). Pass the module inside DDP:
    ranks may see different numbers of batches.
    """
    model.eval()
    sums = torch.zeros(3, dtype=torch.float64, device=device)  # errors, cross-entropy sum, images
    for images, labels in batches:
        images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        inputs = normalize(images)
        if channels_last:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            logits = model(inputs).float()
        sums[0] += (logits.argmax(1) != labels).sum()
        sums[1] += F.cross_entropy(logits, labels, reduction="sum").double()  # the true mean (§9 defect 8)
        sums[2] += len(labels)
    errors, loss_sum, n = all_reduce_sum(sums).tolist()
    if n == 0:
        raise ValueError("evaluation set is empty")
    return errors / n, loss_sum / n
