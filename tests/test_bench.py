"""`lbpbench bench` on the CPU: analytic FLOPs against independent counts, the command's outputs,
seed scaling, in-process growth points, and the summary table."""

from __future__ import annotations

import json
import math

import pytest
import torch
from click.testing import CliRunner
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from lbpbench.bench import (
    Case,
    bench_command,
    growth_network,
    growth_point_in_process,
    learner_macs,
    seed_scaling,
    slot_instances,
    step_flops,
    summary_markdown,
    uncounted_cores,
)
from lbpbench.protocol.builder import build_network
from lbpbench.protocol.slots import CoreOutput, SlotInfo
from lbpbench.protocol.stateful import StatefulCore
from lbpbench.protocol.stateless import StatelessCore
from lbpbench.tasks import NetworkSpec

TINY = dict(message_size=4, hidden_size=4, mlp_widths=[32, 16], meta_batch=2)
PEAK = {"peak": 100.0, "sgemm_80x40": 50.0, "sgemm_square": 100.0, "square_size": 8192.0}


# ------------------------------------------------------------------------------ analytic FLOPs
def _slot(is_param: bool, k: int = 3) -> SlotInfo:
    pieces = (("message", k), ("W", 1), ("W_in", 1)) if is_param else (("message", k), ("act_in", 1))
    return SlotInfo("dense2", "W" if is_param else "learner", "dense", pieces, is_param, k)


def _counted_flops(core: nn.Module, slot: SlotInfo, instances: int, need_message: bool) -> int:
    """FLOPs torch counts for one forward over `instances` node instances. The pieces stay
    un-broadcast except one width-1 piece of `instances` rows, as in the engine, so the first
    layer's work does not grow with the instance count."""
    k = slot.message_size
    pieces = [torch.randn(1, k), torch.randn(instances, 1)] + [torch.randn(1, 1)] * (len(slot.pieces) - 2)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        core(pieces, None, need_message)
    return counter.get_total_flops()


# (learner, is_param, need_message); a slot with no update always sends its message
CORE_CASES = [(learner, True, need) for learner in ("stateful", "stateless") for need in (True, False)]
CORE_CASES += [("stateful", False, True), ("stateless", False, True)]


@pytest.mark.parametrize(("learner", "is_param", "need_message"), CORE_CASES)
def test_instance_macs_is_what_torch_counts_per_extra_instance(
    learner: str, is_param: bool, need_message: bool
) -> None:
    slot = _slot(is_param)
    if learner == "stateful":
        core: nn.Module = StatefulCore(slot, carry_size=7, mlp_widths=[5, 4])
    else:
        core = StatelessCore(slot, mlp_widths=[5, 4], untrained_message_mlp=False)
    per_instance = (
        _counted_flops(core, slot, 5, need_message) - _counted_flops(core, slot, 1, need_message)
    ) / 4
    assert per_instance > 0
    assert 2 * core.instance_macs(need_message=need_message) == per_instance  # 2 FLOPs per multiply-add


class PluginCore(nn.Module):
    """A plugin learner's core that states its own cost: 7 multiply-adds per instance, 5 without
    the message."""

    carry_size = 0

    def forward(
        self, pieces: list[torch.Tensor], carry: torch.Tensor | None, need_message: bool
    ) -> CoreOutput:
        raise NotImplementedError  # never run: only counted

    def instance_macs(self, need_message: bool = True) -> int:
        return 7 if need_message else 5


class SilentCore(PluginCore):
    instance_macs = None  # type: ignore[assignment]  # a plugin core that does not say


def _tiny_net(core: type[nn.Module], silent: tuple[str, ...] = ()) -> nn.Module:
    """1-2-1 net: dense1 (W, b), act1, dense2 (W, b), loss — every core replaced by `core`."""
    net = build_network(NetworkSpec(1, (2, 1), "relu", "identity", "l2"), learner="backprop", message_size=1)
    for key in list(net.cores):
        net.cores[key] = SilentCore() if key in silent else core()
    return net


def test_a_plugin_core_counts_its_own_instance_macs() -> None:
    net = _tiny_net(PluginCore)
    # Per task and example, by hand: dense1_W 1x2, dense1_b 2, act1 2, dense2_W 2x1, dense2_b 1,
    # loss 1 = 10 instances; 2 tasks x batch 3 = 60, of which dense1_W's 12 send no message.
    assert sum(slot_instances(net, n_tasks=2, batch_size=3).values()) == 60
    assert learner_macs(net, n_tasks=2, batch_size=3) == 12 * 5 + 48 * 7
    assert step_flops(net, 2, 3) == 2 * (12 * 5 + 48 * 7)
    assert step_flops(net, 2, 3, backward=True) == 6 * (12 * 5 + 48 * 7)
    assert uncounted_cores(net) == []


def test_a_core_without_instance_macs_makes_the_cost_unknown_not_zero() -> None:
    net = _tiny_net(PluginCore, silent=("act1",))
    assert uncounted_cores(net) == ["act1"]
    assert learner_macs(net, 2, 3) == 12 * 5 + (48 - 12) * 7  # act1's 12 instances count 0
    assert step_flops(net, 2, 3) is None


def test_growth_net_instances_are_every_slot_of_the_1_h_h_1_net() -> None:
    # Per example: synapses h + h² + h, biases h + h + 1, activations h + h, loss 1 = h² + 6h + 2.
    h, batch = 4, 3
    assert sum(slot_instances(growth_network(h), 1, batch).values()) == batch * (h * h + 6 * h + 2)


# ------------------------------------------------------------------------------ the command
def test_bench_command_writes_json_and_markdown(tmp_path, monkeypatch, one_thread: None) -> None:
    from lbpbench.bench import command

    case = Case("sinusoid-5x10", "stateful", "mean", "inner")
    monkeypatch.setattr(command, "default_cases", lambda quick, compile: [case])
    monkeypatch.setattr(command, "matmul_peak", lambda device: dict(PEAK))  # the real one takes seconds
    args = ["--quick", "--rounds", "1", "--no-memory", "--out"]
    runner = CliRunner()
    result = runner.invoke(bench_command, [*args, str(tmp_path / "r.json")])
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "r.json").read_text())
    (row,) = data["cases"]
    assert row["name"] == "sinusoid-5x10/stateful/mean/inner" and len(row["seconds"]) == 1
    assert row["flops"] > 0 and row["setup_s"] > 0
    assert data["peak"] == PEAK and data["environment"]["device_type"] == "cpu"

    result = runner.invoke(bench_command, [*args, str(tmp_path / "sub" / "r.md")])
    assert result.exit_code == 0, result.output
    text = (tmp_path / "sub" / "r.md").read_text()
    assert text.startswith("device ") and "| sinusoid-5x10/stateful/mean/inner |" in text


def test_cli_group_loads_the_bench_command() -> None:
    from lbpbench.cli import main

    result = CliRunner().invoke(main, ["bench", "--help"], prog_name="lbpbench")
    assert result.exit_code == 0 and "Usage: lbpbench bench" in result.output and "--seeds" in result.output


def test_cuda_without_a_gpu_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the same on a GPU machine
    result = CliRunner().invoke(bench_command, ["--device", "cuda"])
    assert result.exit_code == 2 and "no CUDA device" in result.output


# ------------------------------------------------------------------------------ measurements
def test_seed_scaling_times_one_seed_and_a_seed_batch(one_thread: None) -> None:
    row = seed_scaling("sinusoid-5x10", "cpu", 2, rounds=1, **TINY)
    assert row["seeds"] == 2 and row["one_seed_s"] > 0 and row["batch_s"] > 0


def test_timed_meta_steps_keep_training_however_often_they_are_called(one_thread: None) -> None:
    """Every timed call is a whole meta-step (forward, backward, update) of every member. Guards a
    past bench bug: its cases had meta_steps = 1, so after the warm-up call a seed batch's members
    were finished and the timed calls ran the forward pass only (8 seeds "3.30 x one seed")."""
    from lbpbench.bench.cases import case_workload, seed_batch_workload

    for work in (case_workload("meta", "sinusoid-5x10", "stateful", "mean", "cpu", **TINY),
                 seed_batch_workload("sinusoid-5x10", "stateful", "mean", "cpu", 2, **TINY)):
        population = work.step.__self__
        for _ in range(3):  # the warm-up and first timed calls
            work.step()
        before = {n: w.detach().clone() for n, w in population.weights.items()}
        work.step()
        assert all(m.step == 4 for m in population.members)
        moved = [n for n, w in population.weights.items() if not torch.equal(w.detach(), before[n])]
        assert len(moved) == len(before), sorted(set(before) - set(moved))[:3]


def test_growth_point_in_process_on_the_cpu() -> None:
    point = growth_point_in_process(batch=3, hidden=4, rounds=1, device="cpu")
    assert point["seconds"] > 0 and math.isnan(point["step_delta_mb"])


def test_summary_markdown_has_every_section() -> None:
    result = {
        "environment": {
            "device": "GPU X",
            "device_type": "cuda",
            "torch": "2.x",
            "threads": 1,
            "loadavg": [0.5],
        },
        "peak": PEAK,
        "cases": [
            {"name": "t/l/a/meta", "seconds": [0.2, 0.1], "flops": 5e9, "load": 0.5, "setup_s": 3.0},
            {"name": "t/plugin/a/meta", "seconds": [0.2, 0.1], "flops": None, "load": 0.5, "setup_s": 3.0},
        ],
        "memory": {"mnist-20x8/stateful checkpointing=True": {"peak_rss_mb": 900.0, "step_delta_mb": 600.0}},
        "seed_scaling": [
            {
                "task": "t",
                "seeds": 8,
                "one_seed_s": 0.1,
                "batch_s": 0.2,
                "ratio": 2.0,
                "loop_s": 0.8,
                "load": 0.5,
            }
        ],
    }
    text = summary_markdown(result)
    assert "8192² square: 100.0" in text
    # 5 GFLOP in 0.1 s = 50 GFLOP/s, half of the 100 GFLOP/s peak
    assert "| t/l/a/meta | 0.1500 | 0.1000 | 3.00 | 5.000 | 50.0 | 50 | 0.50 |" in text
    assert "| t/plugin/a/meta | 0.1500 | 0.1000 | 3.00 | – | – | – | 0.50 |" in text
    assert "meta-step memory (GPU) | allocator peak MB" in text and "| 900 | 600 |" in text
    assert "| t | 8 | 0.1000 | 0.2000 | 2.00 | 0.8000 | 0.50 |" in text
