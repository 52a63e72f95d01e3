"""Sinusoid regression tasks (MPLP.md §6): y = A·sin(x + φ), one task per (A, φ).

Sampling is vectorised over tasks and draws only from the caller's ``torch.Generator``, so the same
generator state always gives the same tasks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from lbpbench.tasks.base import TaskBatch, check_split
from lbpbench.tasks.network_spec import NetworkSpec

__all__ = ["SINUSOID_NETWORK", "SinusoidFamily", "sinusoid_2x10", "sinusoid_5x10"]

SINUSOID_NETWORK = NetworkSpec(1, (20, 20, 1), "relu", "identity", "l2")


def _uniform(shape: tuple[int, ...], low: float, high: float, generator: torch.Generator) -> Tensor:
    return torch.rand(shape, generator=generator, dtype=torch.float32) * (high - low) + low


@dataclass
class SinusoidFamily:
    """Sinusoid regression with ``inner_steps`` batches of ``batch_size`` points per task.

    ``sample(n, g, split)`` draws, in this order from ``g``: amplitudes [n], phases [n], training x
    [n, S, B], and for ``split="train"`` only, ``n_eval`` fresh uniform held-out x per task.
    Held-out points (``eval_x``/``eval_y``):

    * ``split="eval"``: the fixed grid ``linspace(x_low, x_high, n_eval)`` (the same for every task),
      as the reference evaluates;
    * ``split="train"``: ``n_eval`` fresh uniform points of the same task (the meta-training
      held-out loss), so meta-training never overfits the evaluation grid.

    The task distribution itself is identical for both splits (there is no finite data to hold out).
    """

    name: str = "sinusoid-5x10"
    inner_steps: int = 5
    batch_size: int = 10
    amplitude_range: tuple[float, float] = (0.1, 0.5)
    phase_range: tuple[float, float] = (0.0, math.pi)
    x_range: tuple[float, float] = (-5.0, 5.0)
    n_eval: int = 100
    network: NetworkSpec = field(default=SINUSOID_NETWORK)
    metric: str = "eval_loss"
    # MPLP.md §5: meta-batch 4, Adam 1e-4, a pool of 128 initialisations, one calibration pass
    meta_defaults: dict = field(
        default_factory=lambda: {"meta_batch": 4, "meta_lr": 1e-4, "init_pool": 128,
                                 "calibration_passes": 1, "calibration_blend": 1.0}
    )

    def eval_regions(self, eval_x: Tensor) -> dict[str, Tensor]:
        """Masks [n, points] of the held-out points by |x|: `centre` below half the x range's edge
        (|x| < 2.5 for [-5, 5]), `outer` the rest. Evaluation reports the loss on each
        (`eval_loss_centre`, `eval_loss_outer`): a learner stuck fitting a centre arc (MPLP appendix
        B) shows as an outer loss far above the centre loss."""
        edge = max(abs(self.x_range[0]), abs(self.x_range[1])) / 2
        centre = eval_x[..., 0].abs() < edge
        return {"centre": centre, "outer": ~centre}

    def eval_grid(self) -> Tensor:
        """The evaluation grid, [n_eval, 1] float32."""
        return torch.linspace(self.x_range[0], self.x_range[1], self.n_eval, dtype=torch.float32)[:, None]

    def sample_with_params(
        self, n_tasks: int, generator: torch.Generator, split: str = "train"
    ) -> tuple[TaskBatch, Tensor, Tensor]:
        """Like :meth:`sample`, also returning the amplitudes and phases [N] (for tests and plots)."""
        check_split(split)
        if n_tasks < 1:
            raise ValueError(f"n_tasks must be positive, got {n_tasks}")
        n, s, b = n_tasks, self.inner_steps, self.batch_size
        amplitude = _uniform((n,), *self.amplitude_range, generator)
        phase = _uniform((n,), *self.phase_range, generator)
        train_x = _uniform((n, s, b, 1), *self.x_range, generator)
        train_y = amplitude[:, None, None, None] * torch.sin(train_x + phase[:, None, None, None])
        if split == "eval":
            eval_x = self.eval_grid().expand(n, self.n_eval, 1).clone()
        else:
            eval_x = _uniform((n, self.n_eval, 1), *self.x_range, generator)
        eval_y = amplitude[:, None, None] * torch.sin(eval_x + phase[:, None, None])
        return TaskBatch(train_x, train_y, eval_x, eval_y), amplitude, phase

    def sample(self, n_tasks: int, generator: torch.Generator, split: str = "train") -> TaskBatch:
        """Draw ``n_tasks`` sinusoid tasks from ``generator`` (see the class docstring for eval_x)."""
        return self.sample_with_params(n_tasks, generator, split)[0]


def sinusoid_5x10(data_dir: str | None = None, **ignored_options: object) -> SinusoidFamily:
    """Sinusoid regression, 5 inner steps × 10 points, net 1-20-20-1 ReLU, L2 (MPLP.md §6).

    ``data_dir`` and other options are accepted and ignored (sinusoids need no data).
    """
    return SinusoidFamily(name="sinusoid-5x10", inner_steps=5, batch_size=10)


def sinusoid_2x10(data_dir: str | None = None, **ignored_options: object) -> SinusoidFamily:
    """Sinusoid regression, 2 inner steps × 10 points (the MAML-style setting), net 1-20-20-1 ReLU."""
    return SinusoidFamily(name="sinusoid-2x10", inner_steps=2, batch_size=10)
