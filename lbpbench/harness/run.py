"""run_config: one run, learned protocol or baseline, from config to curves — never raising.

Output folder (when given): `checkpoint.pt` (meta-training state, for resume), `learner.pt` (the
final learner, for `lbpbench eval`), `curves.parquet`. A failure becomes status "failed" with the
traceback; divergence becomes status "diverged" with the last finite metrics.
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
from tqdm import tqdm

from lbpbench.harness import defaults
from lbpbench.harness.baselines import GradientStepper
from lbpbench.harness.config import RunConfig
from lbpbench.harness.evaluate import EVAL_SEED, Evaluation, LearnedStepper, evaluate
from lbpbench.harness.meta_train import (
    MetaTraining,
    learner_network,
    make_family,
    resolve_device,
    resolve_registry,
)
from lbpbench.harness.seed_batch import SeedBatchTraining, batchable
from lbpbench.protocol.builder import build_network

CHECKPOINT_SECONDS = 30.0
CURVE_COLUMNS = ["phase", "step", "metric", "value"]


@dataclass
class RunResult:
    status: str  # ok | diverged | failed
    curves: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=CURVE_COLUMNS))
    final: dict[str, float] = field(default_factory=dict)
    wall_time_s: float = 0.0
    error: str | None = None
    metric: str = ""
    device: str = "cpu"


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


def run_learned(
    config: RunConfig, out_dir: Path | None, progress: bool, registry: Any, compile: bool = False
) -> RunResult:
    trainer = MetaTraining(config, registry, compile=compile)
    ckpt = out_dir / "checkpoint.pt" if out_dir else None
    if ckpt is not None and ckpt.exists():
        trainer.load(ckpt)
    meta_evals: list[dict[str, Any]] = []
    bar = tqdm(
        total=config.meta_steps, initial=trainer.step, disable=not progress, desc=config.method, leave=False
    )
    last_save, started, start_step = time.monotonic(), time.monotonic(), trainer.step
    while trainer.step < config.meta_steps and not trainer.diverged:
        metrics = trainer.meta_step()
        bar.update(1)
        rate = (trainer.step - start_step) / max(1e-9, time.monotonic() - started)
        bar.set_postfix(meta_loss=f"{metrics['meta_loss']:.4g}", steps_per_s=f"{rate:.2f}")
        if config.eval_every and trainer.step % config.eval_every == 0:
            meta_evals += _meta_eval(trainer, config)
        if ckpt is not None and time.monotonic() - last_save > CHECKPOINT_SECONDS:
            trainer.save(ckpt)
            last_save = time.monotonic()
    bar.close()
    if ckpt is not None:
        trainer.save(ckpt)
    return _finish(trainer, config, out_dir, registry, meta_evals)


def _meta_eval(trainer: MetaTraining, config: RunConfig) -> list[dict[str, Any]]:
    """Rows of a quick evaluation (≤ 20 tasks) during meta-training."""
    ev = evaluate(
        trainer.net,
        trainer.family,
        LearnedStepper(trainer.net),
        n_tasks=min(20, config.eval_tasks),
        initial_params=trainer.prior_params(),
        device=trainer.device,
    )
    return [
        {"phase": "meta_eval", "step": trainer.step, "metric": k, "value": v}
        for k, v in _final(ev, trainer.family.inner_steps).items()
    ]


def _finish(
    trainer: MetaTraining,
    config: RunConfig,
    out_dir: Path | None,
    registry: Any,
    meta_evals: list[dict[str, Any]],
) -> RunResult:
    """Evaluate a meta-trained learner (and its transfers), save it, assemble the run's result."""
    evaluation = evaluate(
        trainer.net,
        trainer.family,
        LearnedStepper(trainer.net),
        n_tasks=config.eval_tasks,
        steps=config.eval_steps,
        initial_params=trainer.prior_params(),
        device=trainer.device,
    )
    if out_dir is not None:
        torch.save(
            {
                "config": config.to_dict(),
                "net": trainer.net.state_dict(),
                "prior": trainer.prior_params() or {},
            },
            out_dir / "learner.pt",
        )
    frames = [
        _meta_curves(trainer.history),
        pd.DataFrame(meta_evals, columns=CURVE_COLUMNS),
        evaluation.curves(),
    ]
    final = _final(evaluation, trainer.family.inner_steps)
    status_final = dict(final)
    for task in config.transfer_tasks:
        transferred, horizon = _transfer(trainer, task, registry, config)
        frames.append(transferred.curves(phase=f"transfer:{task}"))
        final.update({f"{k}@{task}": v for k, v in _final(transferred, horizon).items()})
    curves = pd.concat(frames)
    final_ok = all(math.isfinite(v) for v in status_final.values())
    status = "diverged" if trainer.diverged or not final_ok else "ok"
    return RunResult(
        status, curves.reset_index(drop=True), final, metric=trainer.family.metric, device=str(trainer.device)
    )


def _transfer(
    trainer: MetaTraining, task: str, registry: Any, config: RunConfig
) -> tuple[Evaluation, int]:
    """The trained learner, unchanged, on another task's network (MPLP.md §6 transfer rows), and
    that task's trained horizon.

    Node types may differ (e.g. step instead of sigmoid): learners keyed by node kind are renamed.
    """
    family = make_family(config, registry, task)
    net = learner_network(config, family.network, registry).to(trainer.device)
    old, new = trainer.family.network.activation, family.network.activation
    state = {k.replace(f"{old}_learner", f"{new}_learner"): v for k, v in trainer.net.state_dict().items()}
    net.load_state_dict(state)
    evaluation = evaluate(net, family, LearnedStepper(net), n_tasks=config.eval_tasks, device=trainer.device)
    return evaluation, family.inner_steps


def _optimizee(family: Any, registry: Any) -> Any:
    """A network used only for its forward pass, initialisation and loss (no learners needed)."""
    return build_network(
        family.network, learner="backprop", aggregator="sum", message_size=1, registry=registry
    )


def run_baseline(config: RunConfig, out_dir: Path | None, progress: bool, registry: Any) -> RunResult:
    family = make_family(config, registry)
    device = resolve_device(config.device)
    net = _optimizee(family, registry).to(device)
    optimiser = registry.create("baseline", config.baseline)
    torch.manual_seed(config.seed)
    rows: list[dict[str, Any]] = []
    prior = None
    if getattr(optimiser, "meta_learns_init", False):
        prior, history = _train_maml(config, family, net, optimiser, progress, device)
        rows += _meta_curves(history).to_dict("records")
        lr = optimiser.inner_lr
    else:
        lrs = list(config.baseline_lrs) or list(optimiser.lrs)
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
        initial_params=prior,
        device=device,
    )
    rows.append({"phase": "selected", "step": 0, "metric": "lr", "value": lr})
    curves = pd.concat([pd.DataFrame(rows, columns=CURVE_COLUMNS), evaluation.curves()]).reset_index(
        drop=True
    )
    final = _final(evaluation, family.inner_steps)
    status = "ok" if all(math.isfinite(v) for v in final.values()) else "diverged"
    return RunResult(status, curves, final, metric=family.metric, device=str(device))


def _train_maml(
    config: RunConfig, family: Any, net: Any, optimiser: Any, progress: bool, device: torch.device
):
    """Second-order MAML on the held-out loss after the task's inner steps."""
    generator = torch.Generator().manual_seed(config.seed)
    init = net.init_params(1, generator)
    prior = torch.nn.ParameterDict(
        {k.replace(".", "/"): torch.nn.Parameter(v.to(device)) for k, v in init.items()}
    )
    outer = torch.optim.Adam(prior.parameters(), lr=config.meta_lr or 1e-3)
    stepper = GradientStepper(net, optimiser, optimiser.inner_lr, create_graph=True)
    batch = defaults.meta_batch(config, family.metric)
    history = []
    for step in tqdm(range(config.meta_steps), disable=not progress, desc="maml", leave=False):
        tasks = family.sample(batch, generator, split="train").to(device)
        params = {k.replace("/", "."): v.expand(batch, *v.shape[1:]) for k, v in prior.items()}
        for s in range(family.inner_steps):
            params, _ = stepper.step(params, None, tasks.train_x[:, s], tasks.train_y[:, s])
        loss = net.loss(params, tasks.eval_x, tasks.eval_y).mean()
        outer.zero_grad()
        loss.backward()
        outer.step()
        history.append([float(step + 1), loss.item(), float("nan"), loss.item()])
    return {k.replace("/", "."): v.detach() for k, v in prior.items()}, history


def run_config(
    config: RunConfig,
    out_dir: Path | str | None = None,
    *,
    progress: bool = True,
    registry: Any = None,
    compile: bool = False,
) -> RunResult:
    """Run one configuration to completion. Never raises for a failed or diverged run."""
    started = time.monotonic()
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    try:
        registry = resolve_registry(registry)
        if config.baseline:
            result = run_baseline(config, out, progress, registry)
        else:
            result = run_learned(config, out, progress, registry, compile=compile)
    except Exception:  # noqa: BLE001 - a sweep records failures instead of stopping
        result = RunResult("failed", error=traceback.format_exc(), device=config.device)
    result.wall_time_s = time.monotonic() - started
    _write_curves(result, out)
    return result


def _write_curves(result: RunResult, out: Path | None) -> None:
    if out is not None and not result.curves.empty:
        tmp = out / "curves.parquet.tmp"
        result.curves.to_parquet(tmp)
        tmp.replace(out / "curves.parquet")  # atomic: a reader never sees half a file


def run_seed_batch(
    configs: Sequence[RunConfig],
    out_dirs: Sequence[Path | str | None],
    *,
    progress: bool = False,
    registry: Any = None,
) -> list[RunResult]:
    """Runs that differ only in seed, meta-trained as one vectorised job (harness/seed_batch.py).

    Same files and results per run as `run_config` (each member checkpoints to its own folder, so
    either entry resumes the other's runs). Configs that cannot be batched, or members resumed at
    different steps, run one by one. Each result's wall time is the batch's, divided evenly.
    Never raises: a failure marks every run of the batch failed.
    """
    if len(configs) != len(out_dirs):
        raise ValueError(f"{len(configs)} configs but {len(out_dirs)} output folders")
    outs = [Path(d) if d is not None else None for d in out_dirs]
    for out in outs:
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
    registry = resolve_registry(registry)

    def one_by_one() -> list[RunResult]:
        pairs = zip(configs, outs, strict=True)
        return [run_config(c, o, progress=progress, registry=registry) for c, o in pairs]

    if batchable(configs) is not None:
        return one_by_one()
    started = time.monotonic()
    try:
        batch = SeedBatchTraining(configs, registry)
        ckpts = [o / "checkpoint.pt" if o is not None else None for o in outs]
        for member, ckpt in zip(batch.members, ckpts, strict=True):
            if ckpt is not None and ckpt.exists():
                member.load(ckpt)
        if len({m.step for m in batch.members}) > 1:
            return one_by_one()
        batch.restack()
        meta_evals = _seed_batch_loop(batch, ckpts, progress)
        results = [
            _finish(m, c, o, registry, evals)
            for m, c, o, evals in zip(batch.members, configs, outs, meta_evals, strict=True)
        ]
    except Exception:  # noqa: BLE001 - a sweep records failures instead of stopping
        error = traceback.format_exc()
        results = [RunResult("failed", error=error, device=c.device) for c in configs]
    share = (time.monotonic() - started) / len(configs)
    for result, out in zip(results, outs, strict=True):
        result.wall_time_s = share
        _write_curves(result, out)
    return results


def _seed_batch_loop(
    batch: SeedBatchTraining, ckpts: list[Path | None], progress: bool
) -> list[list[dict[str, Any]]]:
    """Meta-train a seed batch to the end, checkpointing every member; returns their meta-evals."""
    config = batch.configs[0]
    meta_evals: list[list[dict[str, Any]]] = [[] for _ in batch.members]
    bar = tqdm(
        total=config.meta_steps,
        initial=batch.step,
        disable=not progress,
        desc=f"{config.method} x{len(batch.members)} seeds",
        leave=False,
    )

    def save() -> None:
        batch.sync_members()
        for member, ckpt in zip(batch.members, ckpts, strict=True):
            if ckpt is not None:
                member.save(ckpt)

    last_save = time.monotonic()
    while not batch.done:
        stepping = batch.live()
        metrics = batch.meta_step()
        bar.update(1)
        bar.set_postfix(meta_loss=f"{min(m['meta_loss'] for m in metrics):.4g} (best seed)")
        # As run_learned does per run: evaluate when a member that stepped is at a multiple.
        due = [i for i in stepping if config.eval_every and batch.members[i].step % config.eval_every == 0]
        if due:
            batch.sync_members()
            for i in due:
                meta_evals[i] += _meta_eval(batch.members[i], config)
        if time.monotonic() - last_save > CHECKPOINT_SECONDS:
            save()
            last_save = time.monotonic()
    bar.close()
    save()
    return meta_evals
