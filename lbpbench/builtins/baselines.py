"""Built-in backprop baselines, registered through the same hook as third-party ones."""

from __future__ import annotations

from lbpbench.harness.baselines import MAML, SGD, Adam
from lbpbench.hookspecs import Register, hookimpl


@hookimpl
def lbpbench_register_baselines(register: Register) -> None:
    register("sgd", SGD, "SGD on autograd gradients, lr tuned on a grid by validation loss")
    register("adam", Adam, "Adam on autograd gradients, lr tuned on a grid by validation loss")
    register("maml", MAML, "Second-order MAML: meta-learned initial point, inner SGD lr 0.05")
