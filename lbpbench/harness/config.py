"""RunConfig: the one fully resolved description of a meta-training or baseline run.

Every field is a possible sweep axis; the sweep room validates TOML against these fields and their
types, and a run's identity is a hash of `to_dict()`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from lbpbench.protocol.sharing import SHARINGS

# RunConfig field -> registry kind of the component(s) it names (a list field names several).
COMPONENT_FIELDS = {
    "task": "task",
    "learner": "learner",
    "aggregator": "aggregator",
    "baseline": "baseline",
    "activation": "node_type",
    "transfer_tasks": "task",
}
META_LOSSES = ("mixed", "heldout")
LR_SCHEDULES = ("constant", "cosine", "step")
GRAD_NORMS = ("unit", "clip", "none")
DEVICES = ("cpu", "cuda", "auto")


@dataclass
class RunConfig:
    """A single run. Defaults reproduce the paper's sinusoid 5x10 stateful k=8 setting."""

    task: str = "sinusoid-5x10"
    learner: str = "stateful"
    aggregator: str = "mean"
    message_size: int = 8
    hidden_size: int = 15
    sharing: str = "layer"
    activation: str | None = None  # None: the task's; else a registered activation node type
    mlp_widths: list[int] = field(default_factory=lambda: [80, 40])
    untrained_message_mlp: bool = False
    baseline: str | None = None
    seed: int = 0
    meta_steps: int = 200
    meta_batch: int | None = None  # None: the task's default (4 sinusoid, 1 MNIST)
    meta_lr: float | None = None  # None: the task's default (1e-4 sinusoid, 5e-4 MNIST)
    meta_loss: str = "mixed"
    lr_schedule: str = "constant"  # constant | cosine (to 1 % at meta_steps) | step (x0.1 at 1/2, 3/4)
    warmup_steps: int = 0  # linear warm-up of the meta learning rate from 0 over these meta-steps
    grad_norm: str | None = None  # unit (per tensor, paper) | clip (global norm) | none; None: the method's
    clip_norm: float = 1.0  # the global gradient norm `grad_norm = "clip"` clips to
    init_from: str | None = None  # a trained run folder (learner.pt) whose learner weights start this run
    hint_weight: float = 0.7
    truncation: int = 0  # 0: full unroll; n > 0: backpropagate through the last n inner steps only
    checkpointing: bool = False
    learned_prior: bool = False
    init_pool: int | None = None  # None: the task's default (128 sinusoid, 16 MNIST)
    eval_tasks: int = 100
    eval_every: int = 0  # meta-steps between evaluations during training; 0: only at the end
    eval_steps: int | None = None  # None: the task's inner steps
    transfer_tasks: list[str] = field(default_factory=list)  # also evaluate the trained learner on these
    baseline_lrs: list[float] | None = None  # None: the baseline's own learning-rate grid
    divergence_threshold: float = 1e3
    device: str = "cpu"
    data_dir: str | None = None

    def __post_init__(self) -> None:
        problems = validate_fields(self.to_dict())
        if problems:
            raise ValueError("; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        data = {k: v for k, v in data.items() if k not in RETIRED_FIELDS}
        unknown = sorted(set(data) - set(field_types()))
        if unknown:
            raise ValueError(
                f"unknown run setting(s): {', '.join(unknown)}; known: {', '.join(field_types())}"
            )
        return cls(**data)

    @property
    def method(self) -> str:
        """The label reports group by: a baseline's name, or learner/aggregator."""
        return self.baseline if self.baseline else f"{self.learner}/{self.aggregator}"


# Fields older files may hold that no longer exist: they never changed a result (maml_inner_lr was
# hashed into run ids but never read), so reading such a file drops them.
RETIRED_FIELDS = frozenset({"maml_inner_lr"})

# Settings a resumed run may change: how long it trains and how it is evaluated or executed.
# Every other setting is part of what a checkpoint was trained with (checked on resume).
RESUMABLE_CHANGES = frozenset(
    {"meta_steps", "eval_tasks", "eval_every", "eval_steps", "transfer_tasks", "device", "data_dir",
     "baseline_lrs"}
)


def training_differences(saved: dict[str, Any], config: RunConfig) -> list[str]:
    """`key: saved -> now` for every setting that changed the training since `saved` was written."""
    now = config.to_dict()
    return [
        f"{k}: {saved.get(k)!r} -> {now.get(k)!r}"
        for k in sorted((set(saved) | set(now)) - RETIRED_FIELDS)
        if k not in RESUMABLE_CHANGES and saved.get(k) != now.get(k)
    ]


def unknown_components(data: dict[str, Any], names: Any) -> list[str]:
    """`unknown <kind> 'x'; registered: ...` for every component name `names(kind)` does not list."""
    problems = []
    for key, kind in COMPONENT_FIELDS.items():
        value = data.get(key)
        known = names(kind) if value not in (None, []) else None
        if known is None:
            continue
        for v in value if isinstance(value, list) else [value]:
            if v not in known:
                problems.append(f"{key}: unknown {kind} {v!r}; registered: {', '.join(known) or '(none)'}")
    return problems


def field_types() -> dict[str, str]:
    """Field name -> its annotation as text, for validators that must explain a type error."""
    return {f.name: str(f.type) for f in dataclasses.fields(RunConfig)}


def _check_type(name: str, value: Any, annotation: str) -> str | None:
    optional = "None" in annotation
    if value is None:
        return None if optional else f"{name} must not be empty"
    base = annotation.replace(" | None", "")
    if base == "int" and not (isinstance(value, int) and not isinstance(value, bool)):
        return f"{name} must be an integer, got {value!r}"
    if base == "float" and not (isinstance(value, int | float) and not isinstance(value, bool)):
        return f"{name} must be a number, got {value!r}"
    if base == "bool" and not isinstance(value, bool):
        return f"{name} must be true or false, got {value!r}"
    if base == "str" and not isinstance(value, str):
        return f"{name} must be a string, got {value!r}"
    if base.startswith("list["):
        if not isinstance(value, list | tuple):
            return f"{name} must be a list, got {value!r}"
        item = base[len("list[") : -1]
        for v in value:
            problem = _check_type(f"every item of {name}", v, item)
            if problem is not None:
                return problem
    return None


def validate_fields(data: dict[str, Any]) -> list[str]:
    """Type and range checks that need no registry; component names are checked by the harness."""
    types = field_types()
    problems = [p for k, v in data.items() if k in types for p in [_check_type(k, v, types[k])] if p]
    if problems:
        return problems
    for name in ("message_size", "hidden_size", "meta_steps", "eval_tasks"):
        if name in data and data[name] < 1:
            problems.append(f"{name} must be >= 1, got {data[name]}")
    for name in ("meta_batch", "init_pool", "eval_steps"):
        if data.get(name) is not None and data[name] < 1:
            problems.append(f"{name} must be >= 1, got {data[name]}")
    if data.get("sharing", "layer") not in SHARINGS:
        problems.append(f"sharing must be one of {', '.join(SHARINGS)}; got {data['sharing']!r}")
    if data.get("meta_loss", "mixed") not in META_LOSSES:
        problems.append(f"meta_loss must be one of {', '.join(META_LOSSES)}; got {data['meta_loss']!r}")
    if data.get("lr_schedule", "constant") not in LR_SCHEDULES:
        problems.append(f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}; got {data['lr_schedule']!r}")
    if data.get("grad_norm") is not None and data["grad_norm"] not in GRAD_NORMS:
        problems.append(f"grad_norm must be one of {', '.join(GRAD_NORMS)}; got {data['grad_norm']!r}")
    if data.get("warmup_steps", 0) < 0:
        problems.append(f"warmup_steps must be >= 0, got {data['warmup_steps']}")
    clip = data.get("clip_norm", 1.0)
    if not (isinstance(clip, int | float) and 0 < clip < float("inf")):
        problems.append(f"clip_norm must be a finite number > 0, got {clip!r}")
    if data.get("device", "cpu") not in DEVICES:
        problems.append(f"device must be one of {', '.join(DEVICES)}; got {data['device']!r}")
    if data.get("truncation", 0) < 0:
        problems.append(f"truncation must be >= 0, got {data['truncation']}")
    return problems
