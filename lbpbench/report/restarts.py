"""Restarts: what a configuration is worth when its stuck draws are stopped and drawn again.

Why: on the sinusoid, whether a run leaves the task-average plateau is a lottery over its initial
learner (results/search/README.md), and `abandon_plateau_at` stops a draw still on it. A mean over
seeds then mixes the loss at which abandoned draws stopped with the loss the others trained to, which
measures neither. So a configuration with restarts is described by three things, kept apart:
- how often a draw **escapes**: it was not abandoned and ended below the plateau line (final eval
  loss < `PLATEAU_FRACTION` × the task-average curve's loss), k of n with the exact (Clopper-Pearson)
  95 % interval, because n is 3-10;
- how good the escaped draws get: their final metric, mean with its bootstrap CI, and how many of
  them reached the task's target X (lbpbench.report.quality), which is not the same as escaping
  (escaped draws can stall on a second plateau);
- what a learner that reaches X costs with restarts: the meta-training seconds of every draw before
  the first one that reaches X (seed order, the order a sweep runs them), plus that draw's seconds to
  X; and the seconds spent per escape.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from lbpbench.harness.plateau import PLATEAU_FRACTION
from lbpbench.report.load import config_label
from lbpbench.report.quality import SOURCE_OVERRIDE, Target, first_reach, time_to_target
from lbpbench.report.regions import CENTRE_ARC_RATIO, final_regions
from lbpbench.report.stats import bootstrap_ci
from lbpbench.report.tables import per_configuration

RESTARTS_HEADING = "Restarts: escapes from the plateau, and what an escaped learner costs"
RESTARTS_INTRO = (
    "For configurations that stop a draw still on the task-average plateau (`abandon_plateau_at`): "
    "draws abandoned, draws that escaped (not abandoned, final eval loss below "
    f"{PLATEAU_FRACTION:g} × the task-average curve's) with the exact 95 % interval of the escape "
    "rate, the final metric of the escaped draws (mean, 95 % bootstrap CI), how many of them reached "
    "X, the meta-training seconds of all draws per escape, and the seconds until the first draw "
    "reached X with every draw before it paid for (seeds in order)."
)


def escape_interval(escaped: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) interval of an escape rate; (nan, nan) without draws."""
    if n == 0:
        return (float("nan"), float("nan"))
    ci = stats.binomtest(escaped, n).proportion_ci(confidence_level=confidence, method="exact")
    return (float(ci.low), float(ci.high))


MAX_EXACT_TABLES = 2_000_000


def escape_rates_exact_p(counts: list[tuple[int, int]]) -> float:
    """Exact test that configurations share one escape rate: (escaped, draws) per configuration.

    Why exact: with 3-6 draws a configuration, a chi-square approximation is meaningless. This is
    Fisher's test generalised to r configurations (Freeman-Halton): with the draws per
    configuration and the total escapes fixed, the p-value sums the hypergeometric probabilities
    of every table no more probable than the one observed. For two configurations it is Fisher's
    two-sided exact test.
    """
    if len(counts) < 2:
        raise ValueError("an escape-rate comparison needs at least two configurations")
    for k, n in counts:
        if not 0 <= k <= n:
            raise ValueError(f"escapes must lie in 0..draws, got {k} of {n}")
    sizes = [n for _, n in counts]
    if math.prod(n + 1 for n in sizes) > MAX_EXACT_TABLES:
        raise ValueError(f"too many tables to enumerate for draws {sizes}")
    total_k, total_n = sum(k for k, _ in counts), sum(sizes)

    def log_probability(table: tuple[int, ...]) -> float:
        return (sum(math.log(math.comb(n, x)) for x, n in zip(table, sizes, strict=True))
                - math.log(math.comb(total_n, total_k)))

    observed = log_probability(tuple(k for k, _ in counts))
    p = 0.0
    for table in itertools.product(*(range(n + 1) for n in sizes)):
        if sum(table) == total_k:
            lp = log_probability(table)
            if lp <= observed + 1e-7:  # ties by float rounding count as ties, as in scipy
                p += math.exp(lp)
    return min(p, 1.0)


def draw_outcomes(runs: pd.DataFrame, curves: pd.DataFrame, targets: Mapping[str, Target]) -> pd.DataFrame:
    """One row per ok run that meta-trained (it recorded meta_train rows: a learned protocol or
    MAML, not a tuned baseline, which has nothing to stop) in a configuration with restarts
    (abandon_plateau_at > 0): seed, abandoned, escaped, final, wall_time_s, reached (X),
    wall_s_to_target."""
    columns = ["run_id", "seed", "abandoned", "escaped", "final", "wall_time_s", "reached",
               "wall_s_to_target"]
    if "abandon_plateau_at" not in runs.columns:
        return pd.DataFrame(columns=columns)
    with_restarts = runs["abandon_plateau_at"].fillna(0).astype(float) > 0
    meta_trained = set(curves.loc[curves["phase"] == "meta_train", "run_id"])
    mine = runs[with_restarts & (runs["status"] == "ok") & runs["run_id"].isin(meta_trained)]
    if mine.empty:
        return pd.DataFrame(columns=columns)
    regions = final_regions(mine, curves).set_index("run_id")
    to_x = time_to_target(mine, curves, targets).set_index("run_id")
    rows = []
    for _, run in mine.iterrows():
        rid = run["run_id"]
        abandoned = bool(np.isfinite(float(run["abandoned_at"])))
        line = float(regions.at[rid, "eval_loss_task_average"]) if rid in regions.index else float("nan")
        escaped = (not abandoned) and math.isfinite(line) and float(run["final"]) < PLATEAU_FRACTION * line
        reached = bool(rid in to_x.index and to_x.at[rid, "reached"])
        rows.append((rid, run["seed"], abandoned, escaped, float(run["final"]), float(run["wall_time_s"]),
                     reached, float(to_x.at[rid, "wall_s_to_target"]) if reached else float("nan")))
    return pd.DataFrame(rows, columns=columns)


def with_milestones(
    draws: pd.DataFrame, runs: pd.DataFrame, curves: pd.DataFrame, task: str, levels: Sequence[float]
) -> pd.DataFrame:
    """`draws` (draw_outcomes' rows, indexed by run_id) with, per eval-loss level L, `steps_to_L`:
    the first meta-step whose evaluation reached L (nan when none did), and `centre_arc`: the draw
    ended with outer loss >= CENTRE_ARC_RATIO x centre loss.

    Why: "converges faster" and "stuck on a centre arc" are claims about single draws; a study's
    numbers compare these columns across configurations.
    """
    out = draws.copy()
    meta = curves[curves["phase"] == "meta_eval"]
    by_run = {rid: group for rid, group in meta.groupby("run_id", sort=False)}
    empty = meta.iloc[:0]
    for level in levels:
        target = Target(task, "eval_loss", level, False, SOURCE_OVERRIDE, "")
        out[f"steps_to_{level:g}"] = [first_reach(by_run.get(rid, empty), target)[0] for rid in out.index]
    regions = final_regions(runs[runs["run_id"].isin(out.index)], curves)
    ratio = regions.set_index("run_id")["ratio"].reindex(out.index).astype(float)
    out["centre_arc"] = ratio >= CENTRE_ARC_RATIO
    return out


def seconds_to_target_with_restarts(draws: pd.DataFrame) -> float:
    """Meta-training seconds of the draws before the first (in seed order) that reached X, plus its
    own seconds to X; nan when none did."""
    spent = 0.0
    for _, draw in draws.sort_values("seed").iterrows():
        if draw["reached"]:
            return spent + float(draw["wall_s_to_target"])
        spent += float(draw["wall_time_s"])
    return float("nan")


def restarts_table(
    runs: pd.DataFrame, curves: pd.DataFrame, keys: list[str], targets: Mapping[str, Target]
) -> pd.DataFrame:
    """One row per configuration with restarts (the summary's keys); empty when no run has them."""
    draws = draw_outcomes(runs, curves, targets).set_index("run_id", drop=False)
    rows = []
    for row, mine in per_configuration(runs, keys, draws):
        n, k = len(mine), int(mine["escaped"].sum())
        low, high = escape_interval(k, n)
        escaped = mine[mine["escaped"]]
        finals = escaped["final"].to_numpy(dtype=float)
        f_low, f_high = bootstrap_ci(finals)
        target = targets.get(str(row["task"]))
        seconds = float(mine["wall_time_s"].sum())
        to_x = seconds_to_target_with_restarts(mine)
        rows.append({
            "configuration": config_label(row, keys),
            "draws": n,
            "abandoned": int(mine["abandoned"].sum()),
            "escaped": f"{k} of {n}",
            "escape rate CI": f"[{low:.2f}, {high:.2f}]",
            "escaped: final": float(finals.mean()) if finals.size else float("nan"),
            "escaped: final CI": "n/a" if np.isnan(f_low) else f"[{f_low:.3g}, {f_high:.3g}]",
            "escaped: reached X": f"{int(escaped['reached'].sum())} of {k}" if target else "no X",
            "seconds per escape": seconds / k if k else float("nan"),
            "seconds to X with restarts": to_x,
        })
    return pd.DataFrame(rows)
