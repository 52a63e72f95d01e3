"""Throughput of the engine against the machine's own float32 matmul peak (issue 7).

Why a floor: the learners' instance-level matrix multiplies are the irreducible work of a learned
protocol, so analytic FLOPs / (time x measured sgemm peak) says how far a path is from the machine,
independent of how fast or loaded the machine is. Every timing is printed next to the load average
because the benchmark machine is shared.

`python -m lbpbench.bench` or `lbpbench bench [--device cpu|cuda] [--quick] [--out FILE.json|.md]`.
"""

from __future__ import annotations

import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import click
import torch
from torch import nn

from lbpbench.protocol.network import MessagePassingNetwork
from lbpbench.protocol.stateful import StatefulCore
from lbpbench.protocol.stateless import StatelessCore

LEARNERS = ("stateless", "stateful", "backprop")
AGGREGATORS = ("mean", "sum", "rnn")
TASKS = ("sinusoid-5x10", "mnist-20x8")


# ------------------------------------------------------------------------------ analytic cost
def _dense_macs(layers: nn.ModuleList, skip_first: bool = True) -> int:
    pairs = [tuple(layer.kernel.shape) for layer in layers]
    return sum(a * b for a, b in (pairs[1:] if skip_first else pairs))


def core_instance_macs(core: nn.Module, need_message: bool = True) -> int:
    """Multiply-adds per node instance of one core's instance-level matmuls.

    The first layer is excluded: it runs on the small un-broadcast pieces (MPLP.md §7), so it is
    not per-instance work. Backprop and plugin cores count 0 (elementwise rules, no matmuls).
    """
    if isinstance(core, StatefulCore):
        c = core.carry_size
        return c * 2 * c + _dense_macs(core.mlp_x) + _dense_macs(core.mlp_c, skip_first=False)
    if isinstance(core, StatelessCore):
        macs = _dense_macs(core.update_mlp) if core.update_mlp is not None else 0
        return macs + (_dense_macs(core.message_mlp) if need_message else 0)
    return 0


def learner_macs(net: MessagePassingNetwork, n_tasks: int, batch_size: int) -> int:
    """Learner multiply-adds of one forward inner step: sum over slots of instances x core MACs."""
    first_w = next(key for key, e in net.entries.items() if e.info.slot == "W")
    total = 0
    for key, entry in net.entries.items():
        instances = n_tasks * math.prod(entry.info.node.carry_shape(entry.info.slot, batch_size))
        total += instances * core_instance_macs(net.cores[entry.core], need_message=key != first_w)
    return total


def step_flops(net: MessagePassingNetwork, n_tasks: int, batch_size: int, backward: bool = False) -> float:
    """2 FLOPs per multiply-add; a backward pass costs two more matmuls per forward one."""
    return 2.0 * learner_macs(net, n_tasks, batch_size) * (3 if backward else 1)


# ------------------------------------------------------------------------------ timing helpers
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], Any], device: torch.device, rounds: int, warmup: int = 1) -> list[float]:
    """Seconds per call, `rounds` times after `warmup` calls (report the min and the median)."""
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        _sync(device)
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


# ------------------------------------------------------------------------------ benchmark cases
@dataclass
class Case:
    task: str
    learner: str
    aggregator: str
    kind: str  # "inner" (no-grad learned step, i.e. learner evaluation) | "meta" (meta-step, full backprop)
    compile: bool = False  # torch.compile of the inner step (its compile time is in `setup_s`)
    seconds: list[float] = field(default_factory=list)
    flops: float = 0.0
    load: float = 0.0
    setup_s: float = 0.0  # first call (compilation, allocator warm-up), not in `seconds`

    @property
    def name(self) -> str:
        suffix = "+compile" if self.compile else ""
        return f"{self.task}/{self.learner}/{self.aggregator}/{self.kind}{suffix}"


def bench_config(task: str, learner: str, aggregator: str, device: str, **overrides: Any) -> Any:
    """The RunConfig of one benchmark case (backprop needs message size 1)."""
    from lbpbench.harness.config import RunConfig

    options: dict[str, Any] = {"message_size": 1} if learner == "backprop" else {}
    options.update(overrides)
    return RunConfig(
        task=task, learner=learner, aggregator=aggregator, device=device, meta_steps=1, **options
    )


def make_training(
    task: str, learner: str, aggregator: str, device: str, compile: bool = False, **overrides: Any
) -> Any:
    """A MetaTraining for one benchmark case."""
    from lbpbench.harness.meta_train import MetaTraining

    return MetaTraining(bench_config(task, learner, aggregator, device, **overrides), compile=compile)


def inner_step_fn(mt: Any, n_tasks: int | None = None) -> tuple[Callable[[], Any], float]:
    """(a no-grad learned inner step over the meta-batch, its analytic FLOPs)."""
    n = n_tasks or mt.meta_batch
    tasks = mt.family.sample(n, torch.Generator().manual_seed(0)).to(mt.device)
    params = mt.initial_params(n)
    carries = mt.net.init_carries(n, tasks.train_x.shape[2], device=mt.device)
    x, y = tasks.train_x[:, 0], tasks.train_y[:, 0]

    def step() -> Any:
        with torch.no_grad():
            return mt.net.inner_step(params, carries, x, y)

    return step, step_flops(mt.net, n, tasks.train_x.shape[2])


def meta_step_flops(mt: Any) -> float:
    steps = mt.family.inner_steps
    return steps * step_flops(mt.net, mt.meta_batch, mt.family.batch_size, backward=True)


def run_case(case: Case, device: str, rounds: int) -> Case:
    mt = make_training(case.task, case.learner, case.aggregator, device, compile=case.compile)
    dev = mt.device
    if case.kind == "inner":
        fn, case.flops = inner_step_fn(mt)
    else:
        fn, case.flops = mt.meta_step, meta_step_flops(mt)
    case.setup_s = time_call(fn, dev, rounds=1, warmup=0)[0]
    case.seconds = time_call(fn, dev, rounds)
    case.load = os.getloadavg()[0]
    return case


def seed_scaling(task: str, device: str, seeds: int, rounds: int = 3, **overrides: Any) -> dict[str, Any]:
    """Meta-step time of one seed against `seeds` seeds of the same configuration run as one
    vectorised seed batch (stateful learner, mean aggregator)."""
    from lbpbench.harness.seed_batch import SeedBatchTraining

    one = make_training(task, "stateful", "mean", device, **overrides)
    configs = [bench_config(task, "stateful", "mean", device, seed=s, **overrides) for s in range(seeds)]
    batch = SeedBatchTraining(configs)
    one_s = min(time_call(one.meta_step, one.device, rounds))
    batch_s = min(time_call(batch.meta_step, batch.device, rounds))
    loop_s = seeds * one_s
    return {
        "task": task,
        "seeds": seeds,
        "one_seed_s": one_s,
        "batch_s": batch_s,
        "ratio": batch_s / one_s,
        "loop_s": loop_s,
        "load": os.getloadavg()[0],
    }


def default_cases(quick: bool, compile: bool = False) -> list[Case]:
    cases = []
    if compile:  # the compiled path on the headline case (each compile takes minutes on a CPU)
        cases += [Case("sinusoid-5x10", "stateful", "mean", kind, compile=True) for kind in ("inner", "meta")]
    learners = ("stateful", "backprop") if quick else LEARNERS
    for task in TASKS:
        for learner in learners:
            aggs = ("sum",) if learner == "backprop" else (("mean",) if quick else AGGREGATORS)
            for agg in aggs:
                kinds = ("inner", "meta") if task == "sinusoid-5x10" or not quick else ("inner",)
                cases += [Case(task, learner, agg, kind) for kind in kinds]
    cases.append(Case("mnist-784-100", "stateful", "mean", "inner"))
    return cases


# ------------------------------------------------------------------------------ memory
_RSS_PROBE = """
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
    _RSS_PROBE
    + """
import json, torch
from lbpbench.bench import make_training
torch.set_num_threads({threads})
mt = make_training({task!r}, {learner!r}, {aggregator!r}, 'cpu', checkpointing={checkpointing})
with PeakRSS() as probe:
    mt.meta_step()
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
        dev = torch.device("cuda")
        mt = make_training(task, learner, aggregator, device, checkpointing=checkpointing)
        mt.meta_step()
        torch.cuda.synchronize(dev)
        base = torch.cuda.memory_allocated(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        mt.meta_step()
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


# ------------------------------------------------------------------------------ cost growth
_GROWTH_SCRIPT = (
    _RSS_PROBE
    + """
import json, torch
from lbpbench.bench import growth_step, time_call
torch.set_num_threads({threads})
step = growth_step({batch}, {hidden}, "cpu")
seconds = min(time_call(step, torch.device("cpu"), {rounds}, warmup=2))
with PeakRSS() as probe:
    step()
print(json.dumps({{"seconds": seconds, "step_delta_mb": probe.peak - probe.base}}))
"""
)


def growth_step(batch: int, hidden: int, device: str) -> Callable[[], None]:
    """One learned inner step, forward and backward, of a 1-h-h-1 net (stateful learner, one
    task, batch `batch`): the unit whose cost the growth table follows."""
    from lbpbench.protocol.builder import build_network
    from lbpbench.protocol.spec import NetworkSpec

    dev = torch.device(device)
    spec = NetworkSpec(1, (hidden, hidden, 1), "relu", "identity", "l2")
    net = build_network(spec, learner="stateful").to(dev)
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


def cost_growth(
    batches: tuple[int, ...] = (5, 10, 20, 40, 80),
    hiddens: tuple[int, ...] = (10, 20, 40, 80),
    rounds: int = 3,
    device: str = "cpu",
) -> list[dict[str, Any]]:
    """Inner step (forward + backward, stateful learner) time and memory of a 1-h-h-1 net against
    batch size (h = 20) and against synapse count (B = 10); on the CPU a fresh process per point
    for memory."""
    rows = []
    points = [(b, 20) for b in batches] + [(10, h) for h in hiddens if h != 20]
    if device == "cuda":  # a GPU has room for much larger nets: go on growing
        points += [(b, 20) for b in (320, 1280)] + [(10, h) for h in (160, 320)]
    for batch, hidden in points:
        if device == "cuda":
            result = growth_point_in_process(batch, hidden, rounds)
        else:
            code = _GROWTH_SCRIPT.format(
                threads=torch.get_num_threads(), hidden=hidden, batch=batch, rounds=rounds
            )
            done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
            result = json.loads(done.stdout.strip().splitlines()[-1])
        synapses = hidden + hidden * hidden + hidden
        rows.append(
            {
                "batch": batch,
                "hidden": hidden,
                "synapses": synapses,
                "instances": batch * (synapses + 3 * hidden + 2),
                "seconds": result["seconds"],
                "step_delta_mb": result["step_delta_mb"],
                "load": os.getloadavg()[0],
            }
        )
    return rows


def cost_growth_markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| batch | hidden | synapses | node instances | inner step fwd+bwd (s, min) "
        "| step memory (MB) | load |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['batch']} | {r['hidden']} | {r['synapses']} | {r['instances']} | {r['seconds']:.4f} "
            f"| {r['step_delta_mb']:.1f} | {r['load']:.2f} |"
        )
    return "\n".join(lines)


# ------------------------------------------------------------------------------ report
def environment(device: torch.device) -> dict[str, Any]:
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


def summary_markdown(result: dict[str, Any]) -> str:
    peak = result["peak"]["peak"]
    env = result["environment"]
    lines = [
        f"device {env['device']} ({env['device_type']}), torch {env['torch']}, {env['threads']} threads, "
        f"load average at start {env['loadavg'][0]:.2f}",
        f"float32 matmul peak: {peak:.1f} GFLOP/s (learner-shaped [20000,80]x[80,40]: "
        f"{result['peak']['sgemm_80x40']:.1f}, {result['peak'].get('square_size', 2048):.0f}² square: "
        f"{result['peak']['sgemm_square']:.1f})",
        "",
        "| path | median s | min s | first call s | GFLOP (analytic) | GFLOP/s (min) | % of peak | load |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in result["cases"]:
        best = min(c["seconds"])
        rate = c["flops"] / best / 1e9
        pct = f"{100 * rate / peak:.0f}" if c["flops"] else "–"
        lines.append(
            f"| {c['name']} | {statistics.median(c['seconds']):.4f} | {best:.4f} | {c.get('setup_s', 0):.2f} "
            f"| {c['flops'] / 1e9:.3f} | {rate:.1f} | {pct} | {c['load']:.2f} |"
        )
    if result.get("memory"):
        gpu = env["device_type"] == "cuda"
        head = "allocator peak MB" if gpu else "peak RSS MB"
        lines += ["", f"| meta-step memory ({'GPU' if gpu else 'fresh process'}) | {head} | step delta MB |"]
        lines.append("|---|---:|---:|")
        for name, m in result["memory"].items():
            lines.append(f"| {name} | {m['peak_rss_mb']:.0f} | {m['step_delta_mb']:.0f} |")
    if result.get("seed_scaling"):
        lines += [
            "",
            "| seed batch (stateful/mean meta-step) | seeds | one seed s | batch s | batch / one seed "
            "| loop of seeds s | load |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for r in result["seed_scaling"]:
            lines.append(
                f"| {r['task']} | {r['seeds']} | {r['one_seed_s']:.4f} | {r['batch_s']:.4f} "
                f"| {r['ratio']:.2f} | {r['loop_s']:.4f} | {r['load']:.2f} |"
            )
    return "\n".join(lines)


def run_benchmarks(
    device: str = "cpu",
    quick: bool = False,
    rounds: int | None = None,
    memory: bool = True,
    compile: bool = False,
    seeds: int = 0,
) -> dict[str, Any]:
    """Peak, every path, the mnist-20x8 stateful meta-step memory with and without checkpointing,
    and (seeds > 1) one seed against a seed batch; the peak is measured in the same run so
    fractions are comparable."""
    from lbpbench.harness.allocator import retain_freed_memory

    retain_freed_memory()
    dev = torch.device(device)
    rounds = rounds or (3 if quick else 5)
    result: dict[str, Any] = {"environment": environment(dev), "peak": matmul_peak(dev)}
    cases = []
    for case in default_cases(quick, compile):
        case_rounds = 2 if case.task == "mnist-784-100" else rounds
        c = run_case(case, device, case_rounds)
        click.echo(f"{c.name}: min {min(c.seconds):.4f} s (load {c.load:.2f})", err=True)
        cases.append({**asdict(c), "name": c.name})
    result["cases"] = cases
    if memory:
        result["memory"] = {
            f"mnist-20x8/stateful checkpointing={ck}": meta_step_memory(
                "mnist-20x8", checkpointing=ck, device=device
            )
            for ck in (True, False)
        }
    if seeds > 1:
        tasks = ("sinusoid-5x10", "mnist-20x8") if dev.type == "cuda" else ("sinusoid-5x10",)
        result["seed_scaling"] = [seed_scaling(task, device, seeds) for task in tasks]
        for row in result["seed_scaling"]:
            click.echo(f"{row['task']} {seeds} seeds: {row['ratio']:.2f}x one seed", err=True)
    return result


@click.command("bench")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--quick", is_flag=True, help="Fewer learners, aggregators and rounds.")
@click.option("--rounds", type=int, default=None, help="Timed rounds per path (default 5, quick 3).")
@click.option("--threads", type=int, default=None, help="torch intra-op threads (default: torch's).")
@click.option("--no-memory", is_flag=True, help="Skip the fresh-process memory measurements.")
@click.option("--growth", is_flag=True, help="Also print the cost-growth table (batch, synapses).")
@click.option("--compile", "compile_", is_flag=True, help="Add torch.compile'd sinusoid stateful paths.")
@click.option(
    "--seeds", type=click.IntRange(min=0), default=0, help="Also time N seeds as one seed batch vs one seed."
)
@click.option(
    "--out", "out", type=click.Path(dir_okay=False), default=None, help="Write FILE.json or FILE.md."
)
def bench_command(
    device: str,
    quick: bool,
    rounds: int | None,
    threads: int | None,
    no_memory: bool,
    growth: bool,
    compile_: bool,
    seeds: int,
    out: str | None,
) -> None:
    """Time every engine path and print it against the same run's float32 matmul peak."""
    if device == "cuda" and not torch.cuda.is_available():
        raise click.UsageError("--device cuda: no CUDA device is available")
    if threads:
        torch.set_num_threads(threads)
    result = run_benchmarks(device, quick, rounds, memory=not no_memory, compile=compile_, seeds=seeds)
    text = summary_markdown(result)
    if growth:
        result["cost_growth"] = cost_growth(device=device)
        text += "\n\n" + cost_growth_markdown(result["cost_growth"])
    click.echo(text)
    if out:
        path = Path(out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2, default=str) if path.suffix == ".json" else text + "\n")


if __name__ == "__main__":
    bench_command()
