"""Evaluation as the reference does it: fresh tasks, fresh initialisations, metrics after each step.

Any training rule — a learned protocol or an autograd baseline — is a `Stepper`, so every method is
evaluated by the same code on the same tasks.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from lbpbench.harness.allocator import retain_freed_memory
from lbpbench.protocol.network import MessagePassingNetwork
from lbpbench.tasks.base import TaskBatch, TaskFamily
from lbpbench.tasks.optimizee import Optimizee

EVAL_SEED = 20_200_701  # every method and seed is evaluated on the same tasks
INSTANCE_BUDGET = 40_000_000  # floats of hidden activation per chunk of evaluation tasks


class Stepper(Protocol):
    """A training rule: state for T tasks, and one step on a batch."""

    def init_state(self, params: dict[str, Tensor], batch_size: int) -> Any: ...

    def step(
        self, params: dict[str, Tensor], state: Any, x: Tensor, y: Tensor
    ) -> tuple[dict[str, Tensor], Any]: ...


class LearnedStepper:
    """The message-passing network's own learned inner step."""

    def __init__(self, net: MessagePassingNetwork) -> None:
        self.net = net

    def init_state(self, params: dict[str, Tensor], batch_size: int) -> Any:
        n = next(iter(params.values())).shape[0]
        return self.net.init_carries(n, batch_size, device=next(iter(params.values())).device)

    def step(
        self, params: dict[str, Tensor], state: Any, x: Tensor, y: Tensor
    ) -> tuple[dict[str, Tensor], Any]:
        out = self.net.inner_step(params, state, x, y)
        return out.params, out.carries

    def state_floats(self, batch_size: int) -> int:
        """Floats of the largest per-task carry: sizes the evaluation's task chunks."""
        return max((int(np.prod(s)) for s in self.net.carry_shapes(batch_size).values()), default=0)


def with_steps(family: TaskFamily, steps: int) -> TaskFamily:
    """The same family with a different number of inner steps (fresh batches beyond the horizon)."""
    if steps == family.inner_steps:
        return family
    if dataclasses.is_dataclass(family):
        return dataclasses.replace(family, inner_steps=steps)
    return family  # the unroll cycles through the available batches


def step_metrics(
    net: Optimizee,
    params: dict[str, Tensor],
    eval_x: Tensor,
    eval_y: Tensor,
    classification: bool,
    regions: dict[str, Tensor] | None = None,
) -> dict[str, Tensor]:
    """Per-task metrics on the held-out points: eval_loss (and eval_accuracy for classification).

    Regression: mean over points of ½(y - ŷ)², and `eval_loss_<region>` over each region's points
    (masks [n, points], from the family's optional `eval_regions`). Classification: mean over
    images of the per-image cross-entropy (LAYOUT.md's eval_ce) and the argmax accuracy.
    """
    pred = net.forward(params, eval_x)
    element = net.loss_node.element_loss(pred, eval_y)
    if classification:
        return {
            "eval_loss": element.sum(-1).mean(-1),
            "eval_accuracy": (pred.argmax(-1) == eval_y.argmax(-1)).float().mean(-1),
        }
    metrics = {"eval_loss": element.flatten(1).mean(1)}
    per_point = element.flatten(2).mean(2)
    for name, mask in (regions or {}).items():
        metrics[f"eval_loss_{name}"] = (per_point * mask).sum(1) / mask.sum(1).clamp(min=1)
    return metrics


def task_average_loss(net: Optimizee, eval_x: Tensor, eval_y: Tensor) -> Tensor | None:
    """Per task [n], the held-out loss of the best single curve for all tasks: the mean target over
    the tasks at each point. Why: a learner whose 5-step fit is no better than this ignores what it
    was shown — the sinusoid's 0.018 plateau is this curve, a centre arc 2·mean(A)·cos(x)/π (MPLP
    appendix B's "stuck fitting a centre arc"). None when tasks are evaluated at different points."""
    if eval_x.shape[0] < 2 or not torch.equal(eval_x, eval_x[:1].expand_as(eval_x)):
        return None
    average = eval_y.mean(0, keepdim=True).expand_as(eval_y)
    return net.loss_node.element_loss(average, eval_y).flatten(1).mean(1)


@dataclass
class Evaluation:
    per_task: dict[str, np.ndarray]  # metric -> [n_tasks, steps + 1] (train_loss: NaN at step 0)

    def curves(self, phase: str = "eval") -> pd.DataFrame:
        rows = []
        for metric, values in self.per_task.items():
            for step in range(values.shape[1]):
                column = values[:, step]
                if not np.isnan(column).all():
                    rows.append(
                        {"phase": phase, "step": step, "metric": metric, "value": self.mean(metric, step)}
                    )
        return pd.DataFrame(rows, columns=["phase", "step", "metric", "value"])

    def table(self) -> list[dict[str, float | int | None]]:
        """Per inner step, the mean of every metric over the tasks (None where undefined, e.g. the
        train loss before the first step): what `lbpbench eval --json` prints."""
        steps = next(iter(self.per_task.values())).shape[1]
        rows = []
        for s in range(steps):
            row: dict[str, float | int | None] = {"step": s}
            for metric in self.per_task:
                value = self.mean(metric, s)
                row[metric] = None if np.isnan(value) else value
            rows.append(row)
        return rows

    def mean(self, metric: str, step: int) -> float:
        """Mean over tasks; a non-finite task (a diverged inner loop) makes the mean non-finite."""
        column = self.per_task[metric][:, step]
        return float("nan") if np.isnan(column).all() else float(column.mean())


def _chunk_size(net: Optimizee, stepper: Stepper, batch_size: int, n_tasks: int) -> int:
    state_floats = getattr(stepper, "state_floats", None)
    widest = state_floats(batch_size) if state_floats is not None else 0
    widest = max(widest, max(int(np.prod(s)) for s in net.param_shapes().values()) * batch_size)
    return int(max(1, min(n_tasks, INSTANCE_BUDGET // max(1, widest * 80))))


@torch.no_grad()
def evaluate(
    model: Optimizee | MessagePassingNetwork,
    family: TaskFamily,
    stepper: Stepper,
    *,
    n_tasks: int = 100,
    steps: int | None = None,
    initial_params: dict[str, Tensor] | None = None,
    seed: int = EVAL_SEED,
    split: str = "eval",
    device: torch.device | str = "cpu",
) -> Evaluation:
    """Metrics before and after each of `steps` inner steps, on `n_tasks` fresh tasks.

    Tasks and initial parameters come from `seed` alone, so every method sees the same tasks.
    initial_params (a learned prior, [1, ...]) replaces the random initialisation. `model` is the
    optimizee, or a message-passing network (its optimizee is used).
    """
    net: Optimizee = model.optimizee if isinstance(model, MessagePassingNetwork) else model
    retain_freed_memory()
    steps = family.inner_steps if steps is None else steps
    generator = torch.Generator().manual_seed(seed)
    tasks: TaskBatch = with_steps(family, steps).sample(n_tasks, generator, split=split).to(device)
    init = net.init_params(n_tasks, generator)
    classification = family.metric == "eval_accuracy"
    task_average = None if classification else task_average_loss(net, tasks.eval_x, tasks.eval_y)
    chunk = _chunk_size(net, stepper, family.batch_size, n_tasks)
    collected: dict[str, list[np.ndarray]] = {}
    for start in range(0, n_tasks, chunk):
        sl = slice(start, min(n_tasks, start + chunk))
        n = sl.stop - sl.start
        if initial_params is not None:
            params = {k: v.expand(n, *v.shape[1:]).clone() for k, v in initial_params.items()}
        else:
            params = {k: v[sl].to(device) for k, v in init.items()}
        ex, ey = tasks.eval_x[sl], tasks.eval_y[sl]
        regions = family.eval_regions(ex) if hasattr(family, "eval_regions") else None
        tx, ty = tasks.train_x[sl], tasks.train_y[sl]
        state = stepper.init_state(params, tx.shape[2])
        per_step: dict[str, list[Tensor]] = {
            k: [v] for k, v in step_metrics(net, params, ex, ey, classification, regions).items()
        }
        per_step["train_loss"] = [torch.full((n,), float("nan"), device=tx.device)]
        for s in range(steps):
            x, y = tx[:, s % tx.shape[1]], ty[:, s % ty.shape[1]]
            params, state = stepper.step(params, state, x, y)
            for k, v in step_metrics(net, params, ex, ey, classification, regions).items():
                per_step[k].append(v)
            per_step["train_loss"].append(net.loss(params, x, y))
        if task_average is not None:  # a property of the tasks: the same after every step
            per_step["eval_loss_task_average"] = [task_average[sl]] * (steps + 1)
        for k, values in per_step.items():
            collected.setdefault(k, []).append(torch.stack(values, dim=1).float().cpu().numpy())
    return Evaluation({k: np.concatenate(v, axis=0) for k, v in collected.items()})
