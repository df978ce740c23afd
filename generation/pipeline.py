"""The chunk loop shared by the image-tree layouts (ImageNet-C JPEGs, ImageNet-P MP4s): each decoded chunk is
rendered for every unit that lacks it on the device, and its files are encoded and written on a bounded thread
pool, so encoding overlaps the next chunk's decoding and computing without holding the whole set in memory."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any

from tqdm import tqdm


def check_run_numbers(batch_size: int | None, workers: int, seed: int) -> None:
    """The numbers every generation config takes: chunk size >= 1 (None: the preset's), workers >= 0, seed >= 0."""
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if workers < 0:
        raise ValueError(f"workers must be >= 0, got {workers}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")


def num_chunks(n: int, chunk_size: int) -> int:
    """Chunks of ``chunk_size`` items (the last one shorter) that cover ``n`` items."""
    return (n + chunk_size - 1) // chunk_size


def chunk_rows(n: int, chunk_size: int, chunk: int) -> range:
    """Indices of the items of chunk ``chunk``: ``chunk * B .. min(n, chunk * B + B) - 1``."""
    return range(chunk * chunk_size, min(n, (chunk + 1) * chunk_size))


def progress_bar(progress: bool | None, total: int, desc: str, unit: str) -> tqdm:
    """A tqdm bar; ``progress`` None shows it only when stderr is a terminal."""
    return tqdm(total=total, desc=desc, unit=unit, disable=None if progress is None else not progress,
                dynamic_ncols=True)


class WriteQueue:
    """File writes on a thread pool, handed back per group (one chunk's files) in submission order once every write
    of the group is done. At most ``max_pending`` groups wait; past that, submitting blocks on the oldest.

    Used as a context manager: on an error, queued writes are cancelled and running ones finish (they are atomic).
    """

    def __init__(self, workers: int, max_pending: int):
        self.pool = ThreadPoolExecutor(max(1, workers))
        self.max_pending = max_pending
        self.pending: deque[tuple[Hashable, list[Future]]] = deque()

    def __enter__(self) -> WriteQueue:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.pool.shutdown(wait=True, cancel_futures=exc_type is not None)

    def submit(self, key: Hashable, writes: Iterable[Callable[[], Any]]) -> None:
        self.pending.append((key, [self.pool.submit(write) for write in writes]))

    def finished(self, block: bool = False) -> list[tuple[Hashable, list[Any]]]:
        """Groups whose writes are done, oldest first, as ``(key, [result of each write])``; a write error is raised
        here. ``block`` waits for every group."""
        done = []
        while self.pending:
            key, futures = self.pending[0]
            if not (block or len(self.pending) > self.max_pending or all(f.done() for f in futures)):
                break
            wait(futures)
            self.pending.popleft()
            done.append((key, [f.result() for f in futures]))
        return done


def write_chunks(chunks: Iterable[tuple[int, Any]], todo: Mapping[Hashable, Any],
                 render: Callable[[Hashable, int, Any], list[Callable[[], Any]]],
                 written: Callable[[Hashable, int, list[Any]], None], workers: int, max_pending: int) -> None:
    """Render every decoded chunk for each unit that still needs it and write the files on a :class:`WriteQueue`.

    Args:
        chunks: ``(chunk index, decoded batch)`` in order (a DataLoader over the needed chunks).
        todo: unit -> the chunk indices it still needs (any container supporting ``in``).
        render: ``render(unit, chunk, batch)`` computes a unit's chunk and returns its file writes (callables).
        written: ``written(unit, chunk, results)`` runs once all of a chunk's writes are done, in submission order.
        workers: encoder threads; max_pending: chunks that may wait for their writes.
    """
    with WriteQueue(workers, max_pending) as queue:
        for k, batch in chunks:
            for unit in [u for u, needed in todo.items() if k in needed]:
                queue.submit((unit, k), render(unit, k, batch))
                for (done_unit, done_k), results in queue.finished():
                    written(done_unit, done_k, results)
        for (done_unit, done_k), results in queue.finished(block=True):
            written(done_unit, done_k, results)
