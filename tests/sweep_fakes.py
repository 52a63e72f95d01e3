"""Fake runners for the sweep tests: deterministic curves, no torch, importable by worker processes.

Used in-process, by spawn workers, by Ray workers, and by `python -m lbpbench sweep run` through the
hidden LBPBENCH_SWEEP_RUNNER="sweep_fakes:fake_runner" (with tests/ on PYTHONPATH).

Behaviour is driven by environment variables so that every process sees the same instructions:
- LBPBENCH_FAKE_FAIL="1,3": seeds that fail (raise); LBPBENCH_FAKE_FAIL_MODE=return returns
  status "failed" instead of raising;
- LBPBENCH_FAKE_DIVERGE="2": seeds that diverge;
- LBPBENCH_FAKE_SLEEP=0.5: seconds each run sleeps (between its start and end markers);
- LBPBENCH_FAKE_MARKER=/path: each run appends "start <run_id> <pid>" and "end <run_id> <pid>";
- LBPBENCH_FAKE_INTERRUPT="2": seeds whose run is interrupted (KeyboardInterrupt, as Ctrl-C).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


@dataclass
class FakeResult:
    status: str
    curves: pd.DataFrame
    final: dict[str, float]
    wall_time_s: float
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _seeds(var: str) -> set[int]:
    raw = os.environ.get(var, "").strip()
    return {int(s) for s in raw.split(",") if s.strip()} if raw else set()


def _mark(event: str, out_dir: Path) -> None:
    marker = os.environ.get("LBPBENCH_FAKE_MARKER")
    if marker:
        fd = os.open(marker, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{event} {out_dir.name} {os.getpid()}\n".encode())
        finally:
            os.close(fd)


def fake_curves(config: Any) -> tuple[pd.DataFrame, dict[str, float]]:
    """Curves that depend only on the config (its seed and its other fields)."""
    digest = hashlib.sha256(json.dumps(config.to_dict(), sort_keys=True).encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
    steps = 5
    meta = np.exp(-np.arange(steps) / 3.0) + 0.01 * rng.random(steps)
    evals = np.exp(-np.arange(steps + 1) / 2.0) * (1.0 + 0.1 * rng.random())
    rows = [("meta_train", i, "meta_loss", float(v)) for i, v in enumerate(meta)]
    rows += [("eval", i, "eval_loss", float(v)) for i, v in enumerate(evals)]
    rows += [("eval", i, "train_loss", float(v) * 0.9) for i, v in enumerate(evals)]
    df = pd.DataFrame(rows, columns=["phase", "step", "metric", "value"])
    return df, {"eval_loss": float(evals[-1])}


def fake_runner(config: Any, out_dir: Path) -> FakeResult:
    """The standard fake: honours the LBPBENCH_FAKE_* variables described above."""
    t0 = time.perf_counter()
    _mark("start", out_dir)
    sleep = float(os.environ.get("LBPBENCH_FAKE_SLEEP", "0") or 0)
    if sleep:
        time.sleep(sleep)
    (out_dir / "learner.pt").write_bytes(b"fake weights")  # the harness may write extra files
    if config.seed in _seeds("LBPBENCH_FAKE_INTERRUPT"):
        raise KeyboardInterrupt
    if config.seed in _seeds("LBPBENCH_FAKE_FAIL"):
        _mark("end", out_dir)
        if os.environ.get("LBPBENCH_FAKE_FAIL_MODE") == "return":
            return FakeResult("failed", pd.DataFrame(columns=["phase", "step", "metric", "value"]), {},
                              time.perf_counter() - t0, "fake failure (returned)")
        raise RuntimeError(f"fake failure for seed {config.seed}")
    curves, final = fake_curves(config)
    status = "ok"
    if config.seed in _seeds("LBPBENCH_FAKE_DIVERGE"):
        status, final = "diverged", {"eval_loss": float("inf")}
    _mark("end", out_dir)
    return FakeResult(status, curves, final, time.perf_counter() - t0)


class SeedBatchRunner:
    """A runner declaring seed batching; it runs the seeds one by one (it only tests the plumbing)."""

    supports_seed_batch = True

    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    def __call__(self, config: Any, out_dir: Path) -> FakeResult:
        return fake_runner(config, out_dir)

    def run_seed_batch(self, configs: list[Any], out_dirs: list[Path]) -> list[FakeResult]:
        self.batches.append([c.seed for c in configs])
        return [fake_runner(c, d) for c, d in zip(configs, out_dirs, strict=True)]


def marker_lines(path: Path) -> list[tuple[str, str, int]]:
    """(event, run_id, pid) per line of a marker file."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        event, run_id, pid = line.split()
        out.append((event, run_id, int(pid)))
    return out


FAKE_NAMES = {
    "task": ["sinusoid-2x10", "sinusoid-5x10"],
    "learner": ["backprop", "stateful", "stateless"],
    "aggregator": ["mean", "rnn", "sum"],
    "baseline": ["adam", "maml", "sgd"],
    "node_type": [],
}


def fake_names(kind: str) -> list[str]:
    """Stands in for the registry's names() so spec tests do not depend on which rooms have landed."""
    return FAKE_NAMES[kind]
