"""`lbpbench train` and `lbpbench eval`: one run from the command line."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from lbpbench.errors import exception_line
from lbpbench.harness.compiling import compile_mode_option
from lbpbench.harness.config import (
    CHOICES,
    RunConfig,
    field_types,
    training_differences,
)
from lbpbench.harness.evaluate import Evaluation
from lbpbench.harness.presets import PRESET_KEY, apply_preset, preset_names


def _print_evaluation(evaluation: Evaluation) -> None:
    metrics = [m for m in evaluation.per_task if m != "train_loss"] + ["train_loss"]
    click.echo("step  " + "  ".join(f"{m:>14}" for m in metrics))
    steps = next(iter(evaluation.per_task.values())).shape[1]
    for s in range(steps):
        values = [evaluation.mean(m, s) for m in metrics]
        click.echo(f"{s:>4}  " + "  ".join(f"{v:>14.6g}" for v in values))


# One line of help per RunConfig field the command line shows; the options themselves (names,
# types, defaults, choices) are derived from RunConfig, so there is no second list of settings.
FIELD_HELP = {
    "task": "Task family.",
    "learner": "Learner family.",
    "aggregator": "Message aggregator.",
    "message_size": "Message channels k.",
    "hidden_size": "Hidden carry size of stateful learners.",
    "sharing": "Learner sharing across the network.",
    "activation": "Activation node type (default: the task's).",
    "mlp_widths": "Hidden widths of the learners' MLPs, comma-separated.",
    "untrained_message_mlp": "The reference's untrained message MLP (stateless learners).",
    "baseline": "Run a baseline (sgd, adam, maml, ...) instead of a learner.",
    "seed": "Seed of learner init, tasks and initialisations.",
    "learner_seed": "Seed of the learner's initial weights only (default: --seed); the rest follows --seed.",
    "learner_init_gain": "Scale of the learners' initial weight matrices (1: the drawn Glorot weights).",
    "meta_steps": "Meta-training steps.",
    "meta_batch": "Tasks per meta-step (default: the task's).",
    "meta_lr": "Outer Adam learning rate (default: the task's).",
    "meta_loss": "mixed: hint + held-out; heldout: MAML-style.",
    "hint_weight": "Weight of the hint loss in the mixed meta-loss.",
    "calibration": "frozen: standardised learner inputs (the paper); no-standardisation: raw inputs.",
    "loss_rule": "learned: the loss node has a learner (the paper); gradient: it sends x - t (p - t).",
    "lr_schedule": "Meta learning-rate schedule: constant, cosine (to 1 %), step (x0.1 at 1/2, 3/4).",
    "warmup_steps": "Linear warm-up of the meta learning rate over these meta-steps.",
    "grad_norm": "unit (per tensor, the paper), clip (global norm), none (default: the method's).",
    "clip_norm": "The global gradient norm that --grad-norm clip clips to.",
    "init_from": "Start from the learner of a trained run folder (e.g. results/trained/NAME) or of a "
                 "shipped zoo entry (zoo:NAME).",
    "truncation": "Backpropagate through the last N inner steps only (0: all).",
    "checkpointing": "Per-step activation checkpointing (less memory, more time).",
    "learned_prior": "Meta-learn the initial parameters too.",
    "init_pool": "Initialisations in the fixed pool (default: the task's).",
    "eval_tasks": "Evaluation tasks (fixed set, also used during meta-training).",
    "eval_every": "Meta-steps between evaluations during meta-training (0: only at the end).",
    "abandon_plateau_at": "Stop a member still on the task-average plateau (eval loss >= 0.9 x the "
                          "task average) at its first evaluation from this meta-step (0: never).",
    "eval_steps": "Inner steps at evaluation (beyond the trained horizon allowed).",
    "transfer_tasks": "Also evaluate the trained learner on these tasks, comma-separated.",
    "baseline_lrs": "Learning rates a baseline searches, comma-separated (default: its own grid).",
    "divergence_threshold": "A meta-loss above this ends the run as diverged.",
    "device": "cpu, cuda or auto.",
    "data_dir": "Folder of IDX files (image tasks).",
}
ALIASES = {"meta_steps": ("--steps",)}


class _ListOf(click.ParamType):
    """A comma-separated list of one item type ("80,40"); empty text is the empty list."""

    def __init__(self, item: type) -> None:
        self.item = item
        self.name = f"list of {item.__name__}"

    def convert(self, value: Any, param: Any, ctx: Any) -> list[Any]:
        if isinstance(value, list):
            return value
        try:
            return [self.item(v.strip()) for v in str(value).split(",") if v.strip()]
        except ValueError:
            self.fail(f"{value!r} is not a comma-separated list of {self.item.__name__}", param, ctx)


def run_config_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate a click command with one option per RunConfig field (types and defaults from it)."""
    defaults = RunConfig().to_dict()
    scalar = {"int": int, "float": float, "str": str}
    for name, annotation in reversed(list(field_types().items())):
        flag = "--" + name.replace("_", "-")
        base = annotation.replace(" | None", "")
        kwargs: dict[str, Any] = {"default": defaults[name], "help": FIELD_HELP.get(name, "")}
        if base == "bool":
            decls = [f"{flag}/--no-{name.replace('_', '-')}"]
        else:
            decls = [flag, *ALIASES.get(name, ())]
            if name in CHOICES:
                kwargs["type"] = click.Choice(CHOICES[name])
            elif base.startswith("list["):
                kwargs["type"] = _ListOf(scalar[base[len("list["):-1]])
                kwargs["default"] = None if defaults[name] is None else ",".join(map(str, defaults[name]))
            else:
                kwargs["type"] = scalar[base]
        command = click.option(*decls, name, show_default=defaults[name] is not None, **kwargs)(command)
    return command


@click.command("train")
@run_config_options
@click.option(
    "--compile/--no-compile", "compile_step", default=False,
    help="torch.compile the inner step (slow start, faster steps).",
)
@compile_mode_option
@click.option(
    "--preset", type=click.Choice(preset_names()), default=None,
    help="A named meta-training recipe (paper, fast: see lbpbench.harness.presets); options given "
    "on the command line win over it.",
)
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.pass_context
def train_command(ctx: click.Context, out: Path, quiet: bool, compile_step: bool, compile_mode: str | None,
                  preset: str | None, **settings: Any) -> None:
    """Meta-train one learner (or run one baseline), evaluate it, write OUT/ (the sweep's run-folder
    format). Re-running the same command resumes from OUT/checkpoint.pt."""
    from lbpbench.harness.run import run_config
    from lbpbench.registry import get_registry
    from lbpbench.sweep.checks import run_problems
    from lbpbench.sweep.executors import RunTask, execute_run
    from lbpbench.sweep.identity import identity_payload, run_id
    from lbpbench.sweep.store import RunFiles

    try:
        given = {k: v for k, v in settings.items()
                 if ctx.get_parameter_source(k) != click.core.ParameterSource.DEFAULT}
        config = RunConfig(**{**settings, **apply_preset({**given, PRESET_KEY: preset})})
        registry = get_registry()
        problems = run_problems(config, registry)  # names, task creation (data), memory
        if problems:
            raise ValueError("; ".join(problems))
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    files = RunFiles(out)
    saved = files.read_checkpoint() if out.is_dir() else None
    if saved is not None and saved.get("config") is not None:
        differences = training_differences(saved["config"], config)
        if differences:
            raise click.UsageError(
                f"{out} holds a checkpoint of a run with other settings ({'; '.join(differences)}); "
                "use another --out, or delete its checkpoint.pt to start over"
            )

    def runner(cfg: RunConfig, run_dir: Path, *, progress: bool = False) -> Any:
        compile_choice = compile_mode or compile_step
        return run_config(cfg, files, progress=not quiet, registry=registry, compile=compile_choice)

    from lbpbench.harness.threads import apply_fair_threads

    apply_fair_threads()  # a shared machine: only the free cores (unless OMP_NUM_THREADS says)
    identity = identity_payload(config)
    recorded = {k: v for k, v in identity.items() if k != "config"}
    task = RunTask(run_id(config), config.to_dict(), str(out), recorded)
    outcome = execute_run(task, runner)
    if outcome.status == "failed":
        line = exception_line(outcome.error)
        raise click.ClickException(f"run failed: {line} (traceback in {out / 'status.json'})")
    status = RunFiles(out).read_status()
    finals = ", ".join(f"{k}={float(v):.6g}" for k, v in (status.get("final") or {}).items())
    cause = f" ({outcome.error})" if outcome.status == "diverged" and outcome.error else ""
    took = f"{outcome.wall_time_s:.1f}s"
    click.echo(f"{config.method} on {config.task}: {outcome.status}{cause} in {took}; {finals}")


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
@click.option(
    "--eval-seed", type=click.IntRange(0, 2**63 - 1), default=None,
    help="Draw fresh tasks from this seed (default: the fixed evaluation tasks every run is scored on).",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable per-step metrics on stdout.")
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
    eval_seed: int | None,
    as_json: bool,
) -> None:
    """Evaluate a trained run folder, or a reference checkpoint, on fresh tasks; print per-step metrics."""
    from lbpbench.harness.evaluate import EVAL_SEED
    from lbpbench.harness.saved import evaluate_reference_checkpoint, evaluate_run_dir

    if (run_dir is None) == (reference is None):
        raise click.UsageError("give either RUN_DIR or --reference CHECKPOINT")
    from lbpbench.harness.config import validate_fields

    seed = EVAL_SEED if eval_seed is None else eval_seed
    problems = validate_fields({"message_size": message_size, "hidden_size": hidden_size,
                                "eval_tasks": eval_tasks or 1, "eval_steps": eval_steps})
    if problems:
        raise click.UsageError("; ".join(problems))
    try:
        if reference is not None:
            evaluation = evaluate_reference_checkpoint(
                task, reference, learner, message_size, hidden_size, prior, eval_tasks or 100, eval_steps,
                seed=seed,
            )
            title = {"source": str(reference), "task": task, "method": f"reference/{learner}"}
        else:
            from lbpbench.harness.zoo import start_folder

            folder = start_folder(str(run_dir))  # a run folder, or zoo:NAME
            config, evaluation, learner = evaluate_run_dir(folder, eval_tasks, eval_steps, seed=seed)
            title = {"source": str(run_dir), "task": config.task, "method": config.method, "learner": learner}
    except (ValueError, OSError) as exc:  # a missing, damaged or mismatched input: exit 2, one line
        from lbpbench.cli import BadInput

        raise BadInput(str(exc)) from exc
    if as_json:
        n_tasks = next(iter(evaluation.per_task.values())).shape[0]
        click.echo(json.dumps({**title, "eval_seed": seed, "n_tasks": n_tasks, "steps": evaluation.table()}))
        return
    learner = f", {title['learner']}" if title.get("learner", "learner.pt") != "learner.pt" else ""
    click.echo(f"{title['method']} on {title['task']} from {title['source']}{learner} (eval seed {seed})")
    _print_evaluation(evaluation)
