"""Backprop baselines (SGD, Adam, MAML) run through the same evaluation as learned protocols.

Tasks share the leading axis T: summing the per-task losses gives every task its own gradient, so a
whole batch of tasks trains at once with plain autograd.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from lbpbench.tasks.optimizee import Optimizee


class SGD:
    """theta <- theta - lr * grad."""

    name = "sgd"

    def __init__(self, lrs: Sequence[float] = (0.01, 0.03, 0.1, 0.3, 1.0), **_ignored: object) -> None:
        self.lrs = tuple(float(v) for v in lrs)

    def step(
        self, params: dict[str, Tensor], grads: dict[str, Tensor], state: Any, lr: float
    ) -> tuple[dict[str, Tensor], Any]:
        return {k: p - lr * grads[k] for k, p in params.items()}, state


class Adam:
    """Adam (beta1 0.9, beta2 0.999, eps 1e-8), elementwise so it works per task on the T axis."""

    name = "adam"

    def __init__(
        self,
        lrs: Sequence[float] = (0.001, 0.003, 0.01, 0.03, 0.1),
        betas=(0.9, 0.999),
        eps=1e-8,
        **_ignored: object,
    ) -> None:
        self.lrs = tuple(float(v) for v in lrs)
        self.betas, self.eps = betas, eps

    def step(
        self, params: dict[str, Tensor], grads: dict[str, Tensor], state: Any, lr: float
    ) -> tuple[dict[str, Tensor], Any]:
        b1, b2 = self.betas
        if state is None:
            state = (
                0,
                {k: torch.zeros_like(p) for k, p in params.items()},
                {k: torch.zeros_like(p) for k, p in params.items()},
            )
        t, m, v = state
        t += 1
        m = {k: b1 * m[k] + (1 - b1) * grads[k] for k in params}
        v = {k: b2 * v[k] + (1 - b2) * grads[k] ** 2 for k in params}
        new = {
            k: p - lr * (m[k] / (1 - b1**t)) / ((v[k] / (1 - b2**t)).sqrt() + self.eps)
            for k, p in params.items()
        }
        return new, (t, m, v)


class MAML(SGD):
    """Second-order MAML: a meta-learned initial point, adapted by SGD with a fixed inner lr."""

    name = "maml"
    meta_learns_init = True

    def __init__(self, inner_lr: float = 0.05, **_ignored: object) -> None:
        super().__init__(lrs=(inner_lr,))
        self.inner_lr = inner_lr


class GradientStepper:
    """Adapts a baseline optimiser to the evaluation's Stepper protocol (autograd gradients)."""

    def __init__(
        self, net: Optimizee, optimiser: Any, lr: float, create_graph: bool = False
    ) -> None:
        self.net, self.optimiser, self.lr, self.create_graph = net, optimiser, lr, create_graph

    def init_state(self, params: dict[str, Tensor], batch_size: int) -> Any:
        return None

    def step(
        self, params: dict[str, Tensor], state: Any, x: Tensor, y: Tensor
    ) -> tuple[dict[str, Tensor], Any]:
        with torch.enable_grad():
            leaves = (
                params
                if self.create_graph
                else {k: v.detach().requires_grad_(True) for k, v in params.items()}
            )
            loss = self.net.loss(leaves, x, y).sum()
            grads = torch.autograd.grad(loss, list(leaves.values()), create_graph=self.create_graph)
        grads_by_name = dict(zip(leaves, grads, strict=True))
        new, state = self.optimiser.step(leaves, grads_by_name, state, self.lr)
        if not self.create_graph:
            new = {k: v.detach() for k, v in new.items()}
        return new, state
