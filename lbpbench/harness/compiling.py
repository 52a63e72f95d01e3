"""What `--compile` compiles: the inner step, or the whole meta-loss for CUDA graphs.

Why two: on a CPU the meta-step is bound by arithmetic and elementwise passes, and compiling the
inner step fuses the elementwise work at a compile time of minutes (results/benchmarks/README.md).
On a GPU the meta-step is bound by kernel launches (≈20k aten ops per meta-step, each a launch), so
what pays is replaying the whole unroll's forward and backward as CUDA graphs:
`torch.compile(mode="reduce-overhead")` of the meta-loss. On a CPU that mode compiles the same graph
and skips the capture, so "graphs" is then the whole meta-loss compiled as one graph.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, get_args

import click

if TYPE_CHECKING:
    from torch import nn

CompileMode = Literal["inner", "graphs"]
COMPILE_MODES: tuple[str, ...] = get_args(CompileMode)


def compile_mode(choice: bool | str | None) -> CompileMode | None:
    """None (eager), "inner" or "graphs" from a caller's choice; True means "inner" (`--compile`)."""
    if choice is None or choice is False:
        return None
    if choice is True:
        return "inner"
    if choice not in COMPILE_MODES:
        raise ValueError(f"compile must be one of {', '.join(COMPILE_MODES)} (or a bool); got {choice!r}")
    return choice  # type: ignore[return-value]


def compile_mode_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """`--compile-mode`, shared by the commands that meta-train; the command receives compile_mode."""
    return click.option(
        "--compile-mode", "compile_mode", type=click.Choice(COMPILE_MODES), default=None,
        help="What to compile (implies --compile): inner, the inner step (pays on a CPU); graphs, the "
             "whole meta-loss with mode='reduce-overhead' (CUDA graphs on a GPU, where the meta-step "
             "is launch-bound; one compiled graph on a CPU).",
    )(command)


def compile_protocol(net: nn.Module, meta_loss: nn.Module, mode: CompileMode | None) -> None:
    """Compile a protocol member's inner step ("inner") or its whole meta-loss ("graphs") in place."""
    import torch

    if mode == "inner":
        # Fuses the elementwise work around the learners' small matmuls (forward and backward).
        net.inner_step = torch.compile(net.inner_step, dynamic=False)
    elif mode == "graphs":
        # One graph for the unroll's forward and one for its backward; captured as CUDA graphs on
        # a GPU (their inputs are copied into static buffers at every replay).
        meta_loss.forward = torch.compile(meta_loss.forward, dynamic=False, mode="reduce-overhead")


def begin_graph_step() -> None:
    """Tell CUDA-graph trees a new meta-step begins: the last one's graph outputs are dead."""
    import torch

    torch.compiler.cudagraph_mark_step_begin()
