"""Time one configuration's meta-step (min and median), for before/after figures of an engine change.

Current tree: `python -m lbpbench.bench.meta_step_timer TASK LEARNER ROUNDS [ckpt]`;
THREADS=n sets torch's threads (default 2).

Before/after: `git archive <old commit> lbpbench | tar -x -C /tmp/before`, then run this file *by
path* with the old tree first on the path — `PYTHONPATH=/tmp/before python
lbpbench/bench/meta_step_timer.py TASK LEARNER ROUNDS` — interleaved with the current tree's runs.
By path, because `-m` would look for this module inside the old tree. Trees older than
`lbpbench.bench.cases` are built with the harness API they shipped with (`_legacy_meta_step`), so
this script imports nothing else of the current tree.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _legacy_meta_step(task: str, learner: str, checkpointing: bool) -> Callable[[], Any]:
    """Trees before the bench package: MetaTraining(RunConfig(...)), as those trees define it."""
    from lbpbench.harness.config import RunConfig
    from lbpbench.harness.meta_train import MetaTraining

    return MetaTraining(RunConfig(task=task, learner=learner, seed=0, checkpointing=checkpointing)).meta_step


def meta_step(task: str, learner: str, checkpointing: bool) -> Callable[[], Any]:
    """The meta-step of whichever lbpbench is first on the path (mean aggregator, seed 0)."""
    try:
        from lbpbench.bench.cases import case_workload
    except ModuleNotFoundError as exc:  # an older tree, before lbpbench.bench became a package
        if exc.name not in ("lbpbench.bench", "lbpbench.bench.cases"):
            raise
        return _legacy_meta_step(task, learner, checkpointing)
    return case_workload("meta", task, learner, "mean", "cpu", checkpointing=checkpointing).step


def main(argv: list[str]) -> None:
    """Print `TASK LEARNER median S min S load L` for ROUNDS timed meta-steps after one warm-up."""
    import torch

    torch.set_num_threads(int(os.environ.get("THREADS", "2")))
    task, learner, rounds = argv[0], argv[1], int(argv[2])
    step = meta_step(task, learner, checkpointing=len(argv) > 3 and argv[3] == "ckpt")
    step()
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    print(
        f"{task} {learner} median {statistics.median(times):.3f} min {min(times):.3f} "
        f"load {os.getloadavg()[0]:.2f}"
    )


if __name__ == "__main__":
    if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
        sys.path.pop(0)  # run by path: this folder's cost.py, memory.py, ... must not shadow anything
    main(sys.argv[1:])
