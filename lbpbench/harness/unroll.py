"""The inner loop, differentiable end to end: one function used by meta-training and evaluation."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from lbpbench.protocol.network import MessagePassingNetwork


@dataclass
class Unrolled:
    params: dict[str, Tensor]
    carries: dict[str, Tensor]
    hint_losses: list[Tensor]  # per step: [T] loss of the updated net on that step's batch


def _checkpointed_step(
    net: MessagePassingNetwork, params: dict[str, Tensor], carries: dict[str, Tensor], x: Tensor, y: Tensor
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Recompute the step's activations in the backward pass instead of storing them."""
    p_keys, c_keys = list(params), list(carries)

    def step(*flat: Tensor) -> tuple[Tensor, ...]:
        out = net.inner_step(
            dict(zip(p_keys, flat[: len(p_keys)], strict=True)),
            dict(zip(c_keys, flat[len(p_keys) :], strict=True)),
            x,
            y,
        )
        return (*[out.params[k] for k in p_keys], *[out.carries[k] for k in c_keys])

    flat = checkpoint(step, *params.values(), *carries.values(), use_reentrant=False)
    return dict(zip(p_keys, flat[: len(p_keys)], strict=True)), dict(
        zip(c_keys, flat[len(p_keys) :], strict=True)
    )


def unroll(
    net: MessagePassingNetwork,
    params: dict[str, Tensor],
    train_x: Tensor,
    train_y: Tensor,
    *,
    steps: int | None = None,
    truncation: int = 0,
    checkpointing: bool = False,
    hint: bool = True,
) -> Unrolled:
    """Run `steps` learned inner steps on train_x [T,S,B,in]; step s uses batch s mod S.

    truncation n > 0 cuts the graph before the last n steps (truncated backpropagation);
    checkpointing recomputes each step's activations during the backward pass.
    """
    n_tasks, n_batches, batch = train_x.shape[:3]
    steps = n_batches if steps is None else steps
    carries = net.init_carries(n_tasks, batch, device=train_x.device)
    hints: list[Tensor] = []
    for s in range(steps):
        if truncation and s == steps - truncation:
            params = {k: v.detach() for k, v in params.items()}
            carries = {k: v.detach() for k, v in carries.items()}
        x, y = train_x[:, s % n_batches], train_y[:, s % n_batches]
        if checkpointing and torch.is_grad_enabled():
            params, carries = _checkpointed_step(net, params, carries, x, y)
        else:
            out = net.inner_step(params, carries, x, y)
            params, carries = out.params, out.carries
        if hint:
            hints.append(net.loss(params, x, y))
    return Unrolled(params, carries, hints)
