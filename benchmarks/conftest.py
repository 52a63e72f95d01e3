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


def record(benchmark: object, device: torch.device, flops: float | None, peak: dict[str, float]) -> None:
    """extra_info: device, torch, analytic FLOPs, achieved GFLOP/s (min time) and % of the peak;
    FLOPs None (a core that does not count its work) stays None rather than a rate of 0."""
    stats = benchmark.stats.stats  # type: ignore[attr-defined]
    rate = None if flops is None else flops / stats.min / 1e9
    benchmark.extra_info.update(  # type: ignore[attr-defined]
        {
            "device": str(device),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "flops": flops,
            "gflops_per_s": rate,
            "peak_gflops_per_s": peak["peak"],
            "fraction_of_peak": None if rate is None else rate / peak["peak"],
            "loadavg": os.getloadavg(),
        }
    )
