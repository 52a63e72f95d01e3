"""Synchronised wall-clock timing, the machine's float32 matmul peak, and what the timings ran on.

The peak is measured in the same run as the timings it divides, because the benchmark machine is
shared and its speed drifts; the load average goes with every report for the same reason.
"""

from __future__ import annotations

import os
import platform
import resource
import time
from collections.abc import Callable
from typing import Any

import torch


def sync(device: torch.device) -> None:
    """Wait for queued GPU work, so a timing covers the work and not just its launch."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], Any], device: torch.device, rounds: int, warmup: int = 1) -> list[float]:
    """Seconds per call, `rounds` times after `warmup` calls (report the min and the median)."""
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t)
    return times


def matmul_peak(device: torch.device, rows: int = 20000, rounds: int = 5) -> dict[str, float]:
    """float32 GEMM GFLOP/s: one learner-shaped [rows,80]x[80,40] and one large square product."""
    out = {}
    square = 8192 if device.type == "cuda" else 2048  # a GPU needs a large product to reach its peak
    out["square_size"] = float(square)
    for name, (m, k, n) in {"sgemm_80x40": (rows, 80, 40), "sgemm_square": (square,) * 3}.items():
        a = torch.randn(m, k, device=device)
        b = torch.randn(k, n, device=device)
        t = min(time_call(lambda a=a, b=b: a @ b, device, rounds))
        out[name] = 2.0 * m * k * n / t / 1e9
    out["peak"] = max(out["sgemm_80x40"], out["sgemm_square"])
    return out


def environment(device: torch.device) -> dict[str, Any]:
    """Device, torch, threads and load: what a reader needs to compare two runs' timings."""
    return {
        "device": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or "cpu",
        "device_type": device.type,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "loadavg": os.getloadavg(),
        "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
