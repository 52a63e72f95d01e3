"""Meta-training defaults a RunConfig leaves as None: the task's own (its `meta_defaults`), else generic.

Why from the task: a task plugin knows what its family needs (MNIST: one task per meta-step and
five calibration passes), and keying defaults on the metric would give every classification
plugin MNIST's settings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from lbpbench.harness.config import RunConfig


@dataclass(frozen=True)
class MetaDefaults:
    meta_batch: int = 4
    meta_lr: float = 1e-4
    init_pool: int = 128
    calibration_passes: int = 1
    calibration_blend: float = 1.0


KEYS = tuple(f.name for f in fields(MetaDefaults))


def task_defaults(family: Any) -> MetaDefaults:
    """The family's `meta_defaults` mapping over the generic ones; unknown keys are an error."""
    declared = getattr(family, "meta_defaults", None) or {}
    if not isinstance(declared, Mapping):
        raise TypeError(f"task {getattr(family, 'name', family)!r}: meta_defaults must be a mapping")
    unknown = sorted(set(declared) - set(KEYS))
    if unknown:
        raise ValueError(
            f"task {getattr(family, 'name', family)!r}: unknown meta_defaults key(s) {', '.join(unknown)}; "
            f"known: {', '.join(KEYS)}"
        )
    return replace(MetaDefaults(), **declared)


def meta_batch(config: RunConfig, family: Any) -> int:
    return config.meta_batch or task_defaults(family).meta_batch


def meta_lr(config: RunConfig, family: Any) -> float:
    return config.meta_lr or task_defaults(family).meta_lr


def init_pool(config: RunConfig, family: Any) -> int:
    return config.init_pool or task_defaults(family).init_pool


def calibration(family: Any) -> tuple[int, float]:
    """(passes, blend) of the frozen-statistics calibration (MPLP.md §4)."""
    d = task_defaults(family)
    return d.calibration_passes, d.calibration_blend
