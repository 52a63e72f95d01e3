"""Shared fixtures: the same-session matmul peak, so every benchmark reports its fraction of it."""

from __future__ import annotations

import os

import pytest
import torch

from lbpbench.bench import matmul_peak


@pytest.fixture(scope="session")
def device() -> torch.device:
    return torch.device(os.environ.get("LBPBENCH_BENCH_DEVICE", "cpu"))


@pytest.fixture(scope="session")
def peak(device: torch.device) -> dict[str, float]:
    return matmul_peak(device)


def record(benchmark: object, device: torch.device, flops: float, peak: dict[str, float]) -> None:
    """extra_info: device, torch, analytic FLOPs, achieved GFLOP/s (min time) and % of the peak."""
    stats = benchmark.stats.stats  # type: ignore[attr-defined]
    rate = flops / stats.min / 1e9 if flops else 0.0
    benchmark.extra_info.update(  # type: ignore[attr-defined]
        {
            "device": str(device),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "flops": flops,
            "gflops_per_s": rate,
            "peak_gflops_per_s": peak["peak"],
            "fraction_of_peak": rate / peak["peak"],
            "loadavg": os.getloadavg(),
        }
    )
