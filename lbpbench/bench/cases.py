"""Benchmark cases (task x learner x aggregator x inner/meta step) and seed-batch scaling.

This is the only module of the bench that touches the meta-training harness, in three functions:
`bench_config` (the RunConfig), `case_workload` (a population of one) and `seed_batch_workload`
(a population of several seeds). Each turns the harness object into a `Workload` — a callable, its analytic
FLOPs and its device — so the rest of the bench never sees harness attributes.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from lbpbench.bench.cost import meta_step_flops, step_flops
from lbpbench.bench.timing import time_call

LEARNERS = ("stateless", "stateful", "backprop")
AGGREGATORS = ("mean", "sum", "rnn")
TASKS = ("sinusoid-5x10", "mnist-20x8")

Kind = Literal["inner", "meta"]


@dataclass(frozen=True)
class Workload:
    """What one timing needs: the call, its analytic FLOPs (None: a core does not count its work)
    and the device to synchronise."""

    step: Callable[[], Any]
    flops: float | None
    device: torch.device


@dataclass
class Case:
    task: str
    learner: str
    aggregator: str
    kind: Kind  # "inner" (no-grad learned step, i.e. learner evaluation) | "meta" (meta-step, full backprop)
    compile: bool = False  # torch.compile of the inner step (its compile time is in `setup_s`)
    seconds: list[float] = field(default_factory=list)
    flops: float | None = None  # None: unknown (a plugin core without `instance_macs`)
    load: float = 0.0
    setup_s: float = 0.0  # first call (compilation, allocator warm-up), not in `seconds`

    @property
    def name(self) -> str:
        suffix = "+compile" if self.compile else ""
        return f"{self.task}/{self.learner}/{self.aggregator}/{self.kind}{suffix}"


# ------------------------------------------------------------------------------ harness boundary
def bench_config(task: str, learner: str, aggregator: str, device: str, **overrides: Any) -> Any:
    """The RunConfig of one benchmark case (backprop needs message size 1; it never runs out of
    meta-steps, so a workload can be timed any number of times)."""
    from lbpbench.harness.config import RunConfig

    options: dict[str, Any] = {"message_size": 1} if learner == "backprop" else {}
    options.update(overrides)
    return RunConfig(
        task=task, learner=learner, aggregator=aggregator, device=device, meta_steps=10**9, **options
    )


def case_workload(
    kind: Kind,
    task: str,
    learner: str,
    aggregator: str,
    device: str,
    compile: bool = False,
    **overrides: Any,
) -> Workload:
    """One meta-step ("meta") or one no-grad learned inner step over the meta-batch ("inner") of
    a fresh population of one for the case; `overrides` go to the RunConfig."""
    from lbpbench.harness.members import ProtocolMember
    from lbpbench.harness.population import Population

    member = ProtocolMember(bench_config(task, learner, aggregator, device, **overrides), compile=compile)
    n, family, net = member.meta_batch, member.family, member.net
    if kind == "meta":
        flops = meta_step_flops(net, n, family.batch_size, family.inner_steps)
        return Workload(Population([member]).meta_step, flops, member.device)
    tasks = family.sample(n, torch.Generator().manual_seed(0)).to(member.device)
    batch_size = tasks.train_x.shape[2]
    params, _ = member.draw()
    carries = net.init_carries(n, batch_size, device=member.device)
    x, y = tasks.train_x[:, 0], tasks.train_y[:, 0]

    def step() -> Any:
        with torch.no_grad():
            return net.inner_step(params, carries, x, y)

    return Workload(step, step_flops(net, n, batch_size), member.device)


def seed_batch_workload(
    task: str, learner: str, aggregator: str, device: str, seeds: int, **overrides: Any
) -> Workload:
    """One meta-step of seeds 0..seeds-1 of a configuration as one vectorised population."""
    from lbpbench.harness.members import ProtocolMember
    from lbpbench.harness.population import Population

    configs = [bench_config(task, learner, aggregator, device, seed=s, **overrides) for s in range(seeds)]
    batch = Population([ProtocolMember(c) for c in configs])
    one = batch.members[0]
    flops = meta_step_flops(one.net, one.meta_batch, one.family.batch_size, one.family.inner_steps)
    return Workload(batch.meta_step, None if flops is None else seeds * flops, one.device)


# ------------------------------------------------------------------------------ measurements
def run_case(case: Case, device: str, rounds: int) -> Case:
    """Time the case's first call apart (compilation, warm-up), then `rounds` calls."""
    work = case_workload(case.kind, case.task, case.learner, case.aggregator, device, compile=case.compile)
    case.flops = work.flops
    case.setup_s = time_call(work.step, work.device, rounds=1, warmup=0)[0]
    case.seconds = time_call(work.step, work.device, rounds)
    case.load = os.getloadavg()[0]
    return case


def seed_scaling(task: str, device: str, seeds: int, rounds: int = 3, **overrides: Any) -> dict[str, Any]:
    """Meta-step time of one seed against `seeds` seeds of the same configuration run as one
    vectorised seed batch (stateful learner, mean aggregator)."""
    one = case_workload("meta", task, "stateful", "mean", device, **overrides)
    batch = seed_batch_workload(task, "stateful", "mean", device, seeds, **overrides)
    one_s = min(time_call(one.step, one.device, rounds))
    batch_s = min(time_call(batch.step, batch.device, rounds))
    return {
        "task": task,
        "seeds": seeds,
        "one_seed_s": one_s,
        "batch_s": batch_s,
        "ratio": batch_s / one_s,
        "loop_s": seeds * one_s,
        "load": os.getloadavg()[0],
    }


def default_cases(quick: bool, compile: bool = False) -> list[Case]:
    """Every learner x aggregator on both tasks (quick: stateful/mean and backprop/sum), plus the
    784-100 MNIST net's inner step and, with `compile`, the compiled headline case."""
    cases = []
    if compile:  # the compiled path on the headline case (each compile takes minutes on a CPU)
        cases += [Case("sinusoid-5x10", "stateful", "mean", kind, compile=True) for kind in ("inner", "meta")]
    learners = ("stateful", "backprop") if quick else LEARNERS
    for task in TASKS:
        for learner in learners:
            aggs = ("sum",) if learner == "backprop" else (("mean",) if quick else AGGREGATORS)
            for agg in aggs:
                kinds: tuple[Kind, ...] = (
                    ("inner", "meta") if task == "sinusoid-5x10" or not quick else ("inner",)
                )
                cases += [Case(task, learner, agg, kind) for kind in kinds]
    cases.append(Case("mnist-784-100", "stateful", "mean", "inner"))
    return cases
