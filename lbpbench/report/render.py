"""Render a sweep's report: a self-contained `index.html`, `report.md` with `figures/`, and `tables/`.

The HTML embeds every figure as a base64 PNG and every table as HTML (pytest-html style), so the one
file can be mailed or attached to an issue. Nothing time-dependent is written, so the same results
and the same environment give byte-identical reports, which keeps committed reports diffable.
"""

from __future__ import annotations

import base64
import html
import sys
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import pandas as pd

from lbpbench.errors import exception_line
from lbpbench.report.figures import ReportFigure, all_figures
from lbpbench.report.load import load_results
from lbpbench.report.quality import targets_table
from lbpbench.report.regions import REGIONS_HEADING, REGIONS_INTRO, regions_table
from lbpbench.report.restarts import RESTARTS_HEADING, RESTARTS_INTRO, restarts_table
from lbpbench.report.settings import SETTINGS_HEADING, SETTINGS_INTRO, settings_table
from lbpbench.report.tables import (
    Summary,
    display_table,
    failures_table,
    summarise,
    to_markdown,
    write_tables,
)

PACKAGES = ("lbpbench", "torch", "numpy", "pandas", "pyarrow", "seaborn", "matplotlib", "scipy")
RUN_ENV_COLUMNS = ("device", "git_commit", "torch_version", "lbpbench_version")


@dataclass
class Report:
    """Everything a report shows, computed once and written as HTML and Markdown."""

    title: str
    source: str
    runs: pd.DataFrame
    summary: Summary
    failures: pd.DataFrame
    figures: list[ReportFigure]
    environment: dict[str, Any]
    alerts: list[str] = field(default_factory=list)
    preface: str = ""  # the author's written findings (Markdown), shown first
    settings: pd.DataFrame | None = None  # how each configuration was trained (report.settings)
    regions: pd.DataFrame | None = None  # centre against edges, where runs recorded it (report.regions)
    restarts: pd.DataFrame | None = None  # escapes and their cost, where runs used restarts (report.restarts)


@dataclass
class ReportFiles:
    """Paths written by `write_report`."""

    out_dir: Path
    index_html: Path
    report_md: Path
    figures: list[Path]
    tables: list[Path]


def package_versions() -> dict[str, str]:
    """Installed versions of the packages a result depends on (metadata only: importing torch is slow)."""
    out = {}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def plugin_rows() -> tuple[list[dict[str, str]], str | None]:
    """Registered components with their plugin and version; a note instead when the registry fails."""
    try:
        from lbpbench.registry import get_registry

        components = get_registry().all()
    except Exception as exc:  # noqa: BLE001 - a broken plugin must not stop a report
        return [], f"plugin registry unavailable: {type(exc).__name__}: {exc}"
    rows = [
        {
            "kind": str(getattr(c, "kind", "")),
            "name": str(getattr(c, "name", "")),
            "plugin": str(getattr(c, "plugin", "")),
            "version": str(getattr(c, "version", "") or "-"),
        }
        for c in components
    ]
    return rows, None


def environment(runs: pd.DataFrame) -> dict[str, Any]:
    """Where the results came from (runs.parquet) and what rendered them (this process)."""
    recorded = {}
    for column in RUN_ENV_COLUMNS:
        if column in runs.columns:
            values = sorted({str(v) for v in runs[column].dropna() if str(v)})
            recorded[column] = ", ".join(values) if values else "unknown"
        else:
            recorded[column] = "not recorded"
    plugins, plugin_note = plugin_rows()
    return {
        "recorded": recorded,
        "packages": package_versions(),
        "python": sys.version.split()[0],
        "plugins": plugins,
        "plugin_note": plugin_note,
    }


def build_report(
    results_dir: str | Path,
    group_by: list[str] | None = None,
    heatmap_axes: tuple[str, str] | None = None,
    targets: dict[str, float] | None = None,
) -> Report:
    """Load a results folder and compute the tables and figures (raises ReportError on bad input).

    `targets` overrides the time-to-quality target X per task (`--target TASK=VALUE`).
    """
    path = Path(results_dir)
    runs, curves = load_results(path)
    summary = summarise(runs, curves, group_by, targets)
    failures = failures_table(runs)
    figures = all_figures(runs, curves, group_by, heatmap_axes, targets)
    counts = runs["status"].value_counts()
    alerts = []
    n_ok = int(counts.get("ok", 0))
    if n_ok == 0:
        alerts.append(
            f"No run succeeded: all {len(runs)} runs failed or diverged, so there are no metrics to show. "
            "Their error texts are listed under 'Failed and diverged runs'."
        )
    sweeps = sorted({str(s) for s in runs["sweep"].dropna() if str(s)}) if "sweep" in runs else []
    title = f"lbpbench report: {', '.join(sweeps) or path.name}"
    return Report(
        title=title,
        source=str(path),
        runs=runs,
        summary=summary,
        failures=failures,
        figures=figures,
        environment=environment(runs),
        alerts=alerts,
        settings=settings_table(runs, curves),
        regions=regions_table(runs, curves, summary.keys),
        restarts=restarts_table(runs, curves, summary.keys, summary.targets),
    )


def _status_line(runs: pd.DataFrame) -> str:
    counts = runs["status"].value_counts()
    parts = [f"{int(counts.get(s, 0))} {s}" for s in ("ok", "diverged", "failed")]
    others = [f"{int(n)} {s}" for s, n in counts.items() if s not in ("ok", "diverged", "failed")]
    return f"{len(runs)} runs: " + ", ".join(parts + others)


def _env_rows(env: dict[str, Any]) -> list[tuple[str, str]]:
    rows = [(f"runs: {k}", v) for k, v in env["recorded"].items()]
    rows += [(f"report: {k}", v) for k, v in env["packages"].items()]
    rows.append(("report: python", env["python"]))
    return rows


def _failures_for_display(failures: pd.DataFrame) -> pd.DataFrame:
    """The failures table as shown: each error's exception line, not the head of its traceback
    (the full text stays in tables/failures.parquet and .csv)."""
    shown = failures.copy()
    shown["error"] = shown["error"].map(exception_line)
    shown["error"] = shown["error"].map(lambda e: e if len(e) <= 300 else e[:297] + "...")
    return shown


TARGETS_HEADING = "Time-to-quality targets X"
TARGETS_INTRO = (
    "X per task for the columns 'meta-steps to reach X', 'wall seconds to reach X' and 'reached' "
    "(override with `lbpbench report --target TASK=VALUE`):"
)


def _settings(report: Report) -> pd.DataFrame:
    return report.settings if report.settings is not None else settings_table(report.runs)


def _has_regions(report: Report) -> bool:
    return report.regions is not None and not report.regions.empty


def _has_restarts(report: Report) -> bool:
    return report.restarts is not None and not report.restarts.empty


def render_markdown(report: Report) -> str:
    """`report.md`: the same content as the HTML, with figures linked from `figures/`."""
    out = [f"# {report.title}", "", f"Results: `{report.source}` — {_status_line(report.runs)}.", ""]
    out += [f"> **{a}**\n" for a in report.alerts]
    if report.preface:
        out += [report.preface.strip(), ""]
    out += ["## Summary per configuration", "", to_markdown(display_table(report.summary))]
    targets = targets_table(report.summary.targets)
    out += [f"**{TARGETS_HEADING}.** {TARGETS_INTRO}", ""]
    out += [to_markdown(targets) if len(targets) else "None: no task has a target.\n"]
    out += [f"- {n}" for n in report.summary.notes] + [""]
    out += [f"## {SETTINGS_HEADING}", "", SETTINGS_INTRO, "", to_markdown(_settings(report))]
    if _has_regions(report):
        out += [f"## {REGIONS_HEADING}", "", REGIONS_INTRO, "", to_markdown(report.regions)]
    if _has_restarts(report):
        out += [f"## {RESTARTS_HEADING}", "", RESTARTS_INTRO, "", to_markdown(report.restarts)]
    out += ["## Failed and diverged runs", ""]
    if report.failures.empty:
        out += ["None.", ""]
    else:
        out += [to_markdown(_failures_for_display(report.failures))]
    out += ["## Figures", ""]
    for fig in report.figures:
        out += [f"### {fig.title}", ""]
        if fig.png is None:
            out += [f"_Not drawn: {fig.note}_", ""]
        else:
            out += [f"![{fig.title}](figures/{fig.name}.png)", "", fig.caption, ""]
    out += ["## Environment", "", "| item | value |", "|---|---|"]
    out += [f"| {k} | {v} |" for k, v in _env_rows(report.environment)]
    out += ["", "### Plugins", ""]
    plugins = report.environment["plugins"]
    if plugins:
        out.append(to_markdown(pd.DataFrame(plugins)))
    else:
        out += [report.environment["plugin_note"] or "No components registered.", ""]
    return "\n".join(out).rstrip() + "\n"


CSS = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 1400px; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0 1em; }
th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: right; }
th { background: #f0f0f0; }
td:first-child, th:first-child { text-align: left; }
.alert { background: #fdecea; border-left: 4px solid #d93025; padding: 0.6em 1em; }
.note { color: #555; font-size: 0.9em; }
figure { margin: 1em 0 2em; }
figure img { max-width: 100%; }
figcaption { color: #555; font-size: 0.9em; }
"""


def _html_table(frame: pd.DataFrame, table_id: str) -> str:
    if frame.empty:
        return f'<p class="note" id="{table_id}">(no rows)</p>'
    return frame.to_html(index=False, table_id=table_id, na_rep="n/a", escape=True, border=0)


def _preface_html(text: str) -> list[str]:
    """Headings (#), bullet lists (- ) and paragraphs: enough Markdown for a findings section."""
    out: list[str] = []
    for block in [b for b in text.strip().split("\n\n") if b.strip()]:
        lines = block.strip().splitlines()
        if lines[0].startswith("#"):
            level = min(6, len(lines[0]) - len(lines[0].lstrip("#")) + 1)
            out.append(f"<h{level}>{html.escape(lines[0].lstrip('#').strip())}</h{level}>")
            lines = lines[1:]
            if not lines:
                continue
        if all(line.startswith("- ") or line.startswith("  ") for line in lines):
            items, current = [], ""
            for line in lines:
                if line.startswith("- "):
                    if current:
                        items.append(current)
                    current = line[2:]
                else:
                    current += " " + line.strip()
            items.append(current)
            out.append("<ul>" + "".join(f"<li>{html.escape(i)}</li>" for i in items) + "</ul>")
        else:
            out.append(f"<p>{html.escape(' '.join(line.strip() for line in lines))}</p>")
    return out


def _targets_display(summary: Summary) -> pd.DataFrame:
    shown = targets_table(summary.targets)
    shown["X"] = shown["X"].map(lambda v: f"{v:.4g}")
    return shown


def render_html(report: Report) -> str:
    """`index.html`: self-contained (inline CSS, figures as data URIs), no scripts, no timestamps."""
    e = html.escape
    body = [
        f"<h1>{e(report.title)}</h1>",
        f"<p>Results: <code>{e(report.source)}</code> — {e(_status_line(report.runs))}.</p>",
    ]
    body += [f'<p class="alert">{e(a)}</p>' for a in report.alerts]
    body += _preface_html(report.preface)
    body += ["<h2>Summary per configuration</h2>", _html_table(display_table(report.summary), "summary")]
    body.append(f"<p><b>{e(TARGETS_HEADING)}.</b> {e(TARGETS_INTRO.replace('`', ''))}</p>")
    body.append(_html_table(_targets_display(report.summary), "targets"))
    body += ["<ul class='note'>"] + [f"<li>{e(n)}</li>" for n in report.summary.notes] + ["</ul>"]
    body += [f"<h2>{e(SETTINGS_HEADING)}</h2>", f"<p class='note'>{e(SETTINGS_INTRO.replace('`', ''))}</p>",
             _html_table(_settings(report), "settings")]
    if _has_regions(report):
        body += [f"<h2>{e(REGIONS_HEADING)}</h2>", f"<p class='note'>{e(REGIONS_INTRO)}</p>",
                 _html_table(report.regions, "regions")]
    if _has_restarts(report):
        body += [f"<h2>{e(RESTARTS_HEADING)}</h2>",
                 f"<p class='note'>{e(RESTARTS_INTRO.replace('`', ''))}</p>",
                 _html_table(report.restarts, "restarts")]
    body += ["<h2>Failed and diverged runs</h2>"]
    body.append(
        "<p>None.</p>"
        if report.failures.empty
        else _html_table(_failures_for_display(report.failures), "failures")
    )
    body.append("<h2>Figures</h2>")
    for fig in report.figures:
        body.append(f'<h3 id="fig-{fig.name}">{e(fig.title)}</h3>')
        if fig.png is None:
            body.append(f'<p class="note">Not drawn: {e(fig.note or "")}</p>')
            continue
        data = base64.b64encode(fig.png).decode("ascii")
        body.append(
            f'<figure><img alt="{e(fig.title)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{e(fig.caption)}</figcaption></figure>"
        )
    body.append("<h2>Environment</h2>")
    body.append(
        _html_table(pd.DataFrame(_env_rows(report.environment), columns=["item", "value"]), "environment")
    )
    body.append("<h3>Plugins</h3>")
    plugins = report.environment["plugins"]
    if plugins:
        body.append(_html_table(pd.DataFrame(plugins), "plugins"))
    else:
        body.append(
            f'<p class="note">{e(report.environment["plugin_note"] or "No components registered.")}</p>'
        )
    return (
        "<!DOCTYPE html>\n<html lang='en'>\n<head>\n<meta charset='utf-8'>\n"
        f"<title>{e(report.title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


def write_report(report: Report, out_dir: str | Path) -> ReportFiles:
    """Write index.html, report.md, figures/*.png and tables/*.{parquet,csv,md} into out_dir."""
    out = Path(out_dir)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    figure_paths = []
    for fig in report.figures:
        path = out / "figures" / f"{fig.name}.png"
        if fig.png is None:
            path.unlink(missing_ok=True)  # a stale image from an earlier report would mislead
            continue
        path.write_bytes(fig.png)
        figure_paths.append(path)
    tables = write_tables(
        {
            "summary": report.summary.table,
            "failures": report.failures,
            "targets": targets_table(report.summary.targets),
            "time_to_target": report.summary.time_to_target,
            **({"regions": report.regions} if _has_regions(report) else {}),
            **({"restarts": report.restarts} if _has_restarts(report) else {}),
        },
        out / "tables",
        display={
            "summary": display_table(report.summary),
            "failures": _failures_for_display(report.failures),
        },
    )
    index = out / "index.html"
    index.write_text(render_html(report), encoding="utf-8")
    md = out / "report.md"
    md.write_text(render_markdown(report), encoding="utf-8")
    return ReportFiles(out_dir=out, index_html=index, report_md=md, figures=figure_paths, tables=tables)


def make_report(
    results_dir: str | Path,
    out_dir: str | Path | None = None,
    group_by: list[str] | None = None,
    heatmap_axes: tuple[str, str] | None = None,
    preface: str = "",
    targets: dict[str, float] | None = None,
) -> ReportFiles:
    """Build and write a report; out_dir defaults to reports/<name of results_dir>; `targets`
    overrides the time-to-quality X per task."""
    results = Path(results_dir)
    target = Path(out_dir) if out_dir is not None else Path("reports") / results.resolve().name
    report = build_report(results, group_by, heatmap_axes, targets)
    report.preface = preface
    return write_report(report, target)
