"""Command-line value checks shared by the three doors: integer ranges stated once, and the closest valid name."""

from __future__ import annotations

import argparse
import difflib
from collections.abc import Callable, Sequence


def int_in(low: int, high: int | None = None, what: str | None = None) -> Callable[[str], int]:
    """argparse type: an integer in ``low..high`` (no upper bound when ``high`` is None); ``what`` says what the
    number counts, in the message (``expected an integer >= 1 (images per forward pass), got 0``)."""
    stated = f"an integer >= {low}" if high is None else f"an integer in {low}..{high}"
    if what:
        stated += f" ({what})"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {stated}, got {text!r}") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"expected {stated}, got {value}")
        return value
    parse.__name__ = stated  # argparse names the type in its own messages
    return parse


def closest(name: object, valid: Sequence[object]) -> str | None:
    """The valid name closest to a mistyped one (difflib, cutoff 0.6), or None."""
    close = difflib.get_close_matches(str(name), [str(v) for v in valid], n=1, cutoff=0.6)
    return close[0] if close else None
