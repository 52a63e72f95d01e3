"""Backprop as a learner: hand-set rules that make the protocol reproduce autograd + SGD exactly.

With message size 1 and sum aggregation, messages are the gradients of the per-example loss
(summed over output units) and each parameter moves by -lr times the batch-mean gradient.
It is the correctness anchor of the engine and a baseline inside the learned-protocol framework.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lbpbench.protocol.slots import CoreOutput, SlotInfo


class BackpropCore(nn.Module):
    """Asks the node for its exact local derivative; the learning rate is trainable, in log space
    so that meta-training moves it by ratios (Adam's steps are additive)."""

    carry_size = 0

    def __init__(self, slot: SlotInfo, lr: float) -> None:
        super().__init__()
        self.slot = slot
        self.log_lr = nn.Parameter(torch.tensor(float(lr)).log()) if slot.is_param else None

    def forward(self, pieces: list[Tensor], carry: Tensor | None, need_message: bool) -> CoreOutput:
        node, slot = self.slot.node, self.slot.slot
        update = -self.log_lr.exp() * node.exact_gradient(slot, pieces) if self.log_lr is not None else None
        message = node.exact_message(slot, pieces) if need_message else None
        return CoreOutput(update, message, None)

    def instance_macs(self, need_message: bool = True) -> int:
        """0: elementwise rules (the node's exact derivatives), no instance-level matmuls."""
        return 0

    def reference_tensors(self) -> tuple[list[tuple[str, Tensor]], list[tuple[str, Tensor]]]:
        return ([("log_lr", self.log_lr)] if self.log_lr is not None else []), []


class BackpropLearner:
    """Registered as learner `backprop`: message size must be 1; use the `sum` aggregator for SGD."""

    name = "backprop"
    standardize = False
    scale_output = False

    def __init__(self, message_size: int = 1, lr: float = 0.1, **_ignored: object) -> None:
        if message_size != 1:
            raise ValueError(f"message_size must be 1 for the backprop learner, got {message_size}")
        if lr <= 0:
            raise ValueError(f"lr must be positive for the backprop learner, got {lr}")
        self.lr = lr

    def carry_size(self, slot: SlotInfo) -> int:
        return 0

    def make_core(self, slot: SlotInfo) -> nn.Module:
        return BackpropCore(slot, self.lr)
