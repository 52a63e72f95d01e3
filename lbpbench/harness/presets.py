"""Named meta-training recipes (outer-loop settings): `paper` and `fast`.

Why presets and not RunConfig fields: a preset only fills in settings, so a run's config.json and
identity hold the settings it actually trained with (a `paper` run is the same run, with the same
id and bit-identical results, as one given no preset), and anything given explicitly wins over the
preset. `lbpbench train --preset NAME` and a sweep's `preset = "NAME"` ([fixed] or an axis) go
through `apply_preset`.

`fast` was found with the suite (results/search/README.md, rounds 1-2): ten times the paper's
learning rate, warm-up then cosine decay, and four times the task's meta-batch (a less noisy
meta-gradient was the lever); unit-norm gradients as in the paper (clipping lost in round 1).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

PRESET_KEY = "preset"


@dataclass(frozen=True)
class Preset:
    """RunConfig settings, plus two that scale with the run: warm-up and meta-batch."""

    why: str
    settings: dict[str, Any] = field(default_factory=dict)
    warmup_fraction: float = 0.0  # warm-up steps = round(fraction · meta_steps)
    meta_batch_scale: int = 0  # > 0: meta_batch = scale · the task's default meta-batch


PRESETS: dict[str, Preset] = {
    "paper": Preset(
        why="MPLP.md §5: Adam at the task's rate, constant, per-tensor unit-norm gradients, the "
        "task's meta-batch (the RunConfig defaults)",
        settings={"meta_lr": None, "meta_batch": None, "lr_schedule": "constant", "warmup_steps": 0,
                  "grad_norm": None},
    ),
    "fast": Preset(
        why="Adam 1e-3 on unit-norm gradients, linear warm-up over 5 % of the meta-steps then cosine "
        "decay, 4x the task's meta-batch (results/search/README.md)",
        settings={"meta_lr": 1e-3, "lr_schedule": "cosine", "grad_norm": "unit"},
        warmup_fraction=0.05,
        meta_batch_scale=4,
    ),
}


def preset_names() -> list[str]:
    return list(PRESETS)


def _task_meta_batch(task: str) -> int:
    from lbpbench.harness.defaults import task_defaults
    from lbpbench.registry import get_registry

    return task_defaults(get_registry().create("task", task))["meta_batch"]


def preset_settings(name: str, point: Mapping[str, Any]) -> dict[str, Any]:
    """The settings preset `name` gives a run whose explicit settings are `point`.

    Raises ValueError naming the known presets for an unknown name."""
    from lbpbench.harness.config import RunConfig

    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
    preset = PRESETS[name]
    defaults = RunConfig().to_dict()
    out = dict(preset.settings)
    if preset.warmup_fraction:
        meta_steps = point.get("meta_steps", defaults["meta_steps"])
        out["warmup_steps"] = round(preset.warmup_fraction * meta_steps)
    if preset.meta_batch_scale:
        out["meta_batch"] = preset.meta_batch_scale * _task_meta_batch(point.get("task", defaults["task"]))
    return out


def apply_preset(point: Mapping[str, Any]) -> dict[str, Any]:
    """`point` with its `preset` key (if any) replaced by the preset's settings; `point` wins."""
    rest = {k: v for k, v in point.items() if k != PRESET_KEY}
    if point.get(PRESET_KEY) is None:
        return rest
    return {**preset_settings(point[PRESET_KEY], rest), **rest}
