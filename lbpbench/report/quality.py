"""Time to quality: how many meta-steps and wall seconds of meta-training a run needs to reach a target X.

Runs with `eval_every > 0` record evaluations during meta-training in curves.parquet: phase
`meta_eval`, step = meta-step, the task's metrics on the fixed evaluation tasks at the trained horizon
(`eval_loss` or `eval_accuracy`, `train_loss`) and `wall_s`, the meta-training wall seconds the run
had spent up to that meta-step (its own share when seeds ran as one batch). Runs without them (old
results, baselines) simply have no time to quality.

X is chosen per task, in this order:
1. `lbpbench report --target TASK=VALUE` (TASK may be a glob such as `mnist-*`);
2. the tuned Adam baseline's final metric on that task in the same sweep (mean over its ok seeds),
   so "to reach X" reads "until it beats tuned Adam", learned_optimization's normalisation;
3. `DEFAULT_TARGETS`, the issue's per-task targets, when the sweep has no successful Adam run.
A lower-is-better metric reaches X when value <= X, a higher-is-better one when value >= X. A run's
meta-steps to X is the first meta_eval step that reaches X, its wall seconds to X the wall_s there.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from lbpbench.report.load import ReportError
from lbpbench.report.stats import bootstrap_ci

META_EVAL = "meta_eval"
WALL = "wall_s"
REFERENCE_BASELINE = "adam"

# The targets (issue 13), used when a sweep has no successful Adam run for the task:
# task name or glob -> (metric, X).
DEFAULT_TARGETS: dict[str, tuple[str, float]] = {
    "sinusoid-5x10": ("eval_loss", 0.0025),
    "sinusoid-2x10": ("eval_loss", 0.0020),
    "mnist-*": ("eval_accuracy", 0.45),
}

SOURCE_OVERRIDE = "override"
SOURCE_ADAM = "adam"
SOURCE_DEFAULT = "default"

# Columns time_to_target_columns adds to each summary row.
TARGET_COLUMNS = (
    "target_metric",
    "target",
    "n_meta_eval",
    "n_reached",
    "reached_frac",
    "steps_to_target_mean",
    "steps_to_target_ci_low",
    "steps_to_target_ci_high",
    "wall_s_to_target_mean",
    "wall_s_to_target_ci_low",
    "wall_s_to_target_ci_high",
)


@dataclass(frozen=True)
class Target:
    """X for one task: the metric, its value, the direction, and where the value came from."""

    task: str
    metric: str
    value: float
    higher_is_better: bool
    source: str  # SOURCE_OVERRIDE | SOURCE_ADAM | SOURCE_DEFAULT
    detail: str  # the source in words, for the report

    @property
    def short(self) -> str:
        """The source in two words, for a figure panel's title."""
        return {SOURCE_OVERRIDE: "--target", SOURCE_ADAM: "tuned Adam", SOURCE_DEFAULT: "default"}[
            self.source
        ]

    @property
    def op(self) -> str:
        return ">=" if self.higher_is_better else "<="

    def describe(self) -> str:
        """`eval_loss <= 0.91 (tuned Adam's final ...)`."""
        return f"{self.metric} {self.op} {self.value:.4g} ({self.detail})"


def parse_targets(items: list[str] | tuple[str, ...]) -> dict[str, float]:
    """`["sinusoid-5x10=0.002", "mnist-*=0.5"]` -> {task or glob: X}; ValueError naming a bad item."""
    out: dict[str, float] = {}
    for item in items:
        task, sep, value = item.partition("=")
        task, value = task.strip(), value.strip()
        if not sep or not task or not value:
            raise ValueError(f"target {item!r} is not TASK=VALUE (e.g. sinusoid-5x10=0.002)")
        try:
            x = float(value)
        except ValueError:
            raise ValueError(f"target {item!r}: {value!r} is not a number") from None
        if not math.isfinite(x):
            raise ValueError(f"target {item!r}: X must be finite")
        out[task] = x
    return out


def _match(table: Mapping[str, object], task: str) -> str | None:
    """The key of `table` naming `task`: the exact name first, else the first glob that matches."""
    if task in table:
        return task
    return next((k for k in table if fnmatch.fnmatchcase(task, k)), None)


def _task_metric(runs: pd.DataFrame, task: str) -> tuple[str, bool]:
    sel = runs[runs["task"] == task]
    names = [str(m) for m in sel["metric"].dropna() if str(m)]
    metric = names[0] if names else ""
    hib = bool(sel.loc[sel["metric"] == metric, "higher_is_better"].any()) if metric else False
    return metric, hib


def _direction(runs: pd.DataFrame, task: str, metric: str) -> bool:
    primary, hib = _task_metric(runs, task)
    return hib if metric == primary else "accuracy" in metric


def choose_targets(
    runs: pd.DataFrame, overrides: Mapping[str, float] | None = None
) -> tuple[dict[str, Target], list[str]]:
    """X per task of `runs` (override, else tuned Adam's mean final, else DEFAULT_TARGETS), and notes
    for tasks left without one. Raises ReportError when an override names no task of the results."""
    overrides = dict(overrides or {})
    tasks = sorted({str(t) for t in runs["task"].dropna()})
    unused = [k for k in overrides if not any(fnmatch.fnmatchcase(t, k) for t in tasks)]
    if unused:
        raise ReportError(
            f"--target names {', '.join(repr(k) for k in unused)}, which matches no task of these "
            f"results ({', '.join(tasks)})"
        )
    targets: dict[str, Target] = {}
    notes: list[str] = []
    for task in tasks:
        metric, hib = _task_metric(runs, task)
        key = _match(overrides, task)
        if key is not None:
            how = "--target" if key == task else f"--target {key}"
            targets[task] = Target(task, metric, overrides[key], hib, SOURCE_OVERRIDE, f"set by {how}")
            continue
        is_adam = (runs["task"] == task) & (runs["baseline"] == REFERENCE_BASELINE) & (runs["status"] == "ok")
        finals = runs.loc[is_adam, "final"].to_numpy(dtype=float)
        finals = finals[np.isfinite(finals)]
        if finals.size and metric:
            detail = f"tuned Adam's final in this sweep, mean of {finals.size} ok seed(s)"
            targets[task] = Target(task, metric, float(finals.mean()), hib, SOURCE_ADAM, detail)
            continue
        key = _match(DEFAULT_TARGETS, task)
        if key is not None:
            d_metric, value = DEFAULT_TARGETS[key]
            detail = f"lbpbench default for {key}: no successful Adam run of this task in the sweep"
            targets[task] = Target(
                task, d_metric, value, _direction(runs, task, d_metric), SOURCE_DEFAULT, detail
            )
            continue
        notes.append(
            f"task {task}: no target X (no successful Adam run and no default), so no time to quality; "
            f"pass --target {task}=VALUE."
        )
    return targets, notes


def first_reach(run_curves: pd.DataFrame, target: Target) -> tuple[float, float]:
    """(meta-step, wall_s) of the first meta_eval row of one run whose target metric reaches X;
    (nan, nan) when it never does, wall_s nan when the run recorded none at that step."""
    rows = run_curves[run_curves["phase"] == META_EVAL]
    values = rows[rows["metric"] == target.metric].sort_values("step")
    v = values["value"].to_numpy(dtype=float)
    good = v >= target.value if target.higher_is_better else v <= target.value
    good &= np.isfinite(v)
    if not good.any():
        return float("nan"), float("nan")
    step = int(values["step"].to_numpy()[np.argmax(good)])
    wall = rows.loc[(rows["metric"] == WALL) & (rows["step"] == step), "value"]
    return float(step), float(wall.iloc[0]) if len(wall) else float("nan")


def time_to_target(runs: pd.DataFrame, curves: pd.DataFrame, targets: Mapping[str, Target]) -> pd.DataFrame:
    """One row per ok run that recorded meta_eval rows of its task's target metric: run_id, task,
    seed, target, reached, steps_to_target, wall_s_to_target (nan when not reached)."""
    columns = ["run_id", "task", "seed", "metric", "target", "reached", "steps_to_target", "wall_s_to_target"]
    meta = curves[curves["phase"] == META_EVAL]
    ok = runs[(runs["status"] == "ok") & runs["run_id"].isin(set(meta["run_id"]))]
    by_run = {rid: g for rid, g in meta[meta["run_id"].isin(set(ok["run_id"]))].groupby("run_id", sort=False)}
    rows = []
    for _, run in ok.iterrows():
        target = targets.get(str(run["task"]))
        g = by_run[run["run_id"]]
        if target is None or not (g["metric"] == target.metric).any():
            continue
        step, wall = first_reach(g, target)
        rows.append(
            (
                run["run_id"],
                str(run["task"]),
                run.get("seed"),
                target.metric,
                target.value,
                bool(math.isfinite(step)),
                step,
                wall,
            )
        )
    return pd.DataFrame(rows, columns=columns)


def time_to_target_columns(per_run: pd.DataFrame, target: Target | None) -> dict[str, object]:
    """Summary columns of one configuration from its rows of `time_to_target`: seeds with meta_eval
    records (n), seeds that reached X (k), and mean and 95 % bootstrap CI of the meta-steps and wall
    seconds to X over the k seeds that reached it (nan when k = 0)."""
    reached = per_run[per_run["reached"]] if len(per_run) else per_run
    steps = reached["steps_to_target"].to_numpy(dtype=float)
    walls = reached["wall_s_to_target"].to_numpy(dtype=float)
    walls = walls[np.isfinite(walls)]
    s_low, s_high = bootstrap_ci(steps)
    w_low, w_high = bootstrap_ci(walls)
    n = len(per_run)
    return {
        "target_metric": target.metric if target else "",
        "target": target.value if target else float("nan"),
        "n_meta_eval": n,
        "n_reached": len(reached),
        "reached_frac": len(reached) / n if n else float("nan"),
        "steps_to_target_mean": float(steps.mean()) if steps.size else float("nan"),
        "steps_to_target_ci_low": s_low,
        "steps_to_target_ci_high": s_high,
        "wall_s_to_target_mean": float(walls.mean()) if walls.size else float("nan"),
        "wall_s_to_target_ci_low": w_low,
        "wall_s_to_target_ci_high": w_high,
    }


def targets_table(targets: Mapping[str, Target]) -> pd.DataFrame:
    """X per task as a table for the report: task, metric, X, when a run reaches it, and why this X."""
    rows = [
        {
            "task": t.task,
            "metric": t.metric,
            "X": t.value,
            "reached when": f"{t.metric} {t.op} X",
            "source": t.detail,
        }
        for t in targets.values()
    ]
    return pd.DataFrame(rows, columns=["task", "metric", "X", "reached when", "source"])
