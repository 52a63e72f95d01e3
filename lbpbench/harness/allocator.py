"""Keep freed tensor memory inside the process so meta-steps stop page-faulting (glibc only).

Why: a meta-step allocates and frees the same few hundred MB of activations every time. glibc
serves blocks above its mmap threshold (a few MB, adjusted at run time) with fresh mmaps and
returns freed heap tops to the kernel, so every meta-step faulted its activations in again:
10k–34k minor faults and ≈10 % of a sinusoid-5x10 stateful meta-step on the benchmark machine
(100k–130k for an 8-seed batch), under 1k per step once the memory is kept and the heap has
settled (`getrusage`; tests/test_fast_paths.py). Peak memory is unchanged; the process keeps its
high-water mark instead of returning it between steps.
"""

from __future__ import annotations

import ctypes
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_MMAP_MAX = -4
MMAP_THRESHOLD = 32 * 2**20  # glibc's ceiling for this setting on 64-bit systems
TRIM_THRESHOLD = 2**31 - 1

_done = False


def retain_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds once per process; False where that is not possible
    (not Linux, no glibc), which only costs speed."""
    global _done
    if _done:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    # Blocks above the 32 MB ceiling (seed batches: [8, 16000, 80] activations are 41 MB) would
    # still be mmapped afresh every time; M_MMAP_MAX = 0 serves them from the heap as well.
    _done = (
        bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))
        and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
        and bool(mallopt(M_MMAP_MAX, 0))
    )
    return _done
