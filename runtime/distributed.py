"""torchrun environment: rank, world size, the ``is_main`` gate, and a rank-aware print."""

from __future__ import annotations

import os
from dataclasses import dataclass

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
    return DistEnv(rank=int(os.environ.get("RANK", 0)), local_rank=int(os.environ.get("LOCAL_RANK", 0)),
                   world_size=int(os.environ.get("WORLD_SIZE", 1)))


def init_distributed(env: DistEnv, device: torch.device) -> None:
    """Join the process group torchrun set up: NCCL on CUDA, gloo on CPU. No-op for one process."""
    if env.enabled and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")


def is_main() -> bool:
    return not dist.is_initialized() or dist.get_rank() == 0


def print_main(*args, **kwargs) -> None:
    """``print`` on rank 0 only."""
    if is_main():
        print(*args, **kwargs, flush=True)
