"""How far an evaluation has got: one line per finished cell, always ("[12/95] digits-c gaussian_noise s3: error
4.20 % (1.3 s)"); on an interactive terminal also a tqdm bar per suite over its cells, whose remaining-time estimate
covers every cell of the suite, and a bar over the batches of a cell that runs longer than a couple of seconds.
Bars go to stderr and stay silent when stderr is not a terminal (logs, CI, SLURM) and on non-main ranks, as
training's bars do (training/tracking.py).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from tqdm.auto import tqdm

from runtime.distributed import is_main

BATCH_BAR_DELAY_S = 2.0  # a cell's batch bar appears only once the cell has run this long


def cell_summary(record: Mapping[str, Any]) -> str:
    """The headline of a finished cell: top-1 error of a -C / clean cell, FP and uT5D of a -P cell."""
    if "error" in record:
        return f"error {100 * record['error']:.2f} %"
    return f"FP {100 * record['flip_probability']:.3f} %, uT5D {record['top5_distance']:.3f}"


class EvalProgress:
    """Cell lines and bars of one evaluation run.

    Args:
        bars: True / False forces the tqdm bars on / off; None (default) shows them only when stderr is a terminal.
            Bars and lines appear on the main rank only.
    """

    def __init__(self, bars: bool | None = None):
        self.main = is_main()
        self.bars = self.main and (sys.stderr.isatty() if bars is None else bool(bars))
        self.suite: str | None = None
        self.total = self.done = 0
        self._bar: tqdm | None = None
        self._batches_per_cell: dict[str, int] = {}

    def start_suite(self, suite: str, cells: int) -> None:
        """A suite of ``cells`` cells begins: its lines are numbered [i/cells] and it gets a bar."""
        self.close()
        self.suite, self.total, self.done = suite, cells, 0
        if self.bars:
            self._bar = tqdm(total=cells, desc=suite, unit="cell", dynamic_ncols=True, file=sys.stderr)

    def batches(self, iterable: Iterable, cell: str) -> Iterable:
        """``iterable`` (a cell's batches) with a bar over them on a terminal, shown once the cell has run
        BATCH_BAR_DELAY_S. Its total is the batch count of the suite's previous cell (the cells of a -C suite all
        hold the same images); a cell that runs past it drops the total instead of reporting over 100 %."""
        if not self.bars:
            return iterable
        return self._batch_bar(iterable, cell)

    def _batch_bar(self, iterable: Iterable, cell: str) -> Iterator:
        suite = self.suite or ""
        total = self._batches_per_cell.get(suite)
        bar = tqdm(total=total, desc=f"  {cell}", unit="batch", leave=False, delay=BATCH_BAR_DELAY_S,
                   dynamic_ncols=True, file=sys.stderr)
        count = 0
        try:
            for item in iterable:
                yield item
                count += 1
                if bar.total is not None and count > bar.total:
                    bar.total = None
                bar.update(1)
        finally:
            bar.close()
        self._batches_per_cell[suite] = count

    def cell_done(self, suite: str, cell: str, record: Mapping[str, Any], computed: bool) -> None:
        """Print the cell's line and advance the suite's bar. A cell of a suite that was not started (the single
        clean cell) prints ``[suite] cell: ...`` without a count."""
        how = f"{record['seconds']:.1f} s" if computed else "finished earlier, reused"
        if suite == self.suite:
            self.done += 1
            line = f"[{self.done}/{self.total}] {suite} {cell}: {cell_summary(record)} ({how})"
        else:
            line = f"[{suite}] {cell}: {cell_summary(record)} ({how})"
        if self.main:
            if self._bar is not None:
                tqdm.write(line, file=sys.stdout)  # clears the bars on stderr, prints, redraws them
            else:
                print(line, flush=True)
        if self._bar is not None and suite == self.suite:
            self._bar.set_postfix_str(f"{cell}: {cell_summary(record)}", refresh=False)
            self._bar.update(1)
        if suite == self.suite and self.done >= self.total:
            self.close()

    def close(self) -> None:
        """End the current suite's bar (left on screen with its final count and time)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        self.suite = None
