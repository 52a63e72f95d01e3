"""RunConfig: the one fully resolved description of a meta-training or baseline run.

Every field is a possible sweep axis; the sweep room validates TOML against these fields and their
types, and a run's identity is a hash of `to_dict()`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from lbpbench.protocol.loss_rules import LOSS_RULES
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
CALIBRATIONS = ("frozen", "no-standardisation")
GRAD_NORMS = ("unit", "clip", "none")
DEVICES = ("cpu", "cuda", "auto")
# Settings that take one of a few names (grad_norm may also be unset: the method's default).
CHOICES = {"sharing": SHARINGS, "meta_loss": META_LOSSES, "device": DEVICES, "lr_schedule": LR_SCHEDULES,
           "calibration": CALIBRATIONS, "loss_rule": LOSS_RULES, "grad_norm": GRAD_NORMS}


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
    learner_seed: int | None = None  # None: `seed`; else the learned protocol's initial weights come from it
    learner_init_gain: float = 1.0  # the learners' initial weight matrices are drawn, then scaled by this
    meta_steps: int = 200
    meta_batch: int | None = None  # None: the task's default (4 sinusoid, 1 MNIST)
    meta_lr: float | None = None  # None: the task's default (1e-4 sinusoid, 5e-4 MNIST)
    meta_loss: str = "mixed"
    lr_schedule: str = "constant"  # constant | cosine (to 1 % at meta_steps) | step (x0.1 at 1/2, 3/4)
    warmup_steps: int = 0  # linear warm-up of the meta learning rate from 0 over these meta-steps
    grad_norm: str | None = None  # unit (per tensor, paper) | clip (global norm) | none; None: the method's
    clip_norm: float = 1.0  # the global gradient norm `grad_norm = "clip"` clips to
    init_from: str | None = None  # a trained run folder (learner.pt) whose learner weights start this run
    calibration: str = "frozen"  # frozen (MPLP.md §4) | no-standardisation (learner inputs left raw)
    loss_rule: str = "learned"  # learned (MPLP) | gradient (the loss node sends its exact derivative)
    hint_weight: float = 0.7
    truncation: int = 0  # 0: full unroll; n > 0: backpropagate through the last n inner steps only
    checkpointing: bool = False
    learned_prior: bool = False
    init_pool: int | None = None  # None: the task's default (128 sinusoid, 16 MNIST)
    eval_tasks: int = 100
    eval_every: int = 0  # meta-steps between evaluations during training; 0: only at the end
    abandon_plateau_at: int = 0  # 0: never; N: stop a member still on the task-average plateau at N
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
# hashed into run ids but never read; compile became an execution option, results matching eager),
# so reading such a file drops them.
RETIRED_FIELDS = frozenset({"maml_inner_lr", "compile"})

# Settings a resumed run may change: how long it trains and how it is evaluated or executed.
# Every other setting is part of what a checkpoint was trained with (checked on resume).
RESUMABLE_CHANGES = frozenset(
    {"meta_steps", "eval_tasks", "eval_every", "eval_steps", "transfer_tasks", "device", "data_dir",
     "baseline_lrs"}
)


def training_differences(saved: dict[str, Any], config: RunConfig) -> list[str]:
    """`key: saved -> now` for every setting that changed the training since `saved` was written.

    A setting `saved` lacks was added to RunConfig later: it held its default then."""
    now = config.to_dict()
    then = {**RunConfig().to_dict(), **saved}
    return [
        f"{k}: {then.get(k)!r} -> {now.get(k)!r}"
        for k in sorted((set(then) | set(now)) - RETIRED_FIELDS)
        if k not in RESUMABLE_CHANGES and then.get(k) != now.get(k)
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


# Bounds of validate_fields: no setting may ask for more than a machine could ever hold.
INT_LIMIT = 10**9  # every integer setting (counts, sizes, steps) except the seed
SEED_LIMIT = 2**63 - 1  # seeds are stored as int64 (runs.parquet) and fed to torch.Generator
SEED_FIELDS = ("seed", "learner_seed")  # bounded by SEED_LIMIT instead of INT_LIMIT
MEMORY_LIMIT_GIB = 64  # a configuration whose largest tensor would exceed this is refused up front


def validate_fields(data: dict[str, Any]) -> list[str]:
    """Type and range checks that need no registry; component names are checked by the harness.

    Works on any subset of the fields (a sweep checks one value at a time). Every problem names the
    setting, the value and what is allowed. Numbers must be finite and of a size a run can hold:
    integers at most INT_LIMIT (the seed: 0..SEED_LIMIT), and settings whose product sizes one
    tensor (tasks × per-edge width) are refused when it alone would exceed MEMORY_LIMIT_GIB (the
    task-aware estimate, with fan-in and fan-out, runs where the task family is known).
    """
    import math

    types = field_types()
    problems = [p for k, v in data.items() if k in types for p in [_check_type(k, v, types[k])] if p]
    if problems:
        return problems

    def shown(value: Any) -> str:
        if isinstance(value, int) and abs(value) >= 10**24:  # 10**4300 would not even print
            return f"{float(value):.3g}" if value.bit_length() < 1000 else \
                f"a {int(value.bit_length() * 0.30103) + 1}-digit number"
        return repr(value)

    def items(name: str) -> list[Any]:
        value = data[name]
        return [] if value is None else list(value) if isinstance(value, list | tuple) else [value]

    for name in data:
        if name not in types:
            continue
        base = types[name].replace(" | None", "")
        base = base[len("list[") : -1] if base.startswith("list[") else base
        for v in items(name):
            what = f"every item of {name}" if isinstance(data[name], list | tuple) else name
            if base == "float" and not math.isfinite(v):
                problems.append(f"{what} must be a finite number, got {shown(v)}")
            elif base == "int" and name not in SEED_FIELDS and abs(v) > INT_LIMIT:
                problems.append(f"{what} must be at most {INT_LIMIT:.0e}, got {shown(v)}")
    if problems:
        return problems

    def at_least(name: str, low: int, optional: bool = False) -> None:
        if name in data and not (optional and data[name] is None) and data[name] < low:
            problems.append(f"{name} must be >= {low}, got {shown(data[name])}")

    for name in ("message_size", "hidden_size", "meta_steps", "eval_tasks"):
        at_least(name, 1)
    for name in ("meta_batch", "init_pool", "eval_steps"):
        at_least(name, 1, optional=True)
    for name in ("eval_every", "truncation", "abandon_plateau_at"):
        at_least(name, 0)
    if data.get("abandon_plateau_at") and data.get("eval_every") == 0:
        problems.append(f"abandon_plateau_at = {data['abandon_plateau_at']} needs evaluations during "
                        "meta-training: set eval_every > 0")
    for name in SEED_FIELDS:
        if data.get(name) is not None and not 0 <= data[name] <= SEED_LIMIT:
            problems.append(f"{name} must be in [0, 2**63 - 1], got {shown(data[name])}")
    if data.get("meta_lr") is not None and not data["meta_lr"] > 0:
        problems.append(f"meta_lr must be > 0 (or unset: the task's), got {data['meta_lr']!r}")
    if "hint_weight" in data and not 0 <= data["hint_weight"] <= 1:
        problems.append(f"hint_weight must be in [0, 1], got {data['hint_weight']!r}")
    if "divergence_threshold" in data and not data["divergence_threshold"] > 0:
        problems.append(f"divergence_threshold must be > 0, got {data['divergence_threshold']!r}")
    if "mlp_widths" in data:
        widths = data["mlp_widths"]
        if not widths or any(w < 1 for w in widths):
            problems.append(f"mlp_widths must be a non-empty list of widths >= 1, got {list(widths)!r}")
    if data.get("baseline_lrs") is not None:
        lrs = data["baseline_lrs"]
        if not lrs or any(not lr > 0 for lr in lrs):
            problems.append(f"baseline_lrs must be a non-empty list of learning rates > 0 (or unset), "
                            f"got {list(lrs)!r}")
    for name, allowed in CHOICES.items():
        if data.get(name) is not None and data[name] not in allowed:
            problems.append(f"{name} must be one of {', '.join(allowed)}; got {data[name]!r}")
    at_least("warmup_steps", 0)
    if "learner_init_gain" in data and not data["learner_init_gain"] > 0:
        problems.append(f"learner_init_gain must be > 0, got {data['learner_init_gain']!r}")
    if data.get("init_from") and data.get("learner_init_gain", 1.0) != 1.0:
        problems.append("learner_init_gain scales a drawn learner; with init_from the learner is loaded: "
                        "leave learner_init_gain at 1")
    if "clip_norm" in data and not data["clip_norm"] > 0:
        problems.append(f"clip_norm must be > 0, got {data['clip_norm']!r}")
    if problems:
        return problems
    # Whatever the task, one meta-step holds a [meta_batch, batch, fan_in, fan_out, width] tensor per
    # layer (batch, fan-in and fan-out >= 1): refuse what cannot fit before anything runs.
    widths = [data.get(k) for k in ("message_size", "hidden_size")] + list(data.get("mlp_widths") or [])
    width = max((w for w in widths if w is not None), default=1)
    tasks = data.get("meta_batch") or 1
    need = 4 * tasks * width
    if need > MEMORY_LIMIT_GIB * 2**30:
        named = ", ".join(f"{k}={shown(data[k])}" for k in ("meta_batch", "message_size", "hidden_size",
                                                             "mlp_widths") if data.get(k) is not None)
        problems.append(f"{named}: one meta-step would hold a tensor of at least {need / 2**30:.3g} GiB "
                        f"(meta_batch × per-edge width × 4 bytes), more than the {MEMORY_LIMIT_GIB} GiB "
                        "limit")
    return problems
