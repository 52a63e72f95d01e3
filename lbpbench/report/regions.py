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
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from lbpbench.report.load import config_label
from lbpbench.report.stats import bootstrap_ci
from lbpbench.report.tables import sorted_groups

CENTRE = "eval_loss_centre"
OUTER = "eval_loss_outer"
CENTRE_ARC_RATIO = 2.0
ARC_COLUMN = f"centre arc (outer ≥ {CENTRE_ARC_RATIO:g}× centre)"
REGIONS_HEADING = "Where the error sits: centre against edges"
REGIONS_INTRO = (
    "Per configuration, the loss after the last inner step on the evaluation points with |x| < 2.5 "
    "(centre) and the rest (outer), their ratio outer / centre (mean over seeds, 95 % bootstrap CI), "
    f"and how many runs show MPLP appendix B's 'centre arc': outer ≥ {CENTRE_ARC_RATIO:g} × centre. "
    "For scale: the untrained network before any step 0.98, the released learner 1.58."
)


def final_regions(runs: pd.DataFrame, curves: pd.DataFrame) -> pd.DataFrame:
    """Per run (finished ok), the centre and outer loss at its last evaluated inner step; empty when
    no run recorded regions."""
    ok = set(runs.loc[runs["status"] == "ok", "run_id"])
    rows = curves[(curves["phase"] == "eval") & curves["metric"].isin([CENTRE, OUTER])
                  & curves["run_id"].isin(ok)]
    if rows.empty:
        return pd.DataFrame(columns=["run_id", CENTRE, OUTER, "ratio"])
    last = rows[rows["step"] == rows.groupby("run_id")["step"].transform("max")]
    wide = last.pivot_table(index="run_id", columns="metric", values="value", aggfunc="last")
    wide = wide.dropna(subset=[c for c in (CENTRE, OUTER) if c in wide.columns])
    if CENTRE not in wide.columns or OUTER not in wide.columns:
        return pd.DataFrame(columns=["run_id", CENTRE, OUTER, "ratio"])
    wide["ratio"] = wide[OUTER] / wide[CENTRE]
    return wide.reset_index()[["run_id", CENTRE, OUTER, "ratio"]]


def regions_table(runs: pd.DataFrame, curves: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """One row per configuration with region metrics (the summary's keys): mean centre and outer
    loss, the outer/centre ratio with its CI, and the count of centre-arc runs."""
    per_run = final_regions(runs, curves).set_index("run_id")
    rows = []
    for values, group in sorted_groups(runs, keys):
        mine = per_run.loc[per_run.index.intersection(list(group["run_id"]))]
        if mine.empty:
            continue
        row = dict(zip(keys, values, strict=True))
        ratio = mine["ratio"].to_numpy(dtype=float)
        low, high = bootstrap_ci(ratio)
        arcs = int((ratio >= CENTRE_ARC_RATIO).sum())
        rows.append({
            "configuration": config_label(row, keys),
            "n runs": len(mine),
            "centre loss": float(mine[CENTRE].mean()),
            "outer loss": float(mine[OUTER].mean()),
            "outer / centre": float(ratio.mean()),
            "ratio CI": "n/a" if np.isnan(low) else f"[{low:.3g}, {high:.3g}]",
            ARC_COLUMN: f"{arcs} of {len(mine)}",
        })
    return pd.DataFrame(rows)
