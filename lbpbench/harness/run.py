"""run_config / run_seed_batch: runs, learned protocol or baseline, from config to results — never raising.

Every meta-trained run (a learned protocol, or MAML) is a member of a `Population` driven by the
one loop in `harness/driver.py`; a single run is a population of one. The harness writes no run
file itself: it returns a `RunResult` and persists checkpoints and the trained learner through the
store's `RunFiles` (`lbpbench.sweep.store`), the one writer of a run folder. A failure becomes status
"failed" with the traceback; divergence becomes "diverged" with its cause and the last finite learner
evaluated.
"""

from __future__ import annotations

import math
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from lbpbench.harness.baselines import GradientStepper
from lbpbench.harness.config import RunConfig
from lbpbench.harness.driver import CheckpointFiles, drive, resume
from lbpbench.harness.evaluate import EVAL_SEED, Evaluation, LearnedStepper, evaluate
from lbpbench.harness.members import (
    Member,
    ProtocolMember,
    learner_network,
    make_family,
    make_member,
    network_spec,
    resolve_device,
    resolve_registry,
)
from lbpbench.harness.population import Population, batchable
from lbpbench.tasks.optimizee import build_optimizee

CURVE_COLUMNS = ["phase", "step", "metric", "value"]


@dataclass
class RunResult:
    status: str  # ok | diverged | failed
    curves: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=CURVE_COLUMNS))
    final: dict[str, float] = field(default_factory=dict)
    wall_time_s: float = 0.0  # the whole run's, earlier sessions of a resumed run included
    error: str | None = None  # failed: the traceback; diverged: the cause
    metric: str = ""
    device: str = "cpu"
    earlier_wall_s: float = 0.0  # wall time of the sessions before this one (a resumed run)


def _final(evaluation: Evaluation, horizon: int) -> dict[str, float]:
    steps = next(iter(evaluation.per_task.values())).shape[1] - 1
    at = min(horizon, steps)
    return {k: evaluation.mean(k, at) for k in evaluation.per_task if k != "train_loss" or at > 0}


def _meta_curves(history: list[list[float]]) -> pd.DataFrame:
    rows = [
        {"phase": "meta_train", "step": int(r[0]), "metric": name, "value": r[i]}
        for r in history
        for i, name in enumerate(("meta_loss", "hint_loss", "heldout_loss"), start=1)
    ]
    return pd.DataFrame(rows, columns=CURVE_COLUMNS)


def run_files(out: Path | str | CheckpointFiles | None) -> CheckpointFiles | None:
    """A run folder as the store's writer (the harness never writes a run file itself)."""
    if out is None or hasattr(out, "write_checkpoint"):
        return out  # type: ignore[return-value]
    from lbpbench.sweep.store import RunFiles

    return RunFiles(Path(out))


def run_config(
    config: RunConfig,
    out_dir: Path | str | CheckpointFiles | None = None,
    *,
    progress: bool = True,
    registry: Any = None,
    compile: bool | str = False,
) -> RunResult:
    """Run one configuration to completion. Never raises for a failed or diverged run.

    compile: torch.compile the inner step (an execution option, not part of the run's identity)."""
    started = time.monotonic()
    try:
        registry = resolve_registry(registry)
        files = run_files(out_dir)
        if not meta_trained(config, registry):
            result = run_tuned_baseline(config, registry)
        else:
            (result,) = run_population(
                [config], [files], progress=progress, registry=registry, compile=compile
            )
    except Exception:  # noqa: BLE001 - a sweep records failures instead of stopping
        result = RunResult("failed", error=traceback.format_exc(), device=config.device)
    result.wall_time_s = result.earlier_wall_s + (time.monotonic() - started)
    return result


def run_seed_batch(
    configs: Sequence[RunConfig],
    out_dirs: Sequence[Path | str | CheckpointFiles | None],
    *,
    progress: bool = False,
    registry: Any = None,
) -> list[RunResult]:
    """Runs that differ only in seed, meta-trained as one vectorised population.

    Same results per run as `run_config` up to float rounding (tests/test_seed_batch.py); each
    member checkpoints to its own folder, so either entry resumes the other's runs. Configs that
    cannot be batched, or members resumed at different steps, run one by one. Each result's wall
    time is the batch's, divided evenly. Never raises: a failure marks every run of the batch failed.
    """
    if len(configs) != len(out_dirs):
        raise ValueError(f"{len(configs)} configs but {len(out_dirs)} output folders")
    registry = resolve_registry(registry)

    def one_by_one() -> list[RunResult]:
        pairs = zip(configs, out_dirs, strict=True)
        return [run_config(c, o, progress=progress, registry=registry) for c, o in pairs]

    if batchable(configs) is not None:
        return one_by_one()
    started = time.monotonic()
    try:
        files = [run_files(o) for o in out_dirs]
        members = [make_member(c, registry) for c in configs]
        resume(members, files)
        for member in members:
            member.wall_share = 1 / len(configs)  # as the results' share below
        if len({m.step for m in members if m.still_training}) > 1:
            return one_by_one()
        results = _train_and_finish(members, files, progress, registry)
    except Exception:  # noqa: BLE001 - a sweep records failures instead of stopping
        error = traceback.format_exc()
        results = [RunResult("failed", error=error, device=c.device) for c in configs]
    share = (time.monotonic() - started) / len(configs)
    for result in results:
        result.wall_time_s = result.earlier_wall_s + share
    return results


def run_population(
    configs: Sequence[RunConfig],
    files: Sequence[CheckpointFiles | None],
    *,
    progress: bool = False,
    registry: Any = None,
    compile: bool | str = False,
) -> list[RunResult]:
    """Meta-train configs (one, or seeds of one configuration) as one population; raises on error."""
    registry = resolve_registry(registry)
    members = [make_member(c, registry, compile) for c in configs]
    resume(members, files)
    return _train_and_finish(members, files, progress, registry)


def _train_and_finish(
    members: list[Member], files: Sequence[CheckpointFiles | None], progress: bool, registry: Any
) -> list[RunResult]:
    config = members[0].config
    desc = config.method if len(members) == 1 else f"{config.method} x{len(members)} seeds"
    training = [i for i, m in enumerate(members) if m.still_training] or list(range(len(members)))
    population = Population([members[i] for i in training])  # resumed abandoned members stay out
    drive(population, [files[i] for i in training], evaluate=_evaluate_during_training,
          progress=progress, desc=desc)
    return [_finish(m, f, registry) for m, f in zip(members, files, strict=True)]


def meta_trained(config: RunConfig, registry: Any) -> bool:
    """A learned protocol, or a baseline that meta-learns its initial point (MAML): the runs that
    meta-train, so the ones meta-training settings such as `abandon_plateau_at` apply to."""
    if not config.baseline:
        return True
    return bool(getattr(registry.create("baseline", config.baseline), "meta_learns_init", False))


def _evaluate_during_training(member: Member) -> dict[str, float]:
    """The trained rule on the fixed evaluation tasks (`eval_tasks` of them, the final evaluation's)."""
    ev = evaluate(
        member.optimizee,
        member.family,
        member.stepper(),
        n_tasks=member.config.eval_tasks,
        initial_params=member.initial_params(),
        device=member.device,
    )
    return _final(ev, member.family.inner_steps)


def _finish(member: Member, files: CheckpointFiles | None, registry: Any) -> RunResult:
    """Evaluate a meta-trained member (and its transfers), save its learner, assemble its result."""
    config = member.config
    evaluation = evaluate(
        member.optimizee,
        member.family,
        member.stepper(),
        n_tasks=config.eval_tasks,
        steps=config.eval_steps,
        initial_params=member.initial_params(),
        device=member.device,
    )
    if files is not None and isinstance(member, ProtocolMember):
        prior = member.initial_params() or {}
        files.write_learner({"config": config.to_dict(), "net": member.net.state_dict(), "prior": prior})
    frames = [
        _meta_curves(member.history),
        pd.DataFrame(member.meta_evals, columns=CURVE_COLUMNS),
        evaluation.curves(),
    ]
    final = _final(evaluation, member.family.inner_steps)
    status_final = dict(final)
    if member.abandoned_at is not None:  # stopped on the plateau (harness/plateau.py)
        final["abandoned_at"] = float(member.abandoned_at)
    if isinstance(member, ProtocolMember):
        for task in config.transfer_tasks:
            transferred, horizon = _transfer(member, task, registry)
            frames.append(transferred.curves(phase=f"transfer:{task}"))
            final.update({f"{k}@{task}": v for k, v in _final(transferred, horizon).items()})
    curves = pd.concat([f for f in frames if not f.empty] or frames[:1]).reset_index(drop=True)
    final_ok = all(math.isfinite(v) for v in status_final.values())
    if not final_ok and not member.diverged:
        member.mark_diverged("the trained rule's evaluation is not finite")
    status = "diverged" if member.diverged else "ok"
    return RunResult(status, curves, final, error=member.cause, metric=member.family.metric,
                     device=str(member.device), earlier_wall_s=member.earlier_wall_seconds)


def _transfer(member: ProtocolMember, task: str, registry: Any) -> tuple[Evaluation, int]:
    """The trained learner, unchanged, on another task's network (MPLP.md §6 transfer rows), and
    that task's trained horizon.

    Node types may differ (e.g. step instead of sigmoid): learners keyed by node kind are renamed.
    """
    config = member.config
    family = make_family(config, registry, task)
    spec = network_spec(config, family)
    net = learner_network(config, spec, registry).to(member.device)
    old, new = network_spec(config, member.family).activation, spec.activation
    state = {k.replace(f"{old}_learner", f"{new}_learner"): v for k, v in member.net.state_dict().items()}
    net.load_state_dict(state)
    evaluation = evaluate(net, family, LearnedStepper(net), n_tasks=config.eval_tasks, device=member.device)
    return evaluation, family.inner_steps


def run_tuned_baseline(config: RunConfig, registry: Any) -> RunResult:
    """A backprop optimiser with its learning rate picked on meta-training tasks, then evaluated."""
    family = make_family(config, registry)
    device = resolve_device(config.device)
    net = build_optimizee(network_spec(config, family), registry)
    optimiser = registry.create("baseline", config.baseline)
    torch.manual_seed(config.seed)
    rows: list[dict[str, Any]] = []
    lrs = list(config.baseline_lrs) if config.baseline_lrs is not None else list(optimiser.lrs)
    scores = []
    for i, candidate in enumerate(lrs):
        val = evaluate(
            net,
            family,
            GradientStepper(net, optimiser, candidate),
            n_tasks=min(50, config.eval_tasks),
            seed=EVAL_SEED + 1 + config.seed,
            split="train",
            device=device,
        )
        score = val.mean("eval_loss", family.inner_steps)
        scores.append(score if math.isfinite(score) else math.inf)
        rows += [
            {"phase": "lr_search", "step": i, "metric": "lr", "value": candidate},
            {"phase": "lr_search", "step": i, "metric": "val_loss", "value": score},
        ]
    lr = lrs[min(range(len(lrs)), key=scores.__getitem__)]
    evaluation = evaluate(
        net,
        family,
        GradientStepper(net, optimiser, lr),
        n_tasks=config.eval_tasks,
        steps=config.eval_steps,
        device=device,
    )
    rows.append({"phase": "selected", "step": 0, "metric": "lr", "value": lr})
    curves = pd.concat([pd.DataFrame(rows, columns=CURVE_COLUMNS), evaluation.curves()]).reset_index(
        drop=True
    )
    final = _final(evaluation, family.inner_steps)
    status = "ok" if all(math.isfinite(v) for v in final.values()) else "diverged"
    return RunResult(status, curves, final, metric=family.metric, device=str(device))
