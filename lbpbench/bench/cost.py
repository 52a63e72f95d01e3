"""Analytic learner FLOPs: the irreducible work that every timing is compared against.

Each core says how many multiply-adds one node instance costs (`instance_macs`, a method of the
core, so plugin learners count their own work); this module multiplies by the instance counts of
a network's slots. A core without the method counts 0, and the step's cost is reported as unknown
(None), not as a free step.
"""

from __future__ import annotations

import math

from torch import nn

from lbpbench.protocol.network import MessagePassingNetwork


def core_instance_macs(core: nn.Module, need_message: bool = True) -> int:
    """The core's own `instance_macs(need_message)`, or 0 for a core that does not define it
    (check `uncounted_cores` before presenting the total as the true cost)."""
    count = getattr(core, "instance_macs", None)
    return 0 if count is None else int(count(need_message=need_message))


def uncounted_cores(net: MessagePassingNetwork) -> list[str]:
    """Names of the network's cores without `instance_macs`: their work is missing from the count."""
    return [name for name, core in net.cores.items() if getattr(core, "instance_macs", None) is None]


def slot_instances(net: MessagePassingNetwork, n_tasks: int, batch_size: int) -> dict[str, int]:
    """Node instances per slot of one inner step: tasks x the node's carry shape for the batch."""
    return {
        key: n_tasks * math.prod(entry.info.node.carry_shape(entry.info.slot, batch_size))
        for key, entry in net.entries.items()
    }


def learner_macs(net: MessagePassingNetwork, n_tasks: int, batch_size: int) -> int:
    """Learner multiply-adds of one forward inner step: sum over slots of instances x core MACs.

    The first W slot sends no message (nothing is upstream of it), so its core skips that work.
    """
    first_w = next(key for key, e in net.entries.items() if e.info.slot == "W")
    return sum(
        instances * core_instance_macs(net.cores[net.entries[key].core], need_message=key != first_w)
        for key, instances in slot_instances(net, n_tasks, batch_size).items()
    )


def step_flops(
    net: MessagePassingNetwork, n_tasks: int, batch_size: int, backward: bool = False
) -> float | None:
    """2 FLOPs per multiply-add; a backward pass costs two more matmuls per forward one.

    None when a core does not count its work: an unknown cost must not read as a free step.
    """
    if uncounted_cores(net):
        return None
    return 2.0 * learner_macs(net, n_tasks, batch_size) * (3 if backward else 1)


def meta_step_flops(
    net: MessagePassingNetwork, n_tasks: int, batch_size: int, inner_steps: int
) -> float | None:
    """A meta-step unrolls `inner_steps` inner steps and backpropagates through all of them."""
    flops = step_flops(net, n_tasks, batch_size, backward=True)
    return None if flops is None else inner_steps * flops
