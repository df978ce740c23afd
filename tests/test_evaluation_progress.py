"""evaluation/progress.py: a numbered line per finished cell; tqdm bars over cells and batches on a terminal only."""

from __future__ import annotations

import io
import sys

from evaluation import progress as P


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _cells(progress: P.EvalProgress, suite: str, n: int, batches: int) -> None:
    progress.start_suite(suite, n)
    for i in range(n):
        assert list(progress.batches(iter(range(batches)), f"c{i}")) == list(range(batches))
        progress.cell_done(suite, f"c{i} s1", {"error": 0.042, "seconds": 1.25}, computed=True)


def test_without_a_terminal_there_are_no_bars_only_numbered_lines(capsys):
    progress = P.EvalProgress()  # pytest's captured stderr is not a terminal
    assert not progress.bars
    _cells(progress, "digits-c", 2, 3)
    progress.cell_done("clean", "clean", {"error": 0.1, "seconds": 0.5}, computed=False)
    out, err = capsys.readouterr()
    assert out.splitlines() == ["[1/2] digits-c c0 s1: error 4.20 % (1.2 s)",
                                "[2/2] digits-c c1 s1: error 4.20 % (1.2 s)",
                                "[clean] clean: error 10.00 % (finished earlier, reused)"]
    assert err == ""


def test_a_terminal_gets_a_bar_per_suite_and_over_the_batches_of_a_cell(monkeypatch, capsys):
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    monkeypatch.setattr(P, "BATCH_BAR_DELAY_S", 0.0)
    progress = P.EvalProgress()
    assert progress.bars
    _cells(progress, "digits-p", 3, 4)
    bars = terminal.getvalue()
    assert "digits-p: 100%" in bars and "3/3" in bars  # the suite's cell bar, with its time estimate
    assert "c0: 0batch" in bars                        # the first cell's batch count is not known yet ...
    assert "c1:   0%|          | 0/4" in bars           # ... the next cell's bar takes it as its total
    assert "[3/3] digits-p c2 s1: error 4.20 % (1.2 s)" in capsys.readouterr().out
    assert progress.suite is None  # closed after its last cell
    progress.start_suite("digits-p", 1)
    assert list(progress.batches(iter(range(6)), "longer")) == list(range(6))  # runs past the guessed total
    assert progress._batches_per_cell["digits-p"] == 6


def test_bars_can_be_forced_off_on_a_terminal(monkeypatch):
    monkeypatch.setattr(sys, "stderr", _Terminal())
    assert not P.EvalProgress(bars=False).bars
    assert P.EvalProgress(bars=True).bars
