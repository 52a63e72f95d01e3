"""Seaborn figures of a sweep, rendered headless to PNG bytes that are identical for identical results.

Figures are drawn on `matplotlib.figure.Figure` objects with an Agg canvas, never through pyplot, so
rendering needs no display and does not change the caller's matplotlib backend. Reproducibility:
seaborn's bootstrap gets a fixed `seed`, the strip plot's jitter (drawn from numpy's global
generator) runs under a fixed, afterwards restored, global state, and PNGs carry no Software
metadata (Agg writes no timestamp).
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from lbpbench.report.load import config_label, group_keys
from lbpbench.report.quality import META_EVAL, WALL, Target, choose_targets
from lbpbench.report.stats import BOOTSTRAP_SEED

ERRORBAR = ("ci", 95)
N_BOOT = 1000
DEFAULT_HEATMAP_AXES = ("message_size", "sharing")
HEATMAP_EXCLUDED = frozenset({"task", "seed", "baseline", "device", "data_dir"})
DPI = 100
WALL_GRID_POINTS = 50  # common wall-time grid per configuration for the quality-vs-wall figure


@dataclass
class ReportFigure:
    """One figure of the report: file stem, title, caption, and PNG bytes (None with a note if skipped)."""

    name: str
    title: str
    caption: str
    png: bytes | None = None
    note: str | None = None


def to_png(fig: Figure) -> bytes:
    """PNG bytes without metadata that varies between runs (matplotlib version in Software)."""
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None}, bbox_inches="tight")
    return buf.getvalue()


@contextmanager
def _fixed_global_numpy_seed(seed: int) -> Iterator[None]:
    """seaborn's strip-plot jitter uses numpy's global generator; pin it, then restore the caller's."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def labelled_runs(runs: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Runs with a `label` column naming their configuration, as in the summary table."""
    runs = runs.copy()
    runs["label"] = [config_label(row, keys) for _, row in runs.iterrows()] if len(runs) else []
    return runs


def _grid(n_panels: int, width: float = 5.5, height: float = 4.0) -> tuple[Figure, list[Axes]]:
    ncols = min(n_panels, 3)
    nrows = math.ceil(n_panels / ncols)
    fig = Figure(figsize=(width * ncols, height * nrows))
    axes = [fig.add_subplot(nrows, ncols, i + 1) for i in range(n_panels)]
    return fig, axes


def _task_metric(runs: pd.DataFrame, task: str) -> str:
    return str(runs.loc[runs["task"] == task, "metric"].iloc[0])


def _log_if_positive(ax: Axes, values: pd.Series, metric: str) -> None:
    if "loss" in metric and len(values) and (values > 0).all() and values.max() / values.min() > 20:
        ax.set_yscale("log")


def _legend_outside(fig: Figure, axes: list[Axes]) -> None:
    handles, labels = [], []
    for ax in axes:
        legend = ax.get_legend()
        if legend is not None:
            h, lab = ax.get_legend_handles_labels()
            for hh, ll in zip(h, lab, strict=False):
                if ll not in labels:
                    handles.append(hh)
                    labels.append(ll)
            legend.remove()
    if handles:
        fig.legend(
            handles, labels, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small", frameon=False
        )
    fig.tight_layout()


def curve_figure(
    runs: pd.DataFrame,
    curves: pd.DataFrame,
    keys: list[str],
    *,
    phase: str,
    metric: str | None = None,
    name: str,
    title: str,
) -> ReportFigure:
    """Mean curve and 95 % CI band over seeds per configuration, one panel per task.

    `metric=None` plots each task's primary metric (for the eval phase). Only ok runs are drawn:
    a diverged run's curve would stretch the axis without saying anything about the others.
    """
    caption = (
        f"{title}: mean over seeds with a 95 % bootstrap CI band (seaborn errorbar={ERRORBAR}, "
        f"seed={BOOTSTRAP_SEED}); ok runs only (diverged runs excluded)."
    )
    fig_out = ReportFigure(name=name, title=title, caption=caption)
    ok = labelled_runs(runs[runs["status"] == "ok"], keys)
    if ok.empty:
        fig_out.note = "no successful runs, so no curves."
        return fig_out
    merged = curves[curves["phase"] == phase].merge(
        ok[["run_id", "task", "label", "metric"]].rename(columns={"metric": "task_metric"}), on="run_id"
    )
    wanted = merged["task_metric"] if metric is None else metric
    data = merged[merged["metric"] == wanted]
    if data.empty:
        fig_out.note = f"the results hold no '{phase}' curves of {metric or 'the tasks’ metrics'}."
        return fig_out
    tasks = sorted(data["task"].unique())
    fig, axes = _grid(len(tasks))
    hue_order = sorted(data["label"].unique())
    with sns.axes_style("whitegrid"):
        for ax, task in zip(axes, tasks, strict=True):
            sel = data[data["task"] == task]
            sns.lineplot(
                data=sel,
                x="step",
                y="value",
                hue="label",
                hue_order=hue_order,
                errorbar=ERRORBAR,
                n_boot=N_BOOT,
                seed=BOOTSTRAP_SEED,
                ax=ax,
            )
            y_name = metric or _task_metric(runs, task)
            ax.set_title(task)
            ax.set_xlabel("meta-step" if phase == "meta_train" else "inner step")
            ax.set_ylabel(y_name)
            _log_if_positive(ax, sel["value"], y_name)
    _legend_outside(fig, axes)
    fig_out.png = to_png(fig)
    return fig_out


def final_point_figure(runs: pd.DataFrame, keys: list[str]) -> ReportFigure:
    """Final metric per configuration: mean with 95 % CI (point) and each seed (strip), per task."""
    title = "Final metric per configuration"
    caption = (
        "Final primary metric: mean with a 95 % bootstrap CI (point) and each seed (dots); ok runs "
        "only, one panel per task."
    )
    fig_out = ReportFigure(name="final_metric", title=title, caption=caption)
    ok = labelled_runs(runs[(runs["status"] == "ok") & np.isfinite(runs["final"])], keys)
    if ok.empty:
        fig_out.note = "no successful runs, so no final metrics."
        return fig_out
    tasks = sorted(ok["task"].unique())
    n_labels = ok.groupby("task")["label"].nunique().max()
    fig, axes = _grid(len(tasks), width=max(4.0, 0.55 * n_labels + 2.0), height=4.5)
    with sns.axes_style("whitegrid"), _fixed_global_numpy_seed(BOOTSTRAP_SEED):
        for ax, task in zip(axes, tasks, strict=True):
            sel = ok[ok["task"] == task]
            order = sorted(sel["label"].unique())
            sns.stripplot(
                data=sel, x="label", y="final", order=order, color="0.55", size=4, jitter=0.15, ax=ax
            )
            sns.pointplot(
                data=sel,
                x="label",
                y="final",
                order=order,
                errorbar=ERRORBAR,
                n_boot=N_BOOT,
                seed=BOOTSTRAP_SEED,
                linestyle="none",
                color="C0",
                markers="D",
                capsize=0.2,
                ax=ax,
            )
            ax.set_title(task)
            ax.set_xlabel("")
            ax.set_ylabel(_task_metric(runs, task))
            ax.tick_params(axis="x", labelrotation=60)
            for tick in ax.get_xticklabels():
                tick.set_horizontalalignment("right")
    fig.tight_layout()
    fig_out.png = to_png(fig)
    return fig_out


def choose_heatmap_axes(
    runs: pd.DataFrame, axes: tuple[str, str] | None = None
) -> tuple[tuple[str, str] | None, str | None]:
    """The two axes to cross, and a note when the default could not be used.

    Default message_size x sharing; if either does not vary over the learned runs, the two varying
    axes with the most levels (ties: table order); None when fewer than two axes vary.
    """
    learned = runs[runs["baseline"] == ""]
    if axes is not None:
        missing = [a for a in axes if a not in runs.columns]
        if missing:
            return None, f"heatmap axis {', '.join(missing)} is not a column of runs.parquet."
        return (axes[0], axes[1]), None
    from lbpbench.report.load import config_columns

    levels = {
        c: learned[c].nunique(dropna=False)
        for c in config_columns(runs)
        if c not in HEATMAP_EXCLUDED and len(learned)
    }
    varying = {c: n for c, n in levels.items() if n > 1}
    if all(a in varying for a in DEFAULT_HEATMAP_AXES):
        return DEFAULT_HEATMAP_AXES, None
    if len(varying) < 2:
        return None, (
            f"fewer than two settings vary over the learned runs ({', '.join(varying) or 'none'}), "
            "so there is no heatmap."
        )
    order = list(varying)
    best = sorted(order, key=lambda c: (-varying[c], order.index(c)))[:2]
    note = (
        f"The default axes {DEFAULT_HEATMAP_AXES[0]} x {DEFAULT_HEATMAP_AXES[1]} do not both vary over the "
        f"learned runs; using {best[0]} x {best[1]}, the varying axes with the most levels."
    )
    return (best[0], best[1]), note


def heatmap_figures(runs: pd.DataFrame, axes: tuple[str, str] | None = None) -> list[ReportFigure]:
    """Mean final metric over two axes, and the companion diverged-fraction heatmap, one panel per task.

    Cells average over seeds and over every other axis, of learned (non-baseline) runs: ok runs for
    the metric, finished runs (ok + diverged) for the diverged fraction.
    """
    chosen, note = choose_heatmap_axes(runs, axes)
    final = ReportFigure(name="heatmap_final", title="Heatmap: mean final metric", caption="")
    diverged = ReportFigure(name="heatmap_diverged", title="Heatmap: diverged fraction", caption="")
    if chosen is None:
        final.note = diverged.note = note
        return [final, diverged]
    y_axis, x_axis = chosen
    learned = runs[runs["baseline"] == ""].copy()
    learned["is_diverged"] = (learned["status"] == "diverged").astype(float)
    ok = learned[(learned["status"] == "ok") & np.isfinite(learned["final"])]
    finished = learned[learned["status"] != "failed"]
    extra = f" {note}" if note else ""
    final.caption = (
        f"Mean final metric over {y_axis} x {x_axis} (learned runs, ok seeds, averaged over the "
        f"other axes).{extra}"
    )
    diverged.caption = (
        f"Fraction of finished learned runs (ok + diverged) that diverged, over {y_axis} x {x_axis}.{extra}"
    )
    for out, data, value, fmt, cmap in (
        (final, ok, "final", ".3g", "viridis"),
        (diverged, finished, "is_diverged", ".0%", "Reds"),
    ):
        if data.empty:
            out.note = "no runs to show."
            continue
        tasks = sorted(data["task"].unique())
        fig, panels = _grid(len(tasks), width=5.0, height=4.0)
        for ax, task in zip(panels, tasks, strict=True):
            sel = data[data["task"] == task]
            table = sel.pivot_table(index=y_axis, columns=x_axis, values=value, aggfunc="mean", dropna=False)
            kwargs = {"vmin": 0.0, "vmax": 1.0} if value == "is_diverged" else {}
            sns.heatmap(table, annot=True, fmt=fmt, cmap=cmap, ax=ax, cbar=True, **kwargs)
            metric = _task_metric(runs, task)
            ax.set_title(f"{task} ({metric})" if value == "final" else task)
        fig.tight_layout()
        out.png = to_png(fig)
    return [final, diverged]


def _spans_a_decade(values: pd.Series, metric: str) -> bool:
    v = values[np.isfinite(values)]
    return "loss" in metric and len(v) > 0 and bool((v > 0).all()) and v.max() / v.min() > 10


def meta_eval_data(
    runs: pd.DataFrame, curves: pd.DataFrame, keys: list[str], targets: dict[str, Target]
) -> pd.DataFrame:
    """meta_eval rows of ok runs in the metric of each task's X (else the task's primary metric), one
    row per run and meta-step: run_id, task, label, metric, step, value, wall_s (nan when unrecorded)."""
    columns = ["run_id", "task", "label", "metric", "step", "value", WALL]
    meta = curves[curves["phase"] == META_EVAL]
    ok = labelled_runs(runs[(runs["status"] == "ok") & runs["run_id"].isin(set(meta["run_id"]))], keys)
    if ok.empty:
        return pd.DataFrame(columns=columns)
    ok["plot_metric"] = [
        targets[str(t)].metric if str(t) in targets else str(m)
        for t, m in zip(ok["task"], ok["metric"], strict=True)
    ]
    merged = meta.merge(ok[["run_id", "task", "label", "plot_metric"]], on="run_id")
    values = merged[merged["metric"] == merged["plot_metric"]]
    walls = merged.loc[merged["metric"] == WALL, ["run_id", "step", "value"]].rename(columns={"value": WALL})
    data = values.drop(columns=["phase", "plot_metric"]).merge(walls, on=["run_id", "step"], how="left")
    data["task"] = data["task"].astype(str)
    return data[columns].sort_values(["task", "label", "run_id", "step"]).reset_index(drop=True)


def on_wall_grid(data: pd.DataFrame, points: int = WALL_GRID_POINTS) -> pd.DataFrame:
    """Each seed's curve linearly interpolated onto one wall-time grid per configuration (task, label).

    Seeds take different wall seconds to the same meta-step, so their evaluations fall at different
    times; averaging needs common x values. The grid runs from the earliest first evaluation to the
    latest last one; before its first evaluation a seed has no value (nan, left out of the mean), after
    its last one it keeps its last value (its training had ended there).
    """
    frames = []
    timed = data[np.isfinite(data[WALL].astype(float))]
    for (task, label), conf in timed.groupby(["task", "label"], sort=True):
        per_run = [g.sort_values(WALL) for _, g in conf.groupby("run_id", sort=True)]
        start = min(float(g[WALL].iloc[0]) for g in per_run)
        end = max(float(g[WALL].iloc[-1]) for g in per_run)
        grid = np.linspace(start, end, points) if end > start else np.array([start])
        for g in per_run:
            x, y = g[WALL].to_numpy(dtype=float), g["value"].to_numpy(dtype=float)
            frames.append(
                pd.DataFrame(
                    {
                        "run_id": g["run_id"].iloc[0],
                        "task": task,
                        "label": label,
                        WALL: grid,
                        "value": np.interp(grid, x, y, left=np.nan, right=y[-1]),
                    }
                )
            )
    if not frames:
        return pd.DataFrame(columns=["run_id", "task", "label", WALL, "value"])
    return pd.concat(frames, ignore_index=True)


def quality_figures(
    runs: pd.DataFrame, curves: pd.DataFrame, keys: list[str], targets: dict[str, Target]
) -> list[ReportFigure]:
    """Quality during meta-training against meta-step and against meta-training wall seconds: mean and
    95 % CI band over seeds per configuration, one panel per task, a dashed line at the task's X."""
    band = (
        f"mean over seeds with a 95 % bootstrap CI band (seaborn errorbar={ERRORBAR}, "
        f"seed={BOOTSTRAP_SEED}); "
        "ok runs with meta_eval records only; dashed line: the task's target X (see the targets table)"
    )
    by_step = ReportFigure(
        name="quality_vs_step",
        title="Quality against meta-step",
        caption="Primary metric on the fixed evaluation tasks during meta-training (phase meta_eval) "
        f"against meta-step: {band}.",
    )
    by_wall = ReportFigure(
        name="quality_vs_wall",
        title="Quality against meta-training wall time",
        caption="Primary metric on the fixed evaluation tasks during meta-training (phase meta_eval) "
        "against the meta-training wall seconds the run had spent (wall_s; a seed batch's runs count "
        f"their own share): {band}. Seeds reach a meta-step at different times, so each seed's curve is "
        f"interpolated linearly onto a common grid of {WALL_GRID_POINTS} points per configuration (from "
        "the earliest first evaluation to the latest last one; before its first evaluation a seed has "
        "no value, after its last it keeps its last value: a draw abandoned on the plateau stays at the "
        "value it was abandoned with) before averaging.",
    )
    data = meta_eval_data(runs, curves, keys, targets)
    if data.empty:
        by_step.note = by_wall.note = (
            "no successful run recorded evaluations during meta-training (phase meta_eval, written by runs "
            "with eval_every > 0); older results and baselines have none."
        )
        return [by_step, by_wall]
    missing = sorted(set(labelled_runs(runs[runs["status"] == "ok"], keys)["label"]) - set(data["label"]))
    if missing:
        extra = f" Not drawn, no meta_eval records: {', '.join(missing)}."
        by_step.caption += extra
        by_wall.caption += extra
    gridded = on_wall_grid(data)
    for out, frame, x, x_label in (
        (by_step, data, "step", "meta-step"),
        (by_wall, gridded, WALL, "meta-training wall time (s)"),
    ):
        if frame.empty:
            out.note = "the meta_eval records hold no wall_s, so there is no wall-time axis."
            continue
        tasks = sorted(frame["task"].unique())
        fig, axes = _grid(len(tasks))
        hue_order = sorted(frame["label"].unique())
        with sns.axes_style("whitegrid"):
            for ax, task in zip(axes, tasks, strict=True):
                sel = frame[frame["task"] == task]
                sns.lineplot(
                    data=sel,
                    x=x,
                    y="value",
                    hue="label",
                    hue_order=hue_order,
                    errorbar=ERRORBAR,
                    n_boot=N_BOOT,
                    seed=BOOTSTRAP_SEED,
                    ax=ax,
                )
                metric = str(data.loc[data["task"] == task, "metric"].iloc[0])
                log = _spans_a_decade(data.loc[data["task"] == task, "value"], metric)
                if log:
                    ax.set_yscale("log")
                target = targets.get(task)
                title = task
                if target is not None and target.metric == metric:
                    title = f"{task}: X = {target.value:.4g} ({target.short})"
                    if not (log and target.value <= 0):
                        ax.axhline(
                            target.value, color="0.2", linestyle="--", linewidth=1.2, label="X (target)"
                        )
                ax.set_title(title)
                ax.set_xlabel(x_label)
                ax.set_ylabel(metric)
        _legend_outside(fig, axes)
        out.png = to_png(fig)
    return [by_step, by_wall]


def all_figures(
    runs: pd.DataFrame,
    curves: pd.DataFrame,
    group_by: list[str] | None = None,
    heatmap_axes: tuple[str, str] | None = None,
    targets: dict[str, float] | None = None,
) -> list[ReportFigure]:
    """Every figure of the report, in reading order; `targets` overrides X per task (see quality)."""
    keys = group_keys(runs, group_by)
    chosen, _ = choose_targets(runs, targets)
    return [
        curve_figure(
            runs,
            curves,
            keys,
            phase="meta_train",
            metric="meta_loss",
            name="meta_train",
            title="Meta-training curves",
        ),
        curve_figure(
            runs,
            curves,
            keys,
            phase="eval",
            metric=None,
            name="eval_curves",
            title="Inner-loop evaluation curves",
        ),
        *quality_figures(runs, curves, keys, chosen),
        final_point_figure(runs, keys),
        *heatmap_figures(runs, heatmap_axes),
    ]
