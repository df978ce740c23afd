"""torchrun environment: rank, world size, the ``is_main`` gate, a rank-aware print, and the few collectives the
training loop needs (exact sums, an agreed flag, a gather of small values). Every collective is a no-op in one
process, so callers never branch on the world size for them."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistEnv:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def dist_env() -> DistEnv:
    """Read torchrun's environment variables (RANK, LOCAL_RANK, WORLD_SIZE); single process when absent."""
    try:
        env = DistEnv(rank=int(os.environ.get("RANK", 0)), local_rank=int(os.environ.get("LOCAL_RANK", 0)),
                      world_size=int(os.environ.get("WORLD_SIZE", 1)))
    except ValueError as exc:
        raise ValueError(f"RANK / LOCAL_RANK / WORLD_SIZE must be integers (torchrun sets them): {exc}") from exc
    if env.world_size < 1 or not 0 <= env.rank < env.world_size:
        raise ValueError(f"inconsistent torchrun environment: RANK={env.rank}, WORLD_SIZE={env.world_size}")
    return env


def init_distributed(env: DistEnv, device: torch.device, timeout_s: float = 600.0) -> None:
    """Join the process group torchrun set up: NCCL on CUDA, gloo on CPU. No-op for one process.

    ``timeout_s`` bounds how long a collective waits for a rank that stopped answering before it raises, so a
    dead or stuck rank ends the job instead of hanging it.
    """
    if env.enabled and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo",
                                timeout=timedelta(seconds=timeout_s),
                                device_id=device if device.type == "cuda" else None)


def close_distributed() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def is_main() -> bool:
    if dist.is_initialized():
        return dist.get_rank() == 0
    return os.environ.get("RANK", "0") == "0"


def print_main(*args, **kwargs) -> None:
    """``print`` on rank 0 only."""
    if is_main():
        print(*args, **kwargs, flush=True)


def rank_slice(total: int, rank: int, world_size: int) -> slice:
    """Rank ``rank``'s contiguous share of ``total`` items: sizes differ by at most one, in rank order."""
    return slice(total * rank // world_size, total * (rank + 1) // world_size)


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over all ranks, in place (exact for integer counts); returns it."""
    if dist.is_initialized():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_gather_values(value: Any) -> list[Any]:
    """Every rank's ``value`` (a small picklable object), in rank order; ``[value]`` in one process."""
    if not dist.is_initialized():
        return [value]
    values: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(values, value)
    return values


def broadcast_tensors(tensors: list[torch.Tensor], src: int = 0) -> None:
    """Overwrite ``tensors`` on every rank with rank ``src``'s values, in place."""
    if dist.is_initialized():
        for tensor in tensors:
            dist.broadcast(tensor, src)


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()
