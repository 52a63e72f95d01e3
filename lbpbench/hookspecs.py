"""Hook specifications: one hook per component kind.

Every component — built-in or third-party — reaches lbpbench through one of these hooks. A plugin
is any module (or object) with functions named like the hooks below and marked with
``lbpbench.hookimpl``::

    from lbpbench import hookimpl

    @hookimpl
    def lbpbench_register_aggregators(register):
        register("median", MedianAggregator, "median over the fan-out axis")

Each hook receives one argument, ``register``, a callback with the signature::

    register(name: str, factory: Callable[..., Any], description: str | None = None) -> None

``name`` must be unique within its kind across all plugins (a duplicate is an error naming both
plugins); ``description`` defaults to the first line of the factory's docstring. The registry
never calls a factory while loading; ``Registry.create(kind, name, **options)`` calls
``factory(**options)``.

This module holds the specifications only; the loading rules live in ``lbpbench.registry``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import pluggy

PROJECT = "lbpbench"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


class Register(Protocol):
    """The callback every hook receives."""

    def __call__(self, name: str, factory: Callable[..., Any], description: str | None = None) -> None: ...


@hookspec
def lbpbench_register_node_types(register: Register) -> None:
    """Register node types (kind ``node_type``) of the message-passing network.

    ``factory`` is a NodeType class (or a callable returning one) as defined by
    ``lbpbench.protocol``: it declares the node's forward computation, what it stores for the
    backward pass, which learner inputs it exposes, and how it routes messages between its inputs
    and outputs. Built-ins: dense, relu, sigmoid, tanh, step, softmax, l2, cross_entropy.
    """


@hookspec
def lbpbench_register_aggregators(register: Register) -> None:
    """Register message aggregators (kind ``aggregator``).

    ``factory(message_size: int, **options)`` returns an object with
    ``aggregate(edges: torch.Tensor, dim: int) -> torch.Tensor`` that reduces per-edge messages
    along the fan-out axis ``dim`` (the result drops that axis). Stateless aggregators may be plain
    objects; an aggregator with meta-trained parameters is a ``torch.nn.Module`` whose parameters
    are trained together with the learners. Built-ins: mean, sum, rnn.
    """


@hookspec
def lbpbench_register_learners(register: Register) -> None:
    """Register learners (kind ``learner``): the small networks that sit at every node.

    ``factory(**options)`` returns the learner used by ``lbpbench.protocol.build_network``
    (options include ``message_size`` and ``hidden_size``). A learner is a ``torch.nn.Module``
    that takes its inputs as a list of broadcastable pieces and returns
    ``(update, outgoing_message, new_carry)``. Built-ins: stateless, stateful, backprop.
    """


@hookspec
def lbpbench_register_tasks(register: Register) -> None:
    """Register task families (kind ``task``).

    ``factory(**options)`` returns a ``lbpbench.tasks.base.TaskFamily``: an object with ``name``,
    ``network`` (a ``NetworkSpec``), ``inner_steps``, ``batch_size``, ``metric``
    (``"eval_loss"`` or ``"eval_accuracy"``) and
    ``sample(n_tasks, generator, split="train") -> TaskBatch``.
    Options the harness may pass: ``data_dir``.
    """


@hookspec
def lbpbench_register_baselines(register: Register) -> None:
    """Register baselines (kind ``baseline``): hand-designed learning rules run through the same
    harness and evaluation as learned protocols.

    ``factory(**options)`` returns an object with

    - ``name: str`` — the label reports show;
    - ``lrs: Sequence[float]`` — the learning-rate grid the harness tunes over (the harness may
      override it from ``RunConfig.baseline_lrs``);
    - ``step(params: dict[str, Tensor], grads: dict[str, Tensor], state, lr: float)
      -> (params, state)`` — one functional update (no in-place changes); ``state`` is ``None``
      on the first step and whatever the previous call returned afterwards.

    Baselines that are more than an optimiser step (e.g. MAML, which meta-learns an initial point)
    document their extra attributes next to their factory. Built-ins: sgd, adam, maml.
    """
