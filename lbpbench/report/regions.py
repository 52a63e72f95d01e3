"""Where a regression learner's error sits: the centre of the input range against its edges.

Why: MPLP's appendix B says weak learners "get stuck fitting a centre arc" — they fit the middle of
the sinusoid and leave the edges. A task that splits its evaluation points into regions
(`eval_regions`, e.g. the sinusoid's |x| < 2.5 "centre" and the rest "outer") records
`eval_loss_<region>` after every inner step; this module turns the final step's values into one
row per configuration and counts the runs that show the signature.

The signature was fixed before any ablation run was read: **outer loss ≥ 2 × centre loss after the
last inner step** (`CENTRE_ARC_RATIO`). Reference points, from `lbpbench eval` on learners outside
any study (fixed evaluation tasks; results/ablation/centre_arc_references.txt): the untrained network
before any step 0.98 (a sinusoid's power is about the same in both regions), the released learner
1.58, the `sinusoid-5x10-fast` zoo learner 1.27, the paper-recipe learner on its 0.018 plateau 0.92
(weak, but evenly so).

A second signature came from the paper-recipe plateau itself (after the first, before any study
ran to its end): its 0.0179 and the plateau of ablation (a)'s stuck seeds (0.0185) sit at, or
within 4 % of, the loss of the best single curve for all the evaluation tasks (0.0185: the mean
target per point, a centre arc 2·mean(A)·cos(x)/π; `eval_loss_task_average`,
lbpbench.harness.evaluate). A run is
**no better than the task average** when its final eval loss is ≥ 0.9 × that loss
(`TASK_AVERAGE_FRACTION`): its five steps fit one curve for every task, to within 10 %.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from lbpbench.harness.plateau import PLATEAU_FRACTION, TASK_AVERAGE
from lbpbench.report.load import config_label
from lbpbench.report.stats import bootstrap_ci
from lbpbench.report.tables import per_configuration

CENTRE = "eval_loss_centre"
OUTER = "eval_loss_outer"
CENTRE_ARC_RATIO = 2.0
TASK_AVERAGE_FRACTION = PLATEAU_FRACTION  # the same line `abandon_plateau_at` stops a member at
ARC_COLUMN = f"centre arc (outer ≥ {CENTRE_ARC_RATIO:g}× centre)"
AVERAGE_COLUMN = f"no better than the task average (≥ {TASK_AVERAGE_FRACTION:g}×)"
REGIONS_HEADING = "Where the error sits: centre against edges, and the task-average curve"
REGIONS_INTRO = (
    "Per configuration, the loss after the last inner step on the evaluation points with |x| < 2.5 "
    "(centre) and the rest (outer), their ratio outer / centre (mean over seeds, 95 % bootstrap CI), "
    f"and how many runs show MPLP appendix B's 'centre arc': outer ≥ {CENTRE_ARC_RATIO:g} × centre. "
    "For scale: the untrained network before any step 0.98, the released learner 1.58. "
    "Last column: runs whose final eval loss is at least "
    f"{TASK_AVERAGE_FRACTION:g} × the loss of the best single curve for all evaluation tasks (the mean "
    "target per point, a centre arc; the sinusoid's 0.018 plateau), i.e. whose steps barely use the "
    "task's data."
)


def final_regions(runs: pd.DataFrame, curves: pd.DataFrame) -> pd.DataFrame:
    """Per run (finished ok), the centre and outer loss at its last evaluated inner step; empty when
    no run recorded regions."""
    ok = set(runs.loc[runs["status"] == "ok", "run_id"])
    columns = ["run_id", CENTRE, OUTER, "ratio", "eval_loss", TASK_AVERAGE]
    wanted = curves["metric"].isin([CENTRE, OUTER, "eval_loss", TASK_AVERAGE])
    rows = curves[(curves["phase"] == "eval") & wanted & curves["run_id"].isin(ok)]
    if rows.empty:
        return pd.DataFrame(columns=columns)
    last = rows[rows["step"] == rows.groupby("run_id")["step"].transform("max")]
    wide = last.pivot_table(index="run_id", columns="metric", values="value", aggfunc="last")
    if CENTRE not in wide.columns or OUTER not in wide.columns:
        return pd.DataFrame(columns=columns)
    wide = wide.dropna(subset=[CENTRE, OUTER])
    wide["ratio"] = wide[OUTER] / wide[CENTRE]
    for column in ("eval_loss", TASK_AVERAGE):  # runs from before the task average was recorded
        if column not in wide.columns:
            wide[column] = np.nan
    return wide.reset_index()[columns]


def regions_table(runs: pd.DataFrame, curves: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """One row per configuration with region metrics (the summary's keys): mean centre and outer
    loss, the outer/centre ratio with its CI, and the count of centre-arc runs."""
    per_run = final_regions(runs, curves).set_index("run_id")
    rows = []
    for row, mine in per_configuration(runs, keys, per_run):
        ratio = mine["ratio"].to_numpy(dtype=float)
        low, high = bootstrap_ci(ratio)
        arcs = int((ratio >= CENTRE_ARC_RATIO).sum())
        known = mine.dropna(subset=["eval_loss", TASK_AVERAGE])
        stuck = int((known["eval_loss"] >= TASK_AVERAGE_FRACTION * known[TASK_AVERAGE]).sum())
        rows.append({
            "configuration": config_label(row, keys),
            "n runs": len(mine),
            "centre loss": float(mine[CENTRE].mean()),
            "outer loss": float(mine[OUTER].mean()),
            "outer / centre": float(ratio.mean()),
            "ratio CI": "n/a" if np.isnan(low) else f"[{low:.3g}, {high:.3g}]",
            ARC_COLUMN: f"{arcs} of {len(mine)}",
            AVERAGE_COLUMN: f"{stuck} of {len(known)}" if len(known) else "not recorded",
        })
    return pd.DataFrame(rows)
