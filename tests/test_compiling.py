"""What `--compile` / `--compile-mode` compile, and that the choice reaches the member.

Compiling for real takes minutes on a CPU (the parity of the compiled inner step is
tests/test_harness.py::test_compiled_inner_step_matches_eager); here torch.compile is replaced by a
recorder that returns the function unchanged, so these tests check what is compiled, with which
mode, and that CUDA-graph trees are told where each meta-step begins.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner
from population_helpers import TINY

from lbpbench.cli import main
from lbpbench.harness import run as harness_run
from lbpbench.harness.compiling import compile_mode
from lbpbench.harness.config import RunConfig
from lbpbench.harness.members import ProtocolMember
from lbpbench.harness.population import Population
from lbpbench.sweep import executors


def test_compile_choices_normalise_and_reject_unknown_modes() -> None:
    assert [compile_mode(c) for c in (None, False, True, "inner", "graphs")] == [
        None, None, "inner", "inner", "graphs"]
    with pytest.raises(ValueError, match="inner, graphs"):
        compile_mode("max-autotune")


@pytest.fixture
def compiled(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    """torch.compile recorded (the qualified name of what it compiled, its options), not run."""
    seen: list[tuple[str, dict[str, Any]]] = []

    def record(fn: Any, **options: Any) -> Any:
        seen.append((fn.__qualname__, options))
        return fn

    monkeypatch.setattr(torch, "compile", record)
    return seen


def test_inner_compiles_the_inner_step_and_graphs_the_whole_meta_loss(
    compiled: list[tuple[str, dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = RunConfig(**TINY)
    eager = Population([ProtocolMember(config)])
    assert compiled == []
    ProtocolMember(config, compile=True)
    assert compiled == [("MessagePassingNetwork.inner_step", {"dynamic": False})]
    compiled.clear()
    member = ProtocolMember(config, compile="graphs")
    assert compiled == [("_MetaLoss.forward", {"dynamic": False, "mode": "reduce-overhead"})]
    assert member.compile_mode == "graphs" and eager.members[0].compile_mode is None

    steps_begun: list[int] = []
    monkeypatch.setattr(torch.compiler, "cudagraph_mark_step_begin", lambda: steps_begun.append(1))
    graphs = Population([member])
    for _ in range(2):
        assert graphs.meta_step() == eager.meta_step()  # the recorder compiles nothing: same numbers
    assert len(steps_begun) == 2  # once per meta-step, before its forward
    eager.meta_step()
    assert len(steps_begun) == 2  # an eager population never touches CUDA-graph trees


def test_graphs_refuse_a_seed_batch(compiled: list[tuple[str, dict[str, Any]]]) -> None:
    members = [ProtocolMember(RunConfig(**TINY, seed=s), compile="graphs") for s in (0, 1)]
    with pytest.raises(ValueError, match="one member at a time"):
        Population(members)


def test_compile_mode_reaches_the_run_from_train_and_sweep_run(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls: list[Any] = []

    def fake_run_config(config: RunConfig, out_dir: Any, *, compile: Any, **_: Any) -> Any:
        calls.append(compile)
        raise RuntimeError("stop here")  # the choice is what this test is about

    monkeypatch.setattr(harness_run, "run_config", fake_run_config)
    monkeypatch.delenv("LBPBENCH_SWEEP_RUNNER", raising=False)
    runner = CliRunner()
    for extra, expected in (([], False), (["--compile"], True), (["--compile-mode", "graphs"], "graphs")):
        runner.invoke(main, ["train", "--steps", "1", *extra, "--out", str(tmp_path / "t"), "--quiet"])
        assert calls[-1] == expected
    result = runner.invoke(main, ["train", "--compile-mode", "whole", "--out", str(tmp_path / "t")])
    assert result.exit_code == 2 and "'whole' is not one of 'inner', 'graphs'" in result.output

    seen: list[Any] = []
    real_resolve = executors.resolve_runner

    def resolve(*args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs["compile"])
        raise ValueError("stop here")

    monkeypatch.setattr("lbpbench.sweep.commands.resolve_runner", resolve)
    result = runner.invoke(main, ["sweep", "run", "--compile-mode", "graphs", "--out", str(tmp_path / "s")])
    assert result.exit_code == 2 and seen == ["graphs"]
    assert real_resolve(compile="graphs").compile == "graphs"
