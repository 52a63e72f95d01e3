"""`lbpbench train` and `lbpbench eval`: one run from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import click

from lbpbench.harness.config import SHARINGS, RunConfig
from lbpbench.harness.evaluate import Evaluation


def _print_evaluation(evaluation: Evaluation) -> None:
    metrics = [m for m in evaluation.per_task if m != "train_loss"] + ["train_loss"]
    click.echo("step  " + "  ".join(f"{m:>14}" for m in metrics))
    steps = next(iter(evaluation.per_task.values())).shape[1]
    for s in range(steps):
        values = [evaluation.mean(m, s) for m in metrics]
        click.echo(f"{s:>4}  " + "  ".join(f"{v:>14.6g}" for v in values))


@click.command("train")
@click.option("--task", default="sinusoid-5x10", show_default=True)
@click.option("--learner", default="stateful", show_default=True)
@click.option("--aggregator", default="mean", show_default=True)
@click.option("--message-size", type=int, default=8, show_default=True)
@click.option("--hidden-size", type=int, default=15, show_default=True)
@click.option("--sharing", type=click.Choice(SHARINGS), default="layer", show_default=True)
@click.option("--baseline", default=None, help="Run a baseline (sgd, adam, maml, ...) instead of a learner.")
@click.option("--steps", "meta_steps", type=int, default=200, show_default=True, help="Meta-training steps.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--meta-batch", type=int, default=None, help="Tasks per meta-step (default: the task's).")
@click.option("--meta-lr", type=float, default=None, help="Outer Adam learning rate (default: the task's).")
@click.option("--meta-loss", type=click.Choice(["mixed", "heldout"]), default="mixed", show_default=True)
@click.option(
    "--truncation", type=int, default=0, show_default=True, help="Backpropagate through the last N steps."
)
@click.option(
    "--compile/--no-compile", default=False, help="torch.compile the inner step (slow start, faster steps)."
)
@click.option("--checkpointing/--no-checkpointing", default=False, help="Per-step activation checkpointing.")
@click.option(
    "--learned-prior/--no-learned-prior", default=False, help="Meta-learn the initial parameters too."
)
@click.option("--eval-tasks", type=int, default=100, show_default=True)
@click.option(
    "--eval-every", type=int, default=0, show_default=True, help="Meta-steps between evaluations (0: end)."
)
@click.option(
    "--eval-steps", type=int, default=None, help="Inner steps at evaluation (beyond the horizon allowed)."
)
@click.option("--device", type=click.Choice(["cpu", "cuda", "auto"]), default="cpu", show_default=True)
@click.option("--data-dir", type=click.Path(file_okay=False), default=None, help="Folder of IDX files.")
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--quiet", is_flag=True, help="No progress bar.")
def train_command(out: Path, quiet: bool, compile: bool, **settings: object) -> None:
    """Meta-train one learner (or run one baseline), evaluate it, write OUT/."""
    from lbpbench.harness.run import run_config

    try:
        config = RunConfig(**settings)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(config.to_dict(), indent=2))
    result = run_config(config, out, progress=not quiet, compile=compile)
    summary = {
        "status": result.status,
        "final": result.final,
        "wall_time_s": result.wall_time_s,
        "error": result.error,
    }
    (out / "status.json").write_text(json.dumps(summary, indent=2))
    if result.status == "failed":
        raise click.ClickException(f"run failed:\n{result.error}")
    finals = ", ".join(f"{k}={v:.6g}" for k, v in result.final.items())
    click.echo(f"{config.method} on {config.task}: {result.status} in {result.wall_time_s:.1f}s; {finals}")


@click.command("eval")
@click.argument("run_dir", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--reference",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="Evaluate a released reference checkpoint (.npy) instead of a run folder.",
)
@click.option(
    "--prior",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="Flat .npy initial parameters to start every task from (with --reference).",
)
@click.option("--task", default="sinusoid-5x10", show_default=True, help="With --reference.")
@click.option("--learner", default="stateful", show_default=True, help="With --reference.")
@click.option("--message-size", type=int, default=8, show_default=True, help="With --reference.")
@click.option("--hidden-size", type=int, default=15, show_default=True, help="With --reference.")
@click.option("--eval-tasks", type=int, default=None, help="Fresh tasks (default: the run's, or 100).")
@click.option("--eval-steps", type=int, default=None, help="Inner steps (beyond the horizon allowed).")
def eval_command(
    run_dir: Path | None,
    reference: Path | None,
    prior: Path | None,
    task: str,
    learner: str,
    message_size: int,
    hidden_size: int,
    eval_tasks: int | None,
    eval_steps: int | None,
) -> None:
    """Evaluate a trained run folder, or a reference checkpoint, on fresh tasks; print per-step metrics."""
    from lbpbench.harness.saved import evaluate_reference_checkpoint, evaluate_run_dir

    if (run_dir is None) == (reference is None):
        raise click.UsageError("give either RUN_DIR or --reference CHECKPOINT")
    try:
        if reference is not None:
            evaluation = evaluate_reference_checkpoint(
                task, reference, learner, message_size, hidden_size, prior, eval_tasks or 100, eval_steps
            )
            click.echo(f"reference {reference.name} on {task}")
        else:
            config, evaluation = evaluate_run_dir(run_dir, eval_tasks, eval_steps)
            click.echo(f"{config.method} on {config.task} from {run_dir}")
    except (ValueError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from exc
    _print_evaluation(evaluation)
