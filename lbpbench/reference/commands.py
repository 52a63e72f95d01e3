"""`lbpbench reference verify`: replay a golden file and print per-step maximum errors."""

from __future__ import annotations

from pathlib import Path

import click

from lbpbench.reference.golden import verify_golden


@click.group("reference")
def reference_group() -> None:
    """Parity with the authors' released MPLP checkpoints."""


@reference_group.command("verify")
@click.argument("golden", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--checkpoint",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Flat .npy learner checkpoint; default: the one the golden file names, beside it.",
)
def verify_command(golden: Path, checkpoint: Path | None) -> None:
    """Replay every task of GOLDEN and exit 0 only when all errors are within LAYOUT.md §8."""
    try:
        report = verify_golden(golden, checkpoint)
    except (ValueError, OSError) as exc:  # missing, damaged, incomplete input: exit 2, one line
        from lbpbench.cli import BadInput

        raise BadInput(str(exc)) from exc
    setup = report.setup
    net = "-".join(map(str, (setup.spec.input_size, *setup.spec.layer_sizes)))
    click.echo(
        f"golden {golden.name}: {setup.learner} learner, k={setup.message_size}, hidden={setup.hidden_size}, "
        f"sharing={report.sharing}, net {net}, checkpoint {setup.checkpoint.name}"
    )
    click.echo(f"{'step':>4}  {'params':>10}  {'messages':>10}  {'carries':>10}  metrics")
    for s in report.steps:

        def worst(d: dict[str, float]) -> str:
            return f"{max(d.values()):10.3g}" if d else f"{'-':>10}"

        metrics = ", ".join(f"{k}={v:.3g}" for k, v in s.metrics.items())
        click.echo(f"{s.step:>4}  {worst(s.params)}  {worst(s.messages)}  {worst(s.carries)}  {metrics}")
    if report.ok:
        click.echo("PASS: every parameter, message, carry and loss is within tolerance")
        return
    for failure in report.failures:
        click.echo(f"FAIL {failure}", err=True)
    raise SystemExit(1)
