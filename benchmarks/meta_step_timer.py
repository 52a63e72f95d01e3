"""Time MetaTraining.meta_step for one configuration (used for the before/after figures).

python benchmarks/meta_step_timer.py TASK LEARNER ROUNDS [ckpt]; THREADS=n sets torch's threads.
Before/after: `git archive <old commit> lbpbench | tar -x -C /tmp/before` and run with
PYTHONPATH=/tmp/before, interleaved with the current tree.
"""

from __future__ import annotations

import os
import statistics
import sys
import time

import torch

from lbpbench.harness.config import RunConfig
from lbpbench.harness.meta_train import MetaTraining


def main() -> None:
    torch.set_num_threads(int(os.environ.get("THREADS", "2")))
    task, learner, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
    checkpointing = len(sys.argv) > 4 and sys.argv[4] == "ckpt"
    mt = MetaTraining(RunConfig(task=task, learner=learner, seed=0, checkpointing=checkpointing))
    mt.meta_step()
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        mt.meta_step()
        times.append(time.perf_counter() - t)
    print(
        f"{task} {learner} median {statistics.median(times):.3f} min {min(times):.3f} "
        f"load {os.getloadavg()[0]:.2f}"
    )


if __name__ == "__main__":
    main()
