"""Meta-training defaults a RunConfig leaves as None: the task's own (its `meta_defaults`, keys and
validation in `lbpbench.contracts`), else generic ones.

Why from the task: a task plugin knows what its family needs (MNIST: one task per meta-step and
five calibration passes), and keying defaults on the metric would give every classification
plugin MNIST's settings.
"""

from __future__ import annotations

from typing import Any

from lbpbench.contracts import MetaDefaults, meta_defaults
from lbpbench.harness.config import RunConfig

GENERIC: MetaDefaults = {
    "meta_batch": 4,
    "meta_lr": 1e-4,
    "init_pool": 128,
    "calibration_passes": 1,
    "calibration_blend": 1.0,
}


def task_defaults(family: Any) -> MetaDefaults:
    """The family's declared defaults over the generic ones (ValueError naming a bad key or value)."""
    try:
        declared = meta_defaults(family)
    except ValueError as exc:
        raise ValueError(f"task {getattr(family, 'name', family)!r}: {exc}") from None
    return {**GENERIC, **declared}  # type: ignore[typeddict-item]


def meta_batch(config: RunConfig, family: Any) -> int:
    return config.meta_batch or task_defaults(family)["meta_batch"]


def meta_lr(config: RunConfig, family: Any) -> float:
    return config.meta_lr or task_defaults(family)["meta_lr"]


def init_pool(config: RunConfig, family: Any) -> int:
    return config.init_pool or task_defaults(family)["init_pool"]


def calibration(family: Any) -> tuple[int, float]:
    """(passes, blend) of the frozen-statistics calibration (MPLP.md §4)."""
    d = task_defaults(family)
    return d["calibration_passes"], d["calibration_blend"]
