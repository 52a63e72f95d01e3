"""How many torch threads a run should use on a machine it may share.

Why: PyTorch's intra-op threads meet at a barrier after every op. When another process holds a
core, a 2-thread meta-step keeps waiting for its descheduled thread, so it runs far slower than on
one thread (on this 2-core machine with two single-threaded jobs beside it: 0.66-0.99 s per
stateless meta-step on 2 threads against 0.26-0.34 s on 1, results/benchmarks/threads_under_load.txt).
So a run takes only the cores nobody else is using, never more than asked and at least one.
"""

from __future__ import annotations

import os


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def fair_threads(wanted: int | None = None) -> int:
    """min(wanted or all cores, cores not busy by the 1-minute load average), at least 1."""
    cores = available_cores()
    try:
        busy = os.getloadavg()[0]
    except OSError:
        busy = 0.0
    free = max(1, int(cores - busy + 0.5))
    return max(1, min(wanted or cores, free))


def apply_fair_threads() -> int | None:
    """Set torch's thread count to `fair_threads()` unless the user chose one (OMP_NUM_THREADS);
    returns the count set, or None when left alone."""
    if os.environ.get("OMP_NUM_THREADS"):
        return None
    import torch

    threads = fair_threads(torch.get_num_threads())
    torch.set_num_threads(threads)
    return threads
