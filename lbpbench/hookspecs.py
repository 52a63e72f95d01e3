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
plugins; ``lbpbench plugins`` still lists both); ``description`` defaults to the first line of the
factory's docstring. The registry never calls a factory while loading;
``Registry.create(kind, name, **options)`` calls ``factory(**options)`` and checks what it returns
against the kind's ``typing.Protocol`` in ``lbpbench.contracts`` (named in each hook below),
raising ``lbpbench.contracts.PluginContractError`` that names the plugin and what is missing.
Factories receive keyword options only; accept and ignore the ones you do not use (``**options``).

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
    """Register node types (kind ``node_type``) of the optimizee network.

    The factory must return an object satisfying ``lbpbench.contracts.NodeType``
    (``lbpbench.contracts.LossNodeType`` for loss nodes); it is called as
    ``factory(name=..., size=...)`` (``name=..., in_size=..., out_size=...`` for dense nodes) and
    must itself carry a ``role`` attribute (``dense | activation | output | loss``) that
    ``build_network`` selects node types by. Subclass a base in ``lbpbench.protocol.nodes``: a new
    activation is an ``ActivationNode`` subclass with ``activation(z)`` and ``derivative(z)``
    (the ``NodeType`` docstring shows one); runs select it with the run setting ``activation``.
    Built-ins: dense, relu, sigmoid, tanh, step, softmax, l2, cross_entropy.
    """


@hookspec
def lbpbench_register_aggregators(register: Register) -> None:
    """Register message aggregators (kind ``aggregator``).

    The factory must return an object satisfying ``lbpbench.contracts.Aggregator``:
    ``aggregate(edges, dim=...)`` reduces per-edge messages ``[T, B, fan_in, fan_out, k]`` over
    the fan-out axis ``dim`` (the result drops that axis). It is called as
    ``factory(message_size=k)``; sweeps reach its options only through RunConfig fields.
    Stateless aggregators may be plain objects; one with meta-trained parameters is a
    ``torch.nn.Module``. ``build_network`` probes each instance once with every layer's real shape.
    Built-ins: mean, sum, rnn.
    """


@hookspec
def lbpbench_register_learners(register: Register) -> None:
    """Register learners (kind ``learner``): the small networks that sit at every node slot.

    The factory must return an object satisfying ``lbpbench.contracts.LearnerFamily``: a recipe
    whose ``make_core(slot)`` builds one ``nn.Module`` core per slot (a
    ``lbpbench.contracts.LearnerCore``: ``core(pieces, carry, need_message) -> CoreOutput``), plus
    ``carry_size(slot)``, ``standardize`` and ``scale_output``. It is called as
    ``factory(message_size=..., hidden_size=..., mlp_widths=..., untrained_message_mlp=...,
    **learner_options)``. (Older docs said the factory returns the core itself; it returns the
    family.) Built-ins: stateless, stateful, backprop.
    """


@hookspec
def lbpbench_register_tasks(register: Register) -> None:
    """Register task families (kind ``task``).

    The factory must return an object satisfying ``lbpbench.contracts.TaskFamily``: ``name``,
    ``network`` (a ``NetworkSpec``), ``inner_steps``, ``batch_size``, ``metric``
    (``"eval_loss"`` or ``"eval_accuracy"``) and ``sample(n_tasks, generator, split="train")
    -> TaskBatch``; optionally ``meta_defaults`` (``lbpbench.contracts.MetaDefaults``: the task's
    own ``meta_batch``, ``meta_lr``, ``init_pool``, ``calibration_passes``, ``calibration_blend``).
    Options the harness may pass: ``data_dir``.
    """


@hookspec
def lbpbench_register_baselines(register: Register) -> None:
    """Register baselines (kind ``baseline``): hand-designed learning rules run through the same
    harness and evaluation as learned protocols.

    The factory must return an object satisfying ``lbpbench.contracts.Baseline``:

    - ``name: str`` — the label reports show;
    - ``lrs: Sequence[float]`` — the learning-rate grid the harness tunes over (the harness may
      override it from ``RunConfig.baseline_lrs``);
    - ``step(params: dict[str, Tensor], grads: dict[str, Tensor], state, lr: float)
      -> (params, state)`` — one functional update (no in-place changes); ``state`` is ``None``
      on the first step and whatever the previous call returned afterwards.

    Baselines that meta-learn an initial point (MAML) also satisfy
    ``lbpbench.contracts.MetaLearnsInit``: ``meta_learns_init = True`` and ``inner_lr``.
    Built-ins: sgd, adam, maml.
    """
