"""glibc malloc tuning for tensor-heavy CPU work: keep freed blocks for reuse instead of unmapping them.

By default glibc serves blocks above ~128 KiB-32 MiB with fresh ``mmap`` calls and returns them on ``free``, so
every large temporary of a batched op (a (B, 3, H, W) float64 warp buffer is several MiB) costs page faults on
first touch. On the 2-core CI VM that dominated AugMix and the training step: measured with
``bench/augmix_throughput.py`` conditions, 5.5k -> 8.9k AugMix views/s at 32 px (1 thread) and a WRN-16-2 step of
384 images 3.9 s -> 3.0 s. The CLIs call :func:`retain_freed_memory` once at start-up; set
``AUGMIX_MALLOC_TUNING=0`` to leave malloc as it is.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3  # mallopt parameters from glibc's malloc.h
MMAP_THRESHOLD = 256 << 20   # blocks below this come from the heap and are reused after free
TRIM_THRESHOLD = 512 << 20   # free memory kept at the top of the heap before returning it to the OS
TOP_PAD = 64 << 20           # extra heap grown per sbrk, so growth happens rarely


def retain_freed_memory() -> bool:
    """Apply the mallopt settings above (glibc only). Returns whether they were applied."""
    if os.environ.get("AUGMIX_MALLOC_TUNING", "1") == "0":
        return False
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to tune
        return False
    return all(mallopt(param, value) == 1 for param, value in (
        (_M_MMAP_THRESHOLD, MMAP_THRESHOLD), (_M_TRIM_THRESHOLD, TRIM_THRESHOLD), (_M_TOP_PAD, TOP_PAD)))
