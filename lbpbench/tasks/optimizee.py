"""The optimizee: the small network a task trains, apart from whatever rule trains it.

Why a class of its own: shapes, initialisation, forward pass and loss are the same whether a learned
protocol or autograd trains the network, so the message-passing network holds one and the
backprop baselines use one directly, with no learners built just to get a forward pass.
Parameters are plain tensors with a leading task axis T (functional state), never module weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from lbpbench.tasks.network_spec import NetworkSpec

INIT_STD = 0.05  # the reference's W ~ N(0, 0.05²)


class Optimizee:
    """Nodes in order (dense, activation, ..., [softmax], loss) and the functions over their parameters."""

    def __init__(self, nodes: Sequence[Any], init_std: float = INIT_STD) -> None:
        from lbpbench.protocol.nodes import LossNode

        if not nodes or not isinstance(nodes[-1], LossNode):
            raise ValueError("the last node must be a loss node")
        self.nodes = list(nodes)
        self.init_std = init_std

    @property
    def loss_node(self) -> Any:
        return self.nodes[-1]

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """`<node>.<param>` -> shape without the task axis, in node order."""
        return {f"{n.name}.{k}": s for n in self.nodes for k, s in n.param_shapes().items()}

    def init_params(self, n_tasks: int, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """W ~ N(0, init_std²), b = 0, as the reference initialises optimizees."""
        params = {}
        for name, shape in self.param_shapes().items():
            if name.endswith(".W"):
                params[name] = torch.randn(n_tasks, *shape, generator=generator) * self.init_std
            else:
                params[name] = torch.zeros(n_tasks, *shape)
        return params

    def node_params(self, params: dict[str, Tensor], node: Any) -> dict[str, Tensor]:
        return {k: params[f"{node.name}.{k}"] for k in node.param_shapes()}

    def forward_with_stashes(self, params: dict[str, Tensor], x: Tensor) -> tuple[Tensor, list[Any]]:
        """The output and what every node (but the loss) kept for its backward pass."""
        stashes = []
        h = x
        for node in self.nodes[:-1]:
            h, stash = node.forward(self.node_params(params, node), h)
            stashes.append(stash)
        return h, stashes

    def forward(self, params: dict[str, Tensor], x: Tensor) -> Tensor:
        """Network output (probabilities after a softmax node) for x [T, M, in]."""
        return self.forward_with_stashes(params, x)[0]

    def element_loss(self, params: dict[str, Tensor], x: Tensor, y: Tensor) -> Tensor:
        return self.loss_node.element_loss(self.forward(params, x), y)

    def loss(self, params: dict[str, Tensor], x: Tensor, y: Tensor) -> Tensor:
        """Element-mean loss per task, [T] (the reference's meta-loss reduction)."""
        return self.element_loss(params, x, y).flatten(1).mean(1)


def build_optimizee(spec: NetworkSpec, registry: Any = None, init_std: float = INIT_STD) -> Optimizee:
    """The optimizee a spec describes, its node types resolved through the registry."""
    from lbpbench.protocol.builder import build_nodes

    if registry is None:
        from lbpbench.registry import get_registry

        registry = get_registry()
    return Optimizee(build_nodes(spec, registry), init_std)
