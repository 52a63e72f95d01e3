"""Cost growth: inner-step time and memory of a 1-h-h-1 net against batch size and synapse count.

MPLP.md §7 predicts cost linear in node instances (batch x synapses); this table checks it. On the
CPU each point runs in a fresh process so its memory is the step's own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import torch

from lbpbench.bench.cost import slot_instances
from lbpbench.bench.memory import RSS_PROBE
from lbpbench.bench.timing import time_call
from lbpbench.protocol.network import MessagePassingNetwork

_GROWTH_SCRIPT = (
    RSS_PROBE
    + """
import json, torch
from lbpbench.bench.growth import growth_step
from lbpbench.bench.timing import time_call
torch.set_num_threads({threads})
step = growth_step({batch}, {hidden}, "cpu")
seconds = min(time_call(step, torch.device("cpu"), {rounds}, warmup=2))
with PeakRSS() as probe:
    step()
print(json.dumps({{"seconds": seconds, "step_delta_mb": probe.peak - probe.base}}))
"""
)


def growth_network(hidden: int) -> MessagePassingNetwork:
    """The 1-h-h-1 relu regression net with the stateful learner whose cost the table follows."""
    from lbpbench.protocol.builder import build_network
    from lbpbench.tasks import NetworkSpec

    return build_network(NetworkSpec(1, (hidden, hidden, 1), "relu", "identity", "l2"), learner="stateful")


def growth_step(batch: int, hidden: int, device: str) -> Callable[[], None]:
    """One learned inner step, forward and backward, of the growth net (one task, batch `batch`):
    the unit whose cost the growth table follows."""
    dev = torch.device(device)
    net = growth_network(hidden).to(dev)
    params = {
        k: v.to(dev).requires_grad_() for k, v in net.init_params(1, torch.Generator().manual_seed(0)).items()
    }
    carries = net.init_carries(1, batch, device=dev)
    x, y = torch.randn(1, batch, 1, device=dev), torch.randn(1, batch, 1, device=dev)

    def step() -> None:
        out = net.inner_step(params, carries, x, y)
        sum(v.sum() for v in out.params.values()).backward()

    return step


def growth_point_in_process(batch: int, hidden: int, rounds: int, device: str = "cuda") -> dict[str, float]:
    """One cost-growth point in this process: synchronised times and, on a GPU, the allocator's
    peak (step_delta_mb is NaN on the CPU, where the fresh-process script measures memory)."""
    dev = torch.device(device)
    step = growth_step(batch, hidden, device)
    seconds = min(time_call(step, dev, rounds, warmup=2))
    if dev.type != "cuda":
        return {"seconds": seconds, "step_delta_mb": float("nan")}
    base = torch.cuda.memory_allocated(dev)
    torch.cuda.reset_peak_memory_stats(dev)
    step()
    torch.cuda.synchronize(dev)
    return {"seconds": seconds, "step_delta_mb": (torch.cuda.max_memory_allocated(dev) - base) / 2**20}


def growth_points(batches: tuple[int, ...], hiddens: tuple[int, ...], device: str) -> list[tuple[int, int]]:
    """(batch, hidden) pairs: batch at h = 20, then h at B = 10; a GPU has room to go on growing."""
    points = [(b, 20) for b in batches] + [(10, h) for h in hiddens if h != 20]
    if device == "cuda":
        points += [(b, 20) for b in (320, 1280)] + [(10, h) for h in (160, 320)]
    return points


def cost_growth(
    batches: tuple[int, ...] = (5, 10, 20, 40, 80),
    hiddens: tuple[int, ...] = (10, 20, 40, 80),
    rounds: int = 3,
    device: str = "cpu",
) -> list[dict[str, Any]]:
    """Inner step (forward + backward, stateful learner) time and memory of a 1-h-h-1 net against
    batch size (h = 20) and against synapse count (B = 10); on the CPU a fresh process per point
    for memory. Node instances are counted on the net itself (every slot's carry)."""
    rows = []
    for batch, hidden in growth_points(batches, hiddens, device):
        if device == "cuda":
            result = growth_point_in_process(batch, hidden, rounds)
        else:
            code = _GROWTH_SCRIPT.format(
                threads=torch.get_num_threads(), hidden=hidden, batch=batch, rounds=rounds
            )
            done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
            result = json.loads(done.stdout.strip().splitlines()[-1])
        rows.append(
            {
                "batch": batch,
                "hidden": hidden,
                "synapses": hidden + hidden * hidden + hidden,
                "instances": sum(slot_instances(growth_network(hidden), 1, batch).values()),
                "seconds": result["seconds"],
                "step_delta_mb": result["step_delta_mb"],
                "load": os.getloadavg()[0],
            }
        )
    return rows
