"""The loss node's fixed rule `loss_rule = "gradient"`: it sends the element loss's exact
derivative (x - t for L2, p - t for cross-entropy through the softmax) in every message channel.

Why it exists: whether a seed leaves the sinusoid's task-average plateau looked decided by the
loss node's initial learner (results/search/README.md, rounds 5-8). With this rule instead, every
other node keeps its learner; it did not remove that lottery (round 9: 1 of 4 seeds escaped), so
the loss-node message and the learners reading it decide together. It stays a setting for studies
of what the loss node's learner contributes (round 10: the MAML-style task).
"""

from __future__ import annotations

from torch import Tensor, nn

from lbpbench.protocol.nodes import Node
from lbpbench.protocol.slots import CoreOutput, SlotInfo


class GradientSeedCore(nn.Module):
    """No weights: asks the loss node for its exact message and repeats it over the k channels.

    Its inputs are the raw pieces (the network gives it no standardiser), so the message is the
    derivative itself; the carry, if the learner family keeps one, passes through untouched.
    """

    def __init__(self, slot: SlotInfo) -> None:
        super().__init__()
        if type(slot.node).exact_message is Node.exact_message:
            raise ValueError(f'loss_rule "gradient" needs the loss node type {slot.node_kind!r} to define '
                             "exact_message (its exact derivative); it does not")
        self.slot = slot

    def forward(self, pieces: list[Tensor], carry: Tensor | None, need_message: bool) -> CoreOutput:
        if not need_message:
            return CoreOutput(None, None, carry)
        message = self.slot.node.exact_message(self.slot.slot, pieces)
        return CoreOutput(None, message.expand(*message.shape[:-1], self.slot.message_size), carry)

    def instance_macs(self, need_message: bool = True) -> int:
        """0: an elementwise rule, no instance-level matmuls."""
        return 0

    def reference_tensors(self) -> tuple[list[tuple[str, Tensor]], list[tuple[str, Tensor]]]:
        return [], []
