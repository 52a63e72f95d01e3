"""Example installable plugin: a sign-SGD baseline (``theta <- theta - lr * sign(grad)``).

Installed with ``pip install -e plugins/lbpbench-signsgd``, it is found through its entry point
(group ``lbpbench``) — no lbpbench code names it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from lbpbench import hookimpl


class SignSGD:
    """Sign-SGD baseline: step each parameter by -lr * sign(gradient)."""

    name = "signsgd"

    def __init__(self, lrs: Sequence[float] = (0.0003, 0.001, 0.003, 0.01, 0.03), **options: Any) -> None:
        self.lrs = tuple(float(lr) for lr in lrs)

    def step(
        self,
        params: dict[str, torch.Tensor],
        grads: dict[str, torch.Tensor],
        state: Any,
        lr: float,
    ) -> tuple[dict[str, torch.Tensor], Any]:
        """One functional update; sign-SGD keeps no state."""
        new = {k: p - lr * torch.sign(grads[k]) if k in grads else p for k, p in params.items()}
        return new, state


@hookimpl
def lbpbench_register_baselines(register):
    register("signsgd", SignSGD)
