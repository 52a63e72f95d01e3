"""Peak memory of one meta-step: sampled RSS in a fresh process on the CPU, the allocator on a GPU.

A fresh process, because this one's ru_maxrss already holds whatever setup peaked at.
"""

from __future__ import annotations

import json
import subprocess
import sys

import torch

from lbpbench.bench.cases import case_workload

# Source text run in fresh processes (here and by the cost-growth script), not imported.
RSS_PROBE = """
import ctypes, gc, threading, time

def _rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20

class PeakRSS:
    # Samples RSS every millisecond: ru_maxrss cannot isolate one step, because setup (imports,
    # calibration) may already have peaked higher; freed heap is trimmed first so the baseline is
    # what the step starts from.
    def __enter__(self):
        gc.collect()
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except OSError:
            pass
        self.base = self.peak = _rss_mb()
        self.running = True
        self.thread = threading.Thread(target=self._poll, daemon=True)
        self.thread.start()
        return self

    def _poll(self):
        while self.running:
            self.peak = max(self.peak, _rss_mb())
            time.sleep(0.001)

    def __exit__(self, *exc):
        self.running = False
        self.thread.join()
        self.peak = max(self.peak, _rss_mb())
"""

_MEMORY_SCRIPT = (
    RSS_PROBE
    + """
import json, torch
from lbpbench.bench.cases import case_workload
torch.set_num_threads({threads})
work = case_workload("meta", {task!r}, {learner!r}, {aggregator!r}, 'cpu', checkpointing={checkpointing})
with PeakRSS() as probe:
    work.step()
print(json.dumps({{"peak_rss_mb": probe.peak, "step_delta_mb": probe.peak - probe.base}}))
"""
)


def meta_step_memory(
    task: str,
    learner: str = "stateful",
    aggregator: str = "mean",
    checkpointing: bool = False,
    device: str = "cpu",
) -> dict[str, float]:
    """Peak memory of one meta-step. CPU: peak RSS in a fresh process, sampled every millisecond;
    `step_delta_mb` is the step's own memory (peak minus the trimmed RSS it started from),
    `peak_rss_mb` adds the process (torch, data, learners). CUDA: the allocator's peak, in the
    same two fields (the step's own and the whole device's)."""
    if device == "cuda":
        work = case_workload("meta", task, learner, aggregator, device, checkpointing=checkpointing)
        dev = work.device
        work.step()
        torch.cuda.synchronize(dev)
        base = torch.cuda.memory_allocated(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        work.step()
        torch.cuda.synchronize(dev)
        peak = torch.cuda.max_memory_allocated(dev)
        return {"peak_rss_mb": peak / 2**20, "step_delta_mb": (peak - base) / 2**20}
    code = _MEMORY_SCRIPT.format(
        threads=torch.get_num_threads(),
        task=task,
        learner=learner,
        aggregator=aggregator,
        checkpointing=checkpointing,
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])
