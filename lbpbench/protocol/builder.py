"""build_network: resolve component names through the registry and wire a network from a spec."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from lbpbench.protocol.aggregators import check_aggregator
from lbpbench.protocol.network import SHARINGS, MessagePassingNetwork
from lbpbench.protocol.nodes import Node
from lbpbench.tasks.network_spec import NetworkSpec


def _node(registry: Any, kind: str, role: str, field: str, **kwargs: Any) -> Node:
    choices = [
        n
        for n in registry.names("node_type")
        if getattr(registry.get("node_type", n).factory, "role", None) == role
    ]
    if kind not in choices:
        raise ValueError(
            f"{field} {kind!r} is not a registered {role} node type; choices: {', '.join(choices)}"
        )
    return registry.create("node_type", kind, **kwargs)  # checked against lbpbench.contracts.NodeType


def build_nodes(spec: NetworkSpec, registry: Any) -> list[Node]:
    """dense1, act1, dense2, ..., denseN, [softmax], loss — the reference's node names."""
    nodes: list[Node] = []
    sizes = [spec.input_size, *spec.layer_sizes]
    for i in range(len(spec.layer_sizes)):
        if i > 0:
            nodes.append(
                _node(registry, spec.activation, "activation", "activation", name=f"act{i}", size=sizes[i])
            )
        nodes.append(
            _node(
                registry,
                "dense",
                "dense",
                "dense",
                name=f"dense{i + 1}",
                in_size=sizes[i],
                out_size=sizes[i + 1],
            )
        )
    if spec.output == "softmax":
        nodes.append(_node(registry, "softmax", "output", "output", name="softmax", size=spec.output_size))
    nodes.append(_node(registry, spec.loss, "loss", "loss", name="loss", size=spec.output_size))
    return nodes


def build_network(
    spec: NetworkSpec,
    learner: str = "stateful",
    aggregator: str = "mean",
    message_size: int = 8,
    hidden_size: int = 15,
    sharing: str = "layer",
    mlp_widths: Sequence[int] = (80, 40),
    untrained_message_mlp: bool = False,
    init_std: float = 0.05,
    registry: Any = None,
    loss_rule: str = "learned",
    **learner_options: Any,
) -> MessagePassingNetwork:
    """A ready network; every bad name or size raises ValueError before anything is built."""
    if registry is None:
        from lbpbench.registry import get_registry

        registry = get_registry()
    if not isinstance(message_size, int) or isinstance(message_size, bool) or message_size < 1:
        raise ValueError(f"message_size must be an integer >= 1, got {message_size!r}")
    if sharing not in SHARINGS:
        raise ValueError(f"sharing must be one of {', '.join(SHARINGS)}; got {sharing!r}")
    registry.get("learner", learner)  # raises ValueError listing the registered learners
    registry.get("aggregator", aggregator)
    family = registry.create(
        "learner",
        learner,
        message_size=message_size,
        hidden_size=hidden_size,
        mlp_widths=tuple(mlp_widths),
        untrained_message_mlp=untrained_message_mlp,
        **learner_options,
    )
    nodes = build_nodes(spec, registry)

    def make_aggregator() -> nn.Module:
        agg = registry.create("aggregator", aggregator, message_size=message_size)
        check_aggregator(agg, aggregator)
        return agg if isinstance(agg, nn.Module) else _PlainAggregator(agg)

    net = MessagePassingNetwork(nodes, family, make_aggregator, message_size, sharing, init_std, loss_rule)
    probe_aggregators(net, aggregator)
    return net


def probe_aggregators(net: MessagePassingNetwork, name: str) -> None:
    """Call each aggregator once per layer it serves, on a probe of that layer's message shape.

    DenseNode.backward reduces its W-slot messages [T, B, fan_in, fan_out, k] over dim 3; a shared
    aggregator (sharing kind/all) serves layers of different sizes, so each layer is probed.
    """
    for entry in net.entries.values():
        if entry.aggregator is None:
            continue
        node = entry.info.node
        check_aggregator(
            net.aggregators[entry.aggregator],
            name,
            layer=node.name,
            edges_shape=(1, 1, node.in_size, node.out_size, net.message_size),
            dim=3,
        )


class _PlainAggregator(nn.Module):
    """Lets a plugin aggregator that is not an nn.Module live in the network's module tree."""

    def __init__(self, inner: Any) -> None:
        super().__init__()
        self.inner = inner

    def aggregate(self, edges: Any, dim: int) -> Any:
        return self.inner.aggregate(edges, dim)
