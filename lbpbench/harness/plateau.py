"""Abandoning a member that is still on the task-average plateau (`abandon_plateau_at`).

Which learner draw leaves the sinusoid's 0.018 plateau is a lottery (results/search/README.md,
rounds 5-12): a stuck seed costs as many meta-steps as one that learns and never improves. A run
with `abandon_plateau_at = N` stops a member at its first evaluation at or after meta-step N whose
eval loss is still at least PLATEAU_FRACTION × the loss of the best single curve for all evaluation
tasks (`eval_loss_task_average`). The member is kept, never dropped: it is evaluated and reported
like any run, with the meta-step it stopped at (`abandoned_at`), and the meta-steps it would have
taken go to the members that learn.
"""

from __future__ import annotations

PLATEAU_FRACTION = 0.9  # also the report's "no better than the task average" signature
TASK_AVERAGE = "eval_loss_task_average"


def abandon_reason(abandon_at: int, step: int, metrics: dict[str, float]) -> str | None:
    """Why a member evaluated at `step` with these metrics stops now, or None when it goes on."""
    if not abandon_at or step < abandon_at:
        return None
    if TASK_AVERAGE not in metrics or "eval_loss" not in metrics:
        raise ValueError(
            f"abandon_plateau_at needs a task whose evaluation reports {TASK_AVERAGE} (regression "
            f"tasks such as the sinusoids); this one reports {', '.join(sorted(metrics))}"
        )
    loss, average = metrics["eval_loss"], metrics[TASK_AVERAGE]
    if loss < PLATEAU_FRACTION * average:
        return None
    return (f"on the task-average plateau at meta-step {step}: eval loss {loss:.4g} >= "
            f"{PLATEAU_FRACTION:g} x {average:.4g} (abandon_plateau_at = {abandon_at})")


def plateau_problem(abandon_at: int, metric: str) -> str | None:
    """Why `abandon_plateau_at` cannot work on a task whose primary metric is `metric`, or None."""
    if abandon_at and metric != "eval_loss":
        return (f"abandon_plateau_at = {abandon_at} needs a regression task (its evaluation reports "
                f"{TASK_AVERAGE}); this task's metric is {metric}")
    return None

