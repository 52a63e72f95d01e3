"""Inner step (learner evaluation, no grad) and meta-step (full meta-gradient) of every built-in
learner x aggregator on sinusoid-5x10 and mnist-20x8, the 784-100 MNIST net's inner step, and one
seed against an 8-seed batch.

Run: `pytest benchmarks/ --benchmark-only` (add `--benchmark-json results/benchmarks/x.json`).
Few pedantic rounds keep the whole file to minutes on 2 cores.
"""

from __future__ import annotations

import pytest
import torch
from conftest import record

from lbpbench.bench import AGGREGATORS, LEARNERS, case_workload, seed_batch_workload

CASES = [
    (task, learner, agg)
    for task in ("sinusoid-5x10", "mnist-20x8")
    for learner in LEARNERS
    for agg in (("sum",) if learner == "backprop" else AGGREGATORS)
]


@pytest.mark.parametrize(("task", "learner", "aggregator"), CASES)
def test_inner_step(benchmark, device, peak, task, learner, aggregator) -> None:
    work = case_workload("inner", task, learner, aggregator, device.type)
    benchmark.pedantic(work.step, rounds=5, warmup_rounds=1)
    record(benchmark, device, work.flops, peak)


@pytest.mark.parametrize(("task", "learner", "aggregator"), CASES)
def test_meta_step(benchmark, device, peak, task, learner, aggregator) -> None:
    work = case_workload("meta", task, learner, aggregator, device.type)
    benchmark.pedantic(work.step, rounds=3, warmup_rounds=1)
    record(benchmark, device, work.flops, peak)


def test_mnist_784_100_inner_step(benchmark, device, peak) -> None:
    work = case_workload("inner", "mnist-784-100", "stateful", "mean", device.type)
    benchmark.pedantic(work.step, rounds=2, warmup_rounds=1)
    record(benchmark, device, work.flops, peak)
    assert torch.isfinite(work.step().loss).all()


@pytest.mark.parametrize("seeds", [1, 8])
def test_seed_batch_meta_step(benchmark, device, peak, seeds) -> None:
    """One meta-step of `seeds` seeds as one vmapped seed batch (issue 7: 8 seeds ≤ 3 × one seed;
    compare the two rows' times)."""
    if seeds == 1:
        work = case_workload("meta", "sinusoid-5x10", "stateful", "mean", device.type)
    else:
        work = seed_batch_workload("sinusoid-5x10", "stateful", "mean", device.type, seeds)
    benchmark.pedantic(work.step, rounds=3, warmup_rounds=1)
    record(benchmark, device, work.flops, peak)
