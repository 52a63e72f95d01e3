"""Per-configuration summary tables: final metric over seeds, divergence, cost, and Adam-relative scores.

One row per configuration (task x method x the group-by axes). Diverged runs are excluded from the
metric's mean, CI and IQM (their final value is meaningless) but counted in `diverged_frac`, whose
denominator is the runs that finished (ok + diverged); failed runs (a crash, not a result) are only
counted in `n_failed`. Learned rules are scored against the tuned Adam baseline of the same task, the
normalisation google/learned_optimization uses: a ratio of final metrics and the number of inner
steps Adam needs to reach the configuration's final metric. Time to quality (lbpbench.report.quality):
meta-steps and wall seconds of meta-training until a seed reaches the task's target X, mean and CI over
the seeds that reached it, next to the fraction that did.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from lbpbench.report.load import LEARNED_ONLY, config_label, group_keys
from lbpbench.report.quality import (
    META_EVAL,
    Target,
    choose_targets,
    time_to_target,
    time_to_target_columns,
)
from lbpbench.report.stats import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, bootstrap_ci, iqm

REFERENCE_BASELINE = "adam"
STEPS_TO_MATCH = "adam_steps_to_match"
STEPS_TO_X = "meta-steps to reach X"
WALL_TO_X = "wall seconds to reach X"
REACHED_X = "reached"
NO_RECORD = "\u2013"  # en dash: no meta_eval records (or no X) for this configuration


@dataclass
class Summary:
    """The summary table, the keys that define a configuration, and notes a reader must see; the
    target X per task and each run's time to it (lbpbench.report.quality)."""

    table: pd.DataFrame
    keys: list[str]
    notes: list[str] = field(default_factory=list)
    targets: dict[str, Target] = field(default_factory=dict)
    time_to_target: pd.DataFrame = field(default_factory=pd.DataFrame)


def ratio_column(metric: str) -> str:
    """`eval_loss` -> `loss_ratio_vs_adam`: configuration mean / Adam mean, named after the metric."""
    name = metric[len("eval_") :] if metric.startswith("eval_") else metric
    return f"{name}_ratio_vs_{REFERENCE_BASELINE}"


def adam_eval_curve(runs: pd.DataFrame, curves: pd.DataFrame, task: str, metric: str) -> pd.Series:
    """Adam's inner-loop eval curve on a task: mean over its ok runs of `metric` per inner step."""
    ids = runs.loc[
        (runs["task"] == task) & (runs["baseline"] == REFERENCE_BASELINE) & (runs["status"] == "ok"), "run_id"
    ]
    sel = curves[(curves["phase"] == "eval") & (curves["metric"] == metric) & curves["run_id"].isin(ids)]
    if sel.empty:
        return pd.Series(dtype=float)
    return sel.groupby("step")["value"].mean().sort_index()


def steps_to_match(curve: pd.Series, target: float, higher_is_better: bool) -> float:
    """First inner step at which the curve is at least as good as `target`; NaN when it never is."""
    if curve.empty or not math.isfinite(target):
        return float("nan")
    good = curve >= target if higher_is_better else curve <= target
    hits = curve.index[good.to_numpy()]
    return float(hits[0]) if len(hits) else float("nan")


def group_metric(g: pd.DataFrame) -> str:
    """The group's primary metric name; the store leaves it empty when every run of a task failed."""
    names = [str(m) for m in g["metric"].dropna() if str(m)]
    return names[0] if names else "n/a"


def sorted_groups(runs: pd.DataFrame, keys: list[str]) -> list[tuple[tuple, pd.DataFrame]]:
    groups = list(runs.groupby(keys, dropna=False, sort=False))
    groups = [(k if isinstance(k, tuple) else (k,), g) for k, g in groups]

    def order(item: tuple[tuple, pd.DataFrame]) -> tuple:
        return tuple(
            (0, v)
            if isinstance(v, numbers.Real) and not isinstance(v, bool) and not pd.isna(v)
            else (1, str(v))
            for v in item[0]
        )

    return sorted(groups, key=order)


def per_configuration(
    runs: pd.DataFrame, keys: list[str], per_run: pd.DataFrame
) -> Iterator[tuple[dict[str, object], pd.DataFrame]]:
    """(the configuration's key values, its rows of `per_run`, indexed by run_id) for each
    configuration, in table order, that has any: how the per-run tables of other sections (regions,
    restarts) are summed up by the summary's keys."""
    for values, group in sorted_groups(runs, keys):
        mine = per_run.loc[per_run.index.intersection(list(group["run_id"]))]
        if not mine.empty:
            yield dict(zip(keys, values, strict=True)), mine


def summarise(
    runs: pd.DataFrame,
    curves: pd.DataFrame,
    group_by: list[str] | None = None,
    targets: dict[str, float] | None = None,
) -> Summary:
    """Build the per-configuration summary table (see the module docstring for the definitions).

    `targets` overrides X per task (`--target TASK=VALUE`); see lbpbench.report.quality.
    """
    keys = group_keys(runs, group_by)
    chosen, target_notes = choose_targets(runs, targets)
    per_run = time_to_target(runs, curves, chosen)
    rows = []
    for values, g in sorted_groups(runs, keys):
        row = dict(zip(keys, values, strict=True))
        ok = g[g["status"] == "ok"]
        finals = ok["final"].to_numpy(dtype=float)
        finals = finals[np.isfinite(finals)]
        n_div = int((g["status"] == "diverged").sum())
        n_fail = int((g["status"] == "failed").sum())
        finished = len(g) - n_fail
        low, high = bootstrap_ci(finals)
        row.update(
            label=config_label(row, keys),
            metric=group_metric(g),
            higher_is_better=bool(g["higher_is_better"].iloc[0]),
            n_runs=len(g),
            n_seeds=int(finals.size),
            mean=float(finals.mean()) if finals.size else float("nan"),
            ci_low=low,
            ci_high=high,
            iqm=iqm(finals),
            diverged_frac=n_div / finished if finished else float("nan"),
            n_diverged=n_div,
            n_failed=n_fail,
            wall_time_s_mean=float(g.loc[g["status"] != "failed", "wall_time_s"].astype(float).mean()),
        )
        mine = per_run[per_run["run_id"].isin(set(g["run_id"]))]
        row.update(time_to_target_columns(mine, chosen.get(str(row["task"]))))
        rows.append(row)
    table = pd.DataFrame(rows)
    for key in keys:  # groupby keys come back as object columns; give parquet a single type
        table[key] = table[key].convert_dtypes() if len(table) else table[key]
    notes = _add_adam_scores(table, runs, curves)
    notes += _notes(table)
    notes += _time_to_target_notes(table, curves) + target_notes
    return Summary(table=table, keys=keys, notes=notes, targets=chosen, time_to_target=per_run)


def _add_adam_scores(table: pd.DataFrame, runs: pd.DataFrame, curves: pd.DataFrame) -> list[str]:
    notes: list[str] = []
    table[STEPS_TO_MATCH] = np.nan
    table["adam_eval_steps"] = np.nan
    for metric in sorted(table["metric"].unique()):
        table[ratio_column(metric)] = np.nan
    for task, rows in table.groupby("task", sort=True):
        is_adam = (runs["task"] == task) & (runs["baseline"] == REFERENCE_BASELINE)
        adam_finals = runs.loc[is_adam & (runs["status"] == "ok"), "final"].to_numpy(dtype=float)
        adam_finals = adam_finals[np.isfinite(adam_finals)]
        if adam_finals.size == 0:
            notes.append(f"task {task}: no successful {REFERENCE_BASELINE} baseline run, so no Adam scores.")
            continue
        adam_mean = float(adam_finals.mean())
        metric = str(rows["metric"].iloc[0])
        hib = bool(rows["higher_is_better"].iloc[0])
        curve = adam_eval_curve(runs, curves, str(task), metric)
        for i in rows.index:
            if table.at[i, "method"] == REFERENCE_BASELINE:
                continue
            target = table.at[i, "mean"]
            table.at[i, ratio_column(metric)] = target / adam_mean if adam_mean != 0 else np.nan
            if not curve.empty:
                table.at[i, "adam_eval_steps"] = float(curve.index.max())
                table.at[i, STEPS_TO_MATCH] = steps_to_match(curve, target, hib)
        if curve.empty:
            notes.append(f"task {task}: Adam has no eval curve for {metric}, so no steps-to-match.")
    return notes


def _notes(table: pd.DataFrame) -> list[str]:
    notes = [
        "Diverged runs are excluded from mean, CI and IQM but counted in diverged_frac "
        "(denominator: runs that finished, ok + diverged); failed runs are only counted in n_failed.",
        f"CI: 95 % percentile bootstrap of the mean over seeds ({BOOTSTRAP_RESAMPLES} resamples, "
        f"seed {BOOTSTRAP_SEED}). IQM: mean of the middle 50 % of seeds.",
        "<metric>_ratio_vs_adam = configuration mean / Adam mean on the same task (loss: < 1 beats "
        "Adam; accuracy: > 1 beats Adam). adam_steps_to_match: first inner step at which Adam's mean "
        "eval curve is at least as good as the configuration's final; '>S' when Adam never gets there "
        "within its S evaluated steps.",
    ]
    single = table[table["n_seeds"] == 1]
    if len(single):
        notes.append(
            "CI n/a for configurations with one successful seed: " + ", ".join(single["label"]) + "."
        )
    empty = table[table["n_seeds"] == 0]
    if len(empty):
        notes.append("No successful seed (mean n/a) for: " + ", ".join(empty["label"]) + ".")
    return notes


def _time_to_target_notes(table: pd.DataFrame, curves: pd.DataFrame) -> list[str]:
    if not (curves["phase"] == META_EVAL).any():
        return [
            "Time to quality n/a (\u2013): no run recorded evaluations during meta-training (phase "
            "meta_eval, written by runs with eval_every > 0); older results and baselines have none."
        ]
    notes = [
        f"{STEPS_TO_X} / {WALL_TO_X}: first meta-training evaluation (phase meta_eval) at which a seed's "
        "metric reaches the task's X (targets table), and the meta-training wall seconds it had spent "
        "there; mean with a 95 % bootstrap CI over the seeds that reached X only. "
        f"{REACHED_X} = k/n: k of the n ok seeds with meta_eval records reached X; the n - k that never "
        "did are not in the mean. Diverged seeds are excluded, as from the final metric's mean. "
        f"'{NO_RECORD}': no meta_eval records (run without eval_every, or a baseline) or no X for the task.",
    ]
    missing = table[(table["n_meta_eval"] == 0) & (table["n_seeds"] > 0)] if len(table) else table
    if len(missing):
        per_task = [
            f"{task}: " + ", ".join(rows["label"]) for task, rows in missing.groupby("task", sort=True)
        ]
        notes.append(
            "No meta_eval records, so time to quality n/a (tuned SGD and Adam never have them) for "
            + "; ".join(per_task)
            + "."
        )
    return notes


def failures_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Failed and diverged runs with their full error text, so a reader sees why a row has few seeds
    (the rendered report shows each error's exception line, `exception_line`)."""
    cols = [c for c in ("run_id", "task", "method", "seed", "status", "error") if c in runs.columns]
    bad = runs.loc[runs["status"] != "ok", cols].copy()
    bad["error"] = bad["error"].fillna("").astype(str)
    return bad.reset_index(drop=True)


def _fmt(value: object) -> str:
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, float | np.floating):
        if math.isnan(value):
            return "n/a"
        return f"{value:.4g}"
    return str(value)


def display_table(summary: Summary) -> pd.DataFrame:
    """The summary as text for people: CI as `[lo, hi]` or `n/a (1 seed)`, steps as `>S` when unmatched."""
    t = summary.table
    out = pd.DataFrame({k: t[k].map(_fmt) for k in summary.keys})
    baseline_rows = ~t["method"].astype(str).str.contains("/") if len(t) else []
    for k in summary.keys:  # a baseline ignores the learned rule's settings: do not print them
        if k in LEARNED_ONLY and len(t):
            out.loc[baseline_rows, k] = "-"
    out["metric"] = t["metric"]
    out["n seeds"] = t["n_seeds"].map(str)
    out["mean"] = t["mean"].map(_fmt)

    def ci(row: pd.Series) -> str:
        if row["n_seeds"] == 0:
            return "n/a (no seed)"
        if row["n_seeds"] == 1:
            return "n/a (1 seed)"
        return f"[{_fmt(row['ci_low'])}, {_fmt(row['ci_high'])}]"

    out["95% CI"] = t.apply(ci, axis=1) if len(t) else []
    out["IQM"] = t["iqm"].map(_fmt)
    out["diverged"] = t["diverged_frac"].map(lambda v: "n/a" if pd.isna(v) else f"{v:.0%}")
    out["failed"] = t["n_failed"].map(str)
    out["wall time (s)"] = t["wall_time_s_mean"].map(_fmt)
    for col in [c for c in t.columns if c.endswith(f"_ratio_vs_{REFERENCE_BASELINE}")]:
        out[col] = t[col].map(_fmt)

    def steps(row: pd.Series) -> str:
        if pd.isna(row["adam_eval_steps"]):
            return "n/a"
        if pd.isna(row[STEPS_TO_MATCH]):
            return f">{int(row['adam_eval_steps'])}"
        return str(int(row[STEPS_TO_MATCH]))

    out[STEPS_TO_MATCH] = t.apply(steps, axis=1) if len(t) else []
    for column, prefix in ((STEPS_TO_X, "steps_to_target"), (WALL_TO_X, "wall_s_to_target")):
        out[column] = t.apply(lambda r, p=prefix: _to_target_cell(r, p), axis=1) if len(t) else []
    out[REACHED_X] = (
        t.apply(
            lambda r: f"{int(r['n_reached'])}/{int(r['n_meta_eval'])}" if r["n_meta_eval"] else NO_RECORD,
            axis=1,
        )
        if len(t)
        else []
    )
    return out


def _to_target_cell(row: pd.Series, prefix: str) -> str:
    """`mean [lo, hi]` over the seeds that reached X, `v (1 seed)`, `not reached`, or NO_RECORD."""
    if not row["n_meta_eval"]:
        return NO_RECORD
    if not row["n_reached"]:
        return "not reached"
    mean = row[f"{prefix}_mean"]
    if pd.isna(mean):
        return "n/a (no wall_s)"
    low, high = row[f"{prefix}_ci_low"], row[f"{prefix}_ci_high"]
    if pd.isna(low):
        return f"{_fmt(mean)} (1 seed)"
    return f"{_fmt(mean)} [{_fmt(low)}, {_fmt(high)}]"


def to_markdown(frame: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table (no tabulate dependency); cells are rendered with `_fmt`."""
    if frame.empty:
        return "_(no rows)_\n"
    header = [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for _, row in frame.iterrows():
        cells = [_fmt(v).replace("|", "\\|").replace("\n", " ") for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_tables(
    tables: dict[str, pd.DataFrame],
    out_dir: str | Path,
    display: dict[str, pd.DataFrame] | None = None,
) -> list[Path]:
    """Write each table as `<name>.parquet`, `.csv` and `.md`.

    Parquet and CSV keep raw numbers for further analysis; the Markdown uses `display[name]` when
    given (the human rendering, e.g. `>S` steps and `[lo, hi]` CIs).
    """
    display = display or {}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, frame in tables.items():
        frame.to_parquet(out / f"{name}.parquet", index=False)
        frame.to_csv(out / f"{name}.csv", index=False)
        (out / f"{name}.md").write_text(to_markdown(display.get(name, frame)))
        written += [out / f"{name}.parquet", out / f"{name}.csv", out / f"{name}.md"]
    return written
