"""How each configuration was trained: its settings that differ from the RunConfig defaults.

Why: two reports with the same tables can mean very different things — a learner fine-tuned from a
trained zoo entry for 30 meta-steps, or one trained from scratch with the paper's recipe. A reader
must see the recipe (preset settings, `init_from`, budgets) next to the numbers, without opening
the spec.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from lbpbench.report.load import LEARNED_ONLY, METHOD_PARTS, NOT_AN_AXIS, config_columns

# Settings only meta-training reads: a tuned baseline (no meta_train curve) ignores them.
META_TRAINING_ONLY = frozenset({"meta_steps", "meta_batch", "meta_lr", "meta_loss", "hint_weight",
                                "lr_schedule", "warmup_steps", "grad_norm", "clip_norm", "init_from",
                                "truncation", "checkpointing", "learned_prior", "init_pool", "eval_every"})

SETTINGS_HEADING = "How each configuration was trained"
SETTINGS_INTRO = (
    "Settings that differ from lbpbench's defaults (RunConfig), per task and method; "
    "`a | b` where the configuration's runs differ. Seeds are listed under n seeds in the summary."
)


def _defaults() -> dict[str, Any]:
    from lbpbench.harness.config import RunConfig

    return RunConfig().to_dict()


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value))


def _same(value: Any, default: Any) -> bool:
    if isinstance(default, list):  # list-valued defaults; runs.parquet holds them as text (load._hashable)
        default = "[" + ", ".join(str(v) for v in default) + "]"
    if _missing(value) or _missing(default):
        return _missing(value) and _missing(default)
    if isinstance(value, str) or isinstance(default, str):
        return str(value) == str(default)
    return bool(value == default)


def _shown(value: Any) -> str:
    if _missing(value):
        return "none"
    return f"{value:g}" if isinstance(value, float) else str(value)


def settings_table(runs: pd.DataFrame, curves: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per (task, method): `setting=value` for every non-default setting, `; `-joined.

    With `curves`, a baseline whose runs have no meta_train rows (tuned, not meta-trained) leaves
    out the settings only meta-training reads."""
    defaults = _defaults()
    meta_trained = None if curves is None else set(curves.loc[curves["phase"] == "meta_train", "run_id"])
    columns = [c for c in config_columns(runs)
               if c in defaults and c not in NOT_AN_AXIS and c not in METHOD_PARTS and c != "task"]
    rows = []
    for (task, method), group in runs.groupby(["task", "method"], sort=True):
        baseline = "/" not in str(method)
        tuned = baseline and meta_trained is not None and not meta_trained & set(group["run_id"])
        parts = []
        for column in columns:
            if (baseline and column in LEARNED_ONLY) or (tuned and column in META_TRAINING_ONLY):
                continue
            values = list(dict.fromkeys(v for v in group[column].tolist()))
            if len(values) == 1 and _same(values[0], defaults[column]):
                continue
            parts.append(f"{column}={' | '.join(_shown(v) for v in values)}")
        rows.append({"task": task, "method": method, "settings": "; ".join(parts) or "(defaults)"})
    return pd.DataFrame(rows, columns=["task", "method", "settings"])
