"""Small builders shared by the engine tests."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from lbpbench.protocol.builder import build_network
from lbpbench.protocol.network import MessagePassingNetwork
from lbpbench.tasks.network_spec import NetworkSpec


def reference_dir() -> Path:
    env = os.environ.get("LBPBENCH_REFERENCE_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "reference"


def small_net(
    learner: str = "stateful", aggregator: str = "mean", loss: str = "l2", **kw
) -> MessagePassingNetwork:
    torch.manual_seed(0)
    if loss == "l2":
        spec = NetworkSpec(3, (5, 4, 2), kw.pop("activation", "relu"), "identity", "l2")
    else:
        spec = NetworkSpec(3, (5, 4), kw.pop("activation", "sigmoid"), "softmax", "cross_entropy")
    k = kw.pop("message_size", 1 if learner == "backprop" else 3)
    return build_network(spec, learner=learner, aggregator=aggregator, message_size=k, hidden_size=2, **kw)


def batch(net: MessagePassingNetwork, n_tasks: int, steps: int, b: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    spec_in = net.nodes[0].in_size
    out = net.nodes[-1].size
    x = torch.randn(n_tasks, steps, b, spec_in, generator=g)
    if net.nodes[-1].kind == "cross_entropy":
        y = torch.nn.functional.one_hot(torch.randint(0, out, (n_tasks, steps, b), generator=g), out).float()
    else:
        y = torch.randn(n_tasks, steps, b, out, generator=g)
    return x, y
