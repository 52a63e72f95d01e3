"""Markdown tables of a bench result (the JSON written by `lbpbench bench --out FILE.json`).

An unknown analytic cost (a core without `instance_macs`) prints as "–", never as 0 FLOPs.
"""

from __future__ import annotations

import statistics
from typing import Any

UNKNOWN = "–"


def _case_row(case: dict[str, Any], peak: float) -> str:
    best = min(case["seconds"])
    median = statistics.median(case["seconds"])
    timing = f"| {case['name']} | {median:.4f} | {best:.4f} | {case.get('setup_s', 0):.2f} "
    flops = case["flops"]
    if flops is None:
        return timing + f"| {UNKNOWN} | {UNKNOWN} | {UNKNOWN} | {case['load']:.2f} |"
    rate = flops / best / 1e9
    pct = f"{100 * rate / peak:.0f}" if flops else UNKNOWN  # no matmuls (backprop): no fraction
    return timing + f"| {flops / 1e9:.3f} | {rate:.1f} | {pct} | {case['load']:.2f} |"


def summary_markdown(result: dict[str, Any]) -> str:
    """Environment, the matmul peak, one row per case, then memory and seed scaling if measured."""
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
    lines += [_case_row(c, peak) for c in result["cases"]]
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


def cost_growth_markdown(rows: list[dict[str, Any]]) -> str:
    """The cost-growth table, one row per (batch, hidden) point."""
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
