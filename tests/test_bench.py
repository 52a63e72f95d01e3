"""`lbpbench bench` pieces on the CPU: seed scaling, in-process growth points, the summary table."""

from __future__ import annotations

import math

import pytest
import torch
from click.testing import CliRunner

from lbpbench.bench import bench_command, growth_point_in_process, seed_scaling, summary_markdown

TINY = dict(message_size=4, hidden_size=4, mlp_widths=[32, 16], meta_batch=2)


def test_seed_scaling_times_one_seed_and_a_batch(one_thread: None) -> None:
    row = seed_scaling("sinusoid-5x10", "cpu", 2, rounds=1, **TINY)
    assert row["one_seed_s"] > 0 and row["batch_s"] > 0
    assert row["ratio"] == pytest.approx(row["batch_s"] / row["one_seed_s"])
    assert row["loop_s"] == pytest.approx(2 * row["one_seed_s"])


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
        "peak": {"peak": 100.0, "sgemm_80x40": 50.0, "sgemm_square": 100.0, "square_size": 8192.0},
        "cases": [
            {"name": "t/l/a/meta", "seconds": [0.2, 0.1], "flops": 5e9, "load": 0.5, "setup_s": 3.0},
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
    assert "| t/l/a/meta | 0.1500 | 0.1000 | 3.00 | 5.000 | 50.0 | 50 | 0.50 |" in text
    assert "meta-step memory (GPU) | allocator peak MB" in text and "| 900 | 600 |" in text
    assert "| t | 8 | 0.1000 | 0.2000 | 2.00 | 0.8000 | 0.50 |" in text


def test_cuda_without_a_gpu_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the same on a GPU machine
    result = CliRunner().invoke(bench_command, ["--device", "cuda"])
    assert result.exit_code == 2 and "no CUDA device" in result.output
