"""Click commands `lbpbench report` and `lbpbench compare`; thin wrappers over render and compare.

lbpbench/cli.py registers them lazily (``COMMANDS``), so importing seaborn happens only when a
report is asked for.
"""

from __future__ import annotations

from pathlib import Path

import click

from lbpbench.report.load import ReportError


def _parse_axes(value: str | None) -> tuple[str, str] | None:
    if value is None:
        return None
    parts = [p.strip() for p in value.replace(",", " ").split() if p.strip()]
    if len(parts) != 2:
        raise click.BadParameter("give two axes, e.g. --heatmap message_size,sharing")
    return (parts[0], parts[1])


def _parse_targets(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> dict[str, float]:
    from lbpbench.report.quality import parse_targets

    try:
        return parse_targets(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


@click.command("report")
@click.argument("results_dir", type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    "output",
    type=click.Path(path_type=Path),
    default=None,
    help="Report folder (default: reports/<name of RESULTS_DIR>).",
)
@click.option(
    "--group-by",
    "group_by",
    multiple=True,
    help="Axis to group configurations by (repeatable; default: every setting that varies except seed). "
    "Task and method are always kept apart.",
)
@click.option(
    "--heatmap",
    "heatmap",
    default=None,
    help="Two axes for the heatmaps, e.g. 'message_size,sharing' (the default when both vary).",
)
@click.option(
    "--summary",
    "summary",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="Markdown file with written findings, shown at the top of the report.",
)
@click.option(
    "--target",
    "targets",
    multiple=True,
    metavar="TASK=VALUE",
    callback=_parse_targets,
    help="Time-to-quality target X for a task (repeatable; TASK may be a glob such as 'mnist-*'). "
    "Default: the tuned Adam baseline's final metric on the task in this sweep, else the built-in "
    "per-task default.",
)
def report_command(
    results_dir: Path,
    output: Path | None,
    group_by: tuple[str, ...],
    heatmap: str | None,
    summary: Path | None,
    targets: dict[str, float],
) -> None:
    """Write index.html, report.md, figures/ and tables/ for a sweep's results folder."""
    from lbpbench.report.render import make_report

    preface = summary.read_text(encoding="utf-8") if summary else ""
    try:
        files = make_report(
            results_dir, output, list(group_by) or None, _parse_axes(heatmap), preface, targets or None
        )
    except ReportError as exc:  # a missing or unreadable results folder: bad input, exit 2
        from lbpbench.cli import BadInput

        raise BadInput(str(exc)) from exc
    click.echo(f"wrote {files.index_html}")
    click.echo(f"wrote {files.report_md} ({len(files.figures)} figures, {len(files.tables)} table files)")


@click.command("compare")
@click.argument("dir_a", type=click.Path(path_type=Path))
@click.argument("dir_b", type=click.Path(path_type=Path))
@click.option(
    "--factor",
    type=click.FloatRange(min=1.0),
    default=1.1,
    show_default=True,
    help="Smallest ratio B/A (or A/B) worth marking; a Mann-Whitney U test must also give p < 0.05.",
)
def compare_command(dir_a: Path, dir_b: Path, factor: float) -> None:
    """Per-configuration ratios B/A of the final metric between two sweeps' results folders."""
    from lbpbench.report.compare import compare_results, format_comparison

    try:
        cmp = compare_results(dir_a, dir_b, factor)
    except ReportError as exc:  # a missing or unreadable results folder: bad input, exit 2
        from lbpbench.cli import BadInput

        raise BadInput(str(exc)) from exc
    click.echo(format_comparison(cmp, str(dir_a), str(dir_b)))
