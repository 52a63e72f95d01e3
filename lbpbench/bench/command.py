"""`lbpbench bench`: run every measurement in one process and print or write the result."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click
import torch

from lbpbench.bench.cases import default_cases, run_case, seed_scaling
from lbpbench.bench.growth import cost_growth
from lbpbench.bench.memory import meta_step_memory
from lbpbench.bench.render import cost_growth_markdown, summary_markdown
from lbpbench.bench.timing import environment, matmul_peak


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
