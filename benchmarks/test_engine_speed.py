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

from lbpbench.bench import AGGREGATORS, LEARNERS, inner_step_fn, make_training, meta_step_flops

CASES = [
    (task, learner, agg)
    for task in ("sinusoid-5x10", "mnist-20x8")
    for learner in LEARNERS
    for agg in (("sum",) if learner == "backprop" else AGGREGATORS)
]


@pytest.mark.parametrize(("task", "learner", "aggregator"), CASES)
def test_inner_step(benchmark, device, peak, task, learner, aggregator) -> None:
    mt = make_training(task, learner, aggregator, device.type)
    step, flops = inner_step_fn(mt)
    benchmark.pedantic(step, rounds=5, warmup_rounds=1)
    record(benchmark, device, flops, peak)


@pytest.mark.parametrize(("task", "learner", "aggregator"), CASES)
def test_meta_step(benchmark, device, peak, task, learner, aggregator) -> None:
    mt = make_training(task, learner, aggregator, device.type)
    benchmark.pedantic(mt.meta_step, rounds=3, warmup_rounds=1)
    record(benchmark, device, meta_step_flops(mt), peak)


def test_mnist_784_100_inner_step(benchmark, device, peak) -> None:
    mt = make_training("mnist-784-100", "stateful", "mean", device.type)
    step, flops = inner_step_fn(mt)
    benchmark.pedantic(step, rounds=2, warmup_rounds=1)
    record(benchmark, device, flops, peak)
    assert torch.isfinite(step().loss).all()


@pytest.mark.parametrize("seeds", [1, 8])
def test_seed_batch_meta_step(benchmark, device, peak, seeds) -> None:
    """One meta-step of `seeds` seeds as one vmapped seed batch (issue 7: 8 seeds ≤ 3 × one seed;
    compare the two rows' times)."""
    from lbpbench.bench import bench_config
    from lbpbench.harness.seed_batch import SeedBatchTraining

    if seeds == 1:
        mt = make_training("sinusoid-5x10", "stateful", "mean", device.type)
        benchmark.pedantic(mt.meta_step, rounds=3, warmup_rounds=1)
        record(benchmark, device, meta_step_flops(mt), peak)
        return
    configs = [bench_config("sinusoid-5x10", "stateful", "mean", device.type, seed=s) for s in range(seeds)]
    batch = SeedBatchTraining(configs)
    benchmark.pedantic(batch.meta_step, rounds=3, warmup_rounds=1)
    record(benchmark, device, seeds * meta_step_flops(batch.members[0]), peak)
