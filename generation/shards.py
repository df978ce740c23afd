"""Splitting one generation over several processes: shard ``K/N`` of a scheduler job array (``--shard``) or of a
``torchrun`` launch (RANK / WORLD_SIZE).

The work of a set is a list of items ``(chunk, unit)``: chunk ``k`` (images or videos ``k*B .. k*B+B-1``) of a unit,
where a unit is one ``(corruption, severity)`` of a -C set or one perturbation file of a -P set. Items are listed
chunk-major (every unit of chunk 0, then of chunk 1, ...) and shard ``K`` of ``N`` takes the items at positions
``K, K+N, K+2N, ...``: a deterministic round-robin that mixes cheap and expensive corruptions in every shard.

Each item is written to its own files (a chunk file under ``.work/`` for the .npy layouts, the item's JPEGs or MP4s
for the image trees) and vouched for by its own chunk record, so shards never write the same file; chunk seeds
depend only on (seed, unit, chunk), so the bytes equal those of a single-process run. A file or folder made of
several items (a CIFAR-C ``<corruption>.npy`` holds every severity of every chunk) is assembled from the chunk files
by whichever shard finishes last, or by ``generate.py c|p --finalize --out DIR``.
"""

from __future__ import annotations

import argparse
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

from runtime.distributed import dist_env


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (``0/1``: the whole set in one process)."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ValueError(f"shard {self.index}/{self.count}: expected K/N with N >= 1 and K in 0..N-1")

    @property
    def whole(self) -> bool:
        return self.count == 1

    @property
    def label(self) -> str:
        """``K-of-N``: the shard's lock folder under ``.shards/``."""
        return f"{self.index}-of-{self.count}"

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> Shard:
    """``"K/N"`` (argparse type of ``--shard``)."""
    index, sep, count = text.partition("/")
    try:
        if not sep:
            raise ValueError
        return Shard(int(index), int(count))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected K/N with N >= 1 and K in 0..N-1 (e.g. 3/8), got {text!r}") from None


def resolve_shard(explicit: Shard | None) -> Shard:
    """``--shard`` when given, else torchrun's rank and world size (one process: the whole set)."""
    if explicit is not None:
        return explicit
    env = dist_env()
    return Shard(env.rank, env.world_size)


def work_items(units: Sequence[Hashable], chunks: int) -> list[tuple[int, Hashable]]:
    """Every ``(chunk, unit)`` of a set, chunk-major: the order the round-robin assignment counts in."""
    return [(k, unit) for k in range(chunks) for unit in units]


def shard_items(units: Sequence[Hashable], chunks: int, shard: Shard) -> list[tuple[int, Hashable]]:
    """The ``(chunk, unit)`` items of ``shard``: positions ``K, K+N, ...`` of :func:`work_items`."""
    return work_items(units, chunks)[shard.index::shard.count]
