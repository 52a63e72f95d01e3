"""The task-family contract shared by the harness, the engine and every task plugin.

A task family draws batches of tasks with a leading task axis ``N`` so the harness can run the whole
meta-batch in one vectorised pass instead of a Python loop over tasks.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from lbpbench.contracts import TaskFamily  # the contract task plugins code against
from lbpbench.tasks.network_spec import NetworkSpec

__all__ = ["METRICS", "SPLITS", "NetworkSpec", "TaskBatch", "TaskFamily", "check_split"]

SPLITS = ("train", "eval")
METRICS = ("eval_loss", "eval_accuracy")


def check_split(split: str) -> str:
    """Validate a split name early, so a typo never silently samples the wrong data."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}; got {split!r}")
    return split


@dataclass
class TaskBatch:
    """``n_tasks`` tasks at once; everything float32 on CPU (the harness moves it).

    ``train_x[:, s]`` is the batch fed at inner step ``s + 1``; ``eval_x``/``eval_y`` are the held-out
    points the metric is computed on. Classification targets are one-hot.
    """

    train_x: Tensor  # [N, S, B, in]
    train_y: Tensor  # [N, S, B, out]
    eval_x: Tensor  # [N, M, in]
    eval_y: Tensor  # [N, M, out]

    @property
    def n_tasks(self) -> int:
        """The leading task axis N."""
        return int(self.train_x.shape[0])

    def to(self, device: torch.device | str) -> TaskBatch:
        """Move every tensor to ``device`` (a convenience for the harness)."""
        return TaskBatch(*(t.to(device) for t in (self.train_x, self.train_y, self.eval_x, self.eval_y)))
