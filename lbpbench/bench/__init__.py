"""Throughput of the engine against the machine's own float32 matmul peak (issue 7).

Why a floor: the learners' instance-level matrix multiplies are the irreducible work of a learned
protocol, so analytic FLOPs / (time x measured sgemm peak) says how far a path is from the machine,
independent of how fast or loaded the machine is. Every timing is printed next to the load average
because the benchmark machine is shared.

`python -m lbpbench.bench` or `lbpbench bench [--device cpu|cuda] [--quick] [--out FILE.json|.md]`.
Modules: `cost` (analytic FLOPs), `timing` (timers, matmul peak), `cases` (benchmark cases, seed
scaling; the only one that touches the meta-training harness), `memory`, `growth` (cost growth),
`render` (markdown), `command` (the click command), `meta_step_timer` (before/after script).
"""

from lbpbench.bench.cases import (
    AGGREGATORS,
    LEARNERS,
    TASKS,
    Case,
    Workload,
    bench_config,
    case_workload,
    default_cases,
    run_case,
    seed_batch_workload,
    seed_scaling,
)
from lbpbench.bench.command import bench_command, run_benchmarks
from lbpbench.bench.cost import (
    core_instance_macs,
    learner_macs,
    meta_step_flops,
    slot_instances,
    step_flops,
    uncounted_cores,
)
from lbpbench.bench.growth import cost_growth, growth_network, growth_point_in_process, growth_step
from lbpbench.bench.memory import meta_step_memory
from lbpbench.bench.render import cost_growth_markdown, summary_markdown
from lbpbench.bench.timing import environment, matmul_peak, time_call

__all__ = [
    "AGGREGATORS",
    "LEARNERS",
    "TASKS",
    "Case",
    "Workload",
    "bench_command",
    "bench_config",
    "case_workload",
    "core_instance_macs",
    "cost_growth",
    "cost_growth_markdown",
    "default_cases",
    "environment",
    "growth_network",
    "growth_point_in_process",
    "growth_step",
    "learner_macs",
    "matmul_peak",
    "meta_step_flops",
    "meta_step_memory",
    "run_benchmarks",
    "run_case",
    "seed_batch_workload",
    "seed_scaling",
    "slot_instances",
    "step_flops",
    "summary_markdown",
    "time_call",
    "uncounted_cores",
]
