"""Loading a sweep's long-form result tables and naming its configuration axes.

The sweep store writes `results/<sweep>/runs.parquet` (one row per run) and `curves.parquet` (long
form: run_id, phase, step, metric, value); see docs/ARCHITECTURE.md. Everything in this package starts
from these two frames, so this module is the one place that checks they exist and normalises them.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

RUNS_FILE = "runs.parquet"
CURVES_FILE = "curves.parquet"
CURVE_COLUMNS = ("run_id", "phase", "step", "metric", "value")
REQUIRED_RUN_COLUMNS = ("run_id", "task", "method", "status", "final", "metric")

# Columns of runs.parquet that describe a run's outcome or environment, never its configuration.
NON_CONFIG_COLUMNS = frozenset(
    {
        "run_id",
        "sweep",
        "method",
        "status",
        "error",
        "wall_time_s",
        "metric",
        "higher_is_better",
        "final",
        "device",
        "torch_version",
        "lbpbench_version",
        "git_commit",
    }
)
# Settings that never define a configuration: the replicate index, and where/how a run happened.
NOT_AN_AXIS = frozenset({"seed", "device", "data_dir"})


# `method` is baseline or learner/aggregator, so these add nothing to a group key beyond it.
METHOD_PARTS = frozenset({"learner", "aggregator", "baseline", "seed"})


# Settings a baseline run ignores (RunConfig: "learner is ignored when baseline is set").
LEARNED_ONLY = frozenset(
    {
        "learner",
        "aggregator",
        "message_size",
        "hidden_size",
        "sharing",
        "mlp_widths",
        "untrained_message_mlp",
        "meta_loss",
        "hint_weight",
        "truncation",
        "checkpointing",
        "learned_prior",
        "calibration",
        "loss_rule",
        "learner_init_gain",
        "abandon_plateau_at",
    }
)


class ReportError(ValueError):
    """Results cannot be reported; the message says what is missing or wrong."""


def _fallback_config_fields() -> list[str]:
    """RunConfig's field names, so a runs table can be split into config and outcome columns."""
    try:
        from lbpbench.harness.config import RunConfig
    except ImportError:  # pragma: no cover - the harness room is part of the package
        return []
    return [f.name for f in dataclasses.fields(RunConfig)]


def _hashable(value: Any) -> Any:
    """Lists (e.g. mlp_widths) come back from parquet as arrays; make them groupable text."""
    if isinstance(value, np.ndarray | list | tuple):
        return "[" + ", ".join(str(v) for v in list(value)) + "]"
    return value


def load_results(results_dir: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read `runs.parquet` and `curves.parquet` from a sweep's results folder.

    Raises ReportError (a ValueError) naming what is missing, so the command line can print a
    one-line explanation instead of a pyarrow traceback.
    """
    path = Path(results_dir)
    if not path.exists():
        raise ReportError(f"results folder {path} does not exist")
    if not path.is_dir():
        raise ReportError(f"{path} is not a folder; expected a sweep results folder (results/<sweep>/)")
    if not any(path.iterdir()):
        raise ReportError(f"results folder {path} is empty; run the sweep first (no {RUNS_FILE})")
    missing = [name for name in (RUNS_FILE, CURVES_FILE) if not (path / name).is_file()]
    if missing:
        raise ReportError(
            f"results folder {path} lacks {' and '.join(missing)}; "
            "the sweep store writes both when a sweep finishes (was it interrupted?)"
        )
    try:
        runs = pd.read_parquet(path / RUNS_FILE)
        curves = pd.read_parquet(path / CURVES_FILE)
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise ReportError(f"cannot read the result tables in {path}: {exc}") from exc
    if runs.empty:
        raise ReportError(f"{path / RUNS_FILE} holds no runs")
    lacking = [c for c in REQUIRED_RUN_COLUMNS if c not in runs.columns]
    if lacking:
        raise ReportError(f"{path / RUNS_FILE} lacks column(s) {', '.join(lacking)}")
    lacking = [c for c in CURVE_COLUMNS if c not in curves.columns]
    if lacking:
        raise ReportError(f"{path / CURVES_FILE} lacks column(s) {', '.join(lacking)}")
    return normalise_runs(runs), curves.reset_index(drop=True)


def normalise_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """Fill optional columns and make list-valued settings hashable, so grouping never fails."""
    runs = runs.copy()
    for column in runs.columns:
        if runs[column].dtype == object:
            runs[column] = runs[column].map(_hashable)
    defaults: dict[str, Any] = {
        "baseline": "",
        "error": None,
        "wall_time_s": np.nan,
        "higher_is_better": False,
        "sweep": "",
        "seed": 0,
        "abandoned_at": np.nan,  # results written before runs.parquet recorded it
    }
    for column, default in defaults.items():
        if column not in runs.columns:
            runs[column] = default
    runs["baseline"] = runs["baseline"].fillna("").astype(str)
    runs["final"] = pd.to_numeric(runs["final"], errors="coerce").astype(float)
    runs["higher_is_better"] = runs["higher_is_better"].fillna(False).astype(bool)
    return runs.reset_index(drop=True)


def config_columns(runs: pd.DataFrame) -> list[str]:
    """The columns of runs.parquet that are configuration settings (RunConfig fields), in table order."""
    known = set(_fallback_config_fields())
    return [
        c
        for c in runs.columns
        if c not in NON_CONFIG_COLUMNS and (not known or c in known or c == "baseline")
    ]


def varying_axes(runs: pd.DataFrame) -> list[str]:
    """Config columns with more than one value across runs, except seed: the default group-by.

    Seeds are replicates, not configurations; device and data_dir are where a run happened.
    """
    return [c for c in config_columns(runs) if c not in NOT_AN_AXIS and runs[c].nunique(dropna=False) > 1]


def group_keys(runs: pd.DataFrame, group_by: list[str] | tuple[str, ...] | None = None) -> list[str]:
    """Task and method first, then the requested (or varying) axes.

    Task is always a key because final metrics of different tasks are not comparable (loss vs
    accuracy); method always, so a baseline never pools with a learned rule. learner, aggregator and
    baseline are folded into method.
    """
    axes = list(group_by) if group_by else varying_axes(runs)
    unknown = [a for a in axes if a not in runs.columns]
    if unknown:
        raise ReportError(
            f"unknown group-by axis {', '.join(unknown)}; axes in these results: "
            f"{', '.join(config_columns(runs))}"
        )
    keys = ["task", "method"]
    keys += [a for a in axes if a not in keys and a not in METHOD_PARTS]
    return keys


def config_label(row: pd.Series | dict[str, Any], keys: list[str]) -> str:
    """A short human label for one configuration: the method, then `axis=value` for the other keys.

    A baseline ignores the learned rule's settings, so its label leaves them out ("adam", not
    "adam message_size=8").
    """
    is_baseline = bool(row.get("baseline", "")) or "/" not in str(row["method"])
    parts = [str(row["method"])]
    parts += [
        f"{k}={row[k]}"
        for k in keys
        if k not in ("task", "method") and not (is_baseline and k in LEARNED_ONLY)
    ]
    return " ".join(parts)
