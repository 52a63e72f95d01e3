"""Compare two sweeps configuration by configuration (asv-compare style, with a significance test).

A difference is marked only when the ratio of means B/A passes the factor (either direction) AND a
two-sided Mann-Whitney U test over the per-seed finals gives p < ALPHA: with 3 seeds per side noise
alone often moves a mean by 10 %, and a rank test needs no normality. Note that with 3 vs 3 seeds the
smallest possible two-sided p is 0.1, so marking a difference needs at least 4 seeds on each side.

Configurations are matched on task, method and every setting that varies within A or within B;
settings that are constant within each side but differ between them (say meta_steps 200 vs 400)
are the treatment being compared and are reported separately.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import mannwhitneyu

from lbpbench.report.load import METHOD_PARTS, NOT_AN_AXIS, config_columns, config_label, load_results

ALPHA = 0.05
DEFAULT_FACTOR = 1.1


@dataclass
class Comparison:
    """Per-configuration comparison rows, the matching keys, and settings that differ between sides."""

    table: pd.DataFrame
    keys: list[str]
    setting_changes: dict[str, tuple[str, str]] = field(default_factory=dict)
    factor: float = DEFAULT_FACTOR


def _text(value: object) -> str:
    """A setting as text; None, NaN and pd.NA all read "None" (stores differ in how they write "unset")."""
    try:
        if pd.isna(value):  # type: ignore[arg-type]
            return "None"
    except (TypeError, ValueError):  # list-like values
        pass
    return str(value)


def _values(runs: pd.DataFrame, column: str) -> set[str]:
    return {_text(v) for v in runs[column].tolist()}


def comparison_keys(
    runs_a: pd.DataFrame, runs_b: pd.DataFrame
) -> tuple[list[str], dict[str, tuple[str, str]]]:
    """Keys that identify a configuration on both sides, and the constant settings that changed."""
    shared = [c for c in config_columns(runs_a) if c in set(config_columns(runs_b))]
    keys = ["task", "method"]
    changes: dict[str, tuple[str, str]] = {}
    for column in shared:
        if column in keys or column in METHOD_PARTS or column in NOT_AN_AXIS:
            continue
        va, vb = _values(runs_a, column), _values(runs_b, column)
        if len(va) > 1 or len(vb) > 1:
            keys.append(column)
        elif va != vb:
            changes[column] = (next(iter(va)), next(iter(vb)))
    return keys, changes


def _finals(runs: pd.DataFrame) -> pd.DataFrame:
    ok = runs[(runs["status"] == "ok") & np.isfinite(runs["final"].astype(float))].copy()
    return ok


def _verdict(ratio: float, p: float, factor: float, higher_is_better: bool) -> str:
    if not np.isfinite(ratio) or not np.isfinite(p):
        return ""
    if p >= ALPHA or (1.0 / factor < ratio < factor):
        return ""
    b_larger = ratio >= factor
    return "better" if b_larger == higher_is_better else "worse"


def compare_frames(runs_a: pd.DataFrame, runs_b: pd.DataFrame, factor: float = DEFAULT_FACTOR) -> Comparison:
    """Compare two runs tables; `verdict` is "better"/"worse" (B relative to A) or "" (no marked change)."""
    if factor < 1.0:
        raise ValueError(f"factor must be >= 1, got {factor}")
    keys, changes = comparison_keys(runs_a, runs_b)
    runs_a, runs_b = runs_a.copy(), runs_b.copy()
    ok_a, ok_b = _finals(runs_a), _finals(runs_b)
    for frame in (runs_a, runs_b, ok_a, ok_b):
        frame["_key"] = (
            [tuple(_text(row[k]) for k in keys) for _, row in frame.iterrows()] if len(frame) else []
        )
    labels: dict[tuple, dict] = {}
    for frame in (runs_a, runs_b):
        for _, row in frame.iterrows():
            labels.setdefault(row["_key"], {"row": row})
    rows = []
    key_a, key_b = set(runs_a["_key"]), set(runs_b["_key"])
    for key in sorted(key_a | key_b):
        ref = labels[key]["row"]
        a = ok_a.loc[ok_a["_key"] == key, "final"].to_numpy(dtype=float)
        b = ok_b.loc[ok_b["_key"] == key, "final"].to_numpy(dtype=float)
        hib = bool(ref["higher_is_better"])
        row = {k: v for k, v in zip(keys, key, strict=True)}
        row.update(label=config_label(ref, keys), metric=str(ref["metric"]), n_a=len(a), n_b=len(b))
        row["mean_a"] = float(a.mean()) if len(a) else np.nan
        row["mean_b"] = float(b.mean()) if len(b) else np.nan
        row["ratio_b_over_a"] = (
            row["mean_b"] / row["mean_a"] if len(a) and len(b) and row["mean_a"] else np.nan
        )
        p = np.nan
        if len(a) and len(b):
            if np.array_equal(np.sort(a), np.sort(b)) or (np.ptp(np.concatenate([a, b])) == 0):
                p = 1.0
            else:
                p = float(mannwhitneyu(a, b, alternative="two-sided").pvalue)
        row["p_value"] = p
        if key not in key_b:
            row["only_in"] = "A"
        elif key not in key_a:
            row["only_in"] = "B"
        else:
            row["only_in"] = ""
        row["verdict"] = _verdict(row["ratio_b_over_a"], p, factor, hib)
        rows.append(row)
    return Comparison(table=pd.DataFrame(rows), keys=keys, setting_changes=changes, factor=factor)


def compare_results(dir_a: str | Path, dir_b: str | Path, factor: float = DEFAULT_FACTOR) -> Comparison:
    """Load two results folders and compare them (raises ReportError when either cannot be read)."""
    runs_a, _ = load_results(dir_a)
    runs_b, _ = load_results(dir_b)
    return compare_frames(runs_a, runs_b, factor)


def min_p_value(n_a: int, n_b: int) -> float:
    """Smallest two-sided exact Mann-Whitney p for these sample sizes: 2 / C(n_a + n_b, n_a)."""
    if n_a == 0 or n_b == 0:
        return 1.0
    return min(1.0, 2.0 / math.comb(n_a + n_b, n_a))


def _num(v: float, fmt: str = ".4g") -> str:
    return "n/a" if not np.isfinite(v) else format(v, fmt)


def format_comparison(cmp: Comparison, name_a: str = "A", name_b: str = "B") -> str:
    """Plain-text table for the terminal: one line per configuration, marked lines first in meaning."""
    lines = [f"A = {name_a}", f"B = {name_b}"]
    for column, (va, vb) in cmp.setting_changes.items():
        lines.append(f"setting changed: {column}: {va} (A) -> {vb} (B)")
    lines.append(
        f"A difference is marked only when B/A passes x{cmp.factor:g} (or 1/{cmp.factor:g}) and a two-sided "
        f"Mann-Whitney U test over per-seed finals gives p < {ALPHA:g}."
    )
    t = cmp.table
    header = ("task", "configuration", "metric", "n A", "n B", "mean A", "mean B", "B/A", "p", "")
    rows = []
    for _, r in t.iterrows():
        if r["only_in"]:
            mark = f"only in {r['only_in']}"
        elif r["verdict"]:
            mark = f"** {r['verdict']} **"
        elif min(r["n_a"], r["n_b"]) == 0:
            mark = "no successful seed on one side"
        else:
            mark = ""
        rows.append(
            (
                str(r["task"]),
                str(r["label"]),
                str(r["metric"]),
                str(r["n_a"]),
                str(r["n_b"]),
                _num(r["mean_a"]),
                _num(r["mean_b"]),
                _num(r["ratio_b_over_a"], ".3f"),
                _num(r["p_value"], ".3g"),
                mark,
            )
        )
    widths = [max(len(x[i]) for x in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    n_marked = int((t["verdict"] != "").sum()) if len(t) else 0
    only_a = int((t["only_in"] == "A").sum()) if len(t) else 0
    only_b = int((t["only_in"] == "B").sum()) if len(t) else 0
    lines.append(f"{n_marked} marked difference(s); {only_a} configuration(s) only in A, {only_b} only in B.")
    too_few = [
        r["label"]
        for _, r in t.iterrows()
        if not r["only_in"] and min_p_value(int(r["n_a"]), int(r["n_b"])) >= ALPHA
    ]
    if too_few:
        lines.append(
            f"note: {len(too_few)} configuration(s) have too few seeds for any Mann-Whitney p < {ALPHA:g} "
            "(3 vs 3 seeds: p >= 0.1; 4 vs 4 is the smallest balanced design that can pass), "
            "so they cannot be marked whatever their ratio."
        )
    return "\n".join(lines)
