"""Splitting an evaluation's cells across torchrun ranks: which rank computes which cell, each rank's device, and the
agreement the ranks need before any work (did every rank get past a step).

The cells travel through the output folder's cell store (evaluation/store.py), never through the process group: a
rank computes its cells and stores them, rank 0 then builds the report from the store. So an interrupted multi-rank
run resumes like a one-process run, and any number of ranks resumes any other's cells.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist

from runtime.devices import DeviceError, resolve_device
from runtime.distributed import DistEnv, all_gather_values, dist_env

DIST_TIMEOUT_S = 1800.0  # a collective gives up on a silent rank after this; the end of the split waits for the
# slowest rank's last cell, so it must exceed the longest cell (an ImageNet-C cell on one GPU: about a minute)


@dataclass(frozen=True)
class CellShare:
    """This process's part of an evaluation split across ``world_size`` ranks (see :func:`deal_unfinished`)."""

    rank: int = 0
    world_size: int = 1

    def __post_init__(self):
        if self.world_size < 1 or not 0 <= self.rank < self.world_size:
            raise ValueError(f"CellShare(rank={self.rank}, world_size={self.world_size}): expected 0 <= rank < "
                             "world_size")

    @classmethod
    def from_env(cls, env: DistEnv | None = None) -> CellShare:
        """The share of this torchrun rank (RANK, WORLD_SIZE); one process owns every cell."""
        env = env or dist_env()
        return cls(env.rank, env.world_size)

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    def owns(self, index: int) -> bool:
        """Whether item ``index`` of a list dealt round-robin is this rank's."""
        return index % self.world_size == self.rank

    def check_process_group(self) -> None:
        """Raises ValueError unless a process group of ``world_size`` ranks is initialised (torchrun, then
        runtime.distributed.init_distributed): the ranks meet in collectives."""
        size = dist.get_world_size() if dist.is_initialized() else 1
        if size != self.world_size:
            raise ValueError(f"a share of {self.world_size} ranks needs a process group of that size (torchrun, then "
                             f"torch.distributed.init_process_group); this process's group has {size}")

    def writer(self) -> dict:
        """Who computed a cell, stored beside it: rank, world size and host."""
        return {"rank": self.rank, "world_size": self.world_size, "host": socket.gethostname()}


class RankFailed(RuntimeError):
    """Another rank failed a step all ranks take together; that rank reports its own error."""

    def __init__(self, step: str, failures: dict[int, str]):
        self.failures = failures  # rank -> "ErrorType: message"
        ranks = ", ".join(map(str, sorted(failures)))
        kinds = ", ".join(dict.fromkeys(message.split(":")[0] for message in failures.values()))
        super().__init__(f"stopped: rank {ranks} failed {step} ({kinds}; that rank prints the message)")


def agree(error: BaseException | None, step: str) -> None:
    """Collective: every rank learns whether any rank failed ``step``, so all stop together instead of waiting for
    one that left. A rank that failed re-raises its own ``error``; the others raise :class:`RankFailed`. One process:
    re-raises ``error`` if given.
    """
    failures = all_gather_values(None if error is None else f"{type(error).__name__}: {error}")
    if error is not None:
        raise error
    failed = {rank: message for rank, message in enumerate(failures) if message is not None}
    if failed:
        raise RankFailed(step, failed)


def deal_unfinished(share: CellShare, count: int, finished: Callable[[int], bool]) -> list[int]:
    """Collective: the indices of the plan's ``count`` cells that this rank computes.

    Each rank asks the store about its round-robin slice of the cells (``finished(i)``: stat and read what may be
    thousands of files per cell, so the ranks split that too); the ranks pool the unfinished indices and deal them
    round-robin. Every rank computes the same deal from the same pooled list, so no cell is computed twice or left
    out, and the remaining work stays even whatever an earlier run finished.
    """
    unfinished = [i for i in range(count) if share.owns(i) and not finished(i)]
    return deal(all_gather_values(unfinished), share)


def deal(unfinished_by_rank: Sequence[Sequence[int]], share: CellShare) -> list[int]:
    """This rank's indices when the pooled ``unfinished_by_rank`` indices are dealt round-robin in plan order."""
    pooled = sorted(i for part in unfinished_by_rank for i in part)
    return [index for turn, index in enumerate(pooled) if share.owns(turn)]


def rank_device(name: str | None, env: DistEnv, option: str = "--device") -> torch.device:
    """The device of ``name`` (auto | cpu | cuda | cuda:N) for this rank: under torchrun with CUDA, every rank's own
    ``cuda:LOCAL_RANK`` (a fixed ``cuda:N`` is refused: choose GPUs with CUDA_VISIBLE_DEVICES); else the CPU.

    Raises:
        DeviceError: an unknown or unavailable device, ``cuda:N`` under torchrun, or a LOCAL_RANK this node has no
            GPU for.
    """
    device = resolve_device(name, option)
    if not env.enabled or device.type != "cuda":
        return device
    if name not in (None, "auto") and torch.device(name).index is not None:
        raise DeviceError(f"{option}={name}: under torchrun each rank uses cuda:LOCAL_RANK; pass {option} cuda (or "
                          "auto) and choose the GPUs with CUDA_VISIBLE_DEVICES")
    if env.local_rank >= torch.cuda.device_count():
        raise DeviceError(f"LOCAL_RANK={env.local_rank} but this node has {torch.cuda.device_count()} visible GPU(s); "
                          "lower --nproc-per-node")
    return torch.device("cuda", env.local_rank)
