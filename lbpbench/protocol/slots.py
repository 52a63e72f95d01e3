"""What a learner is told about the node instances it serves, and what it must return."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from torch import Tensor


@dataclass(frozen=True)
class SlotInfo:
    """One learner slot of one node: e.g. dense2's W learner, or act1's learner.

    `pieces` lists (name, width) of the learner's input pieces in reference order; the first piece
    is the incoming message (k channels) or, for loss nodes, the 1-channel loss value.
    `node` is the node instance, so rule-based learners (backprop) can ask it for exact local
    derivatives.
    """

    node_name: str
    slot: str  # "W", "b" or "learner"
    node_kind: str  # registered node type name: dense, relu, softmax, l2, ...
    pieces: tuple[tuple[str, int], ...]
    is_param: bool
    message_size: int
    node: Any = None

    @property
    def key(self) -> str:
        """Identifier in the reference layout and in traces: dense1_W, act1, loss."""
        return f"{self.node_name}_{self.slot}" if self.slot != "learner" else self.node_name

    @property
    def reference_name(self) -> str:
        """Block name in the reference checkpoints: dense1.W_learner, act1.learner."""
        return (
            f"{self.node_name}.{self.slot}_learner" if self.slot != "learner" else f"{self.node_name}.learner"
        )

    @property
    def piece_names(self) -> list[str]:
        return [name for name, _ in self.pieces]

    @property
    def piece_widths(self) -> list[int]:
        return [width for _, width in self.pieces]

    @property
    def in_features(self) -> int:
        return sum(self.piece_widths)


class CoreOutput(NamedTuple):
    raw_update: Tensor | None  # [..., 1] per node instance and batch slot, None for non-parameter nodes
    message: Tensor | None  # [..., k] outgoing message per instance (None when not asked for)
    carry: Tensor | None  # new carry, None for stateless learners




