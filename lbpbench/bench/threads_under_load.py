"""Seconds per stateless meta-step (sinusoid-5x10, the default sweep's learner) with N torch threads,
printed with the load average: run it while other jobs hold cores to see why `harness/threads.py`
takes only the free ones. `python -m lbpbench.bench.threads_under_load N [N ...]`."""

from __future__ import annotations

import os
import subprocess
import sys
import time

ONE = """
import sys, time, torch
torch.set_num_threads(int(sys.argv[1]))
from lbpbench.harness.config import RunConfig
from lbpbench.harness.members import ProtocolMember
from lbpbench.harness.population import Population
pop = Population([ProtocolMember(RunConfig(learner="stateless", meta_steps=10**6))])
pop.meta_step()
t = time.perf_counter()
for _ in range(10):
    pop.meta_step()
load = open("/proc/loadavg").read().split()[0]
print(f"{sys.argv[1]} threads: {(time.perf_counter() - t) / 10:.3f} s per meta-step, load {load}")
"""


def main(argv: list[str]) -> None:
    for n in argv or ["2", "1"]:
        subprocess.run([sys.executable, "-c", ONE, n], check=True, env={**os.environ, "OMP_NUM_THREADS": n})
        time.sleep(1)


if __name__ == "__main__":
    main(sys.argv[1:])
