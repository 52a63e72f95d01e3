"""Per-task defaults from MPLP.md §5 that a RunConfig leaves as None."""

from __future__ import annotations

from lbpbench.harness.config import RunConfig


def is_classification(metric: str) -> bool:
    return metric == "eval_accuracy"


def meta_batch(config: RunConfig, metric: str) -> int:
    return config.meta_batch or (1 if is_classification(metric) else 4)


def meta_lr(config: RunConfig, metric: str) -> float:
    return config.meta_lr or (5e-4 if is_classification(metric) else 1e-4)


def init_pool(config: RunConfig, metric: str) -> int:
    return config.init_pool or (16 if is_classification(metric) else 128)


def calibration(metric: str) -> tuple[int, float]:
    """(passes, blend): one pass with p = 1 for sinusoids, five 20-step passes with p = 0.5 for MNIST."""
    return (5, 0.5) if is_classification(metric) else (1, 1.0)
