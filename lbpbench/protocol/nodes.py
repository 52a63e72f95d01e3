"""Built-in node types: dense, activations, softmax and losses (MPLP.md §2, LAYOUT.md §1).

A node type owns its forward pass, what it stores for the backward pass, the learner input pieces
it exposes (in reference order), and how messages are routed through its learner slots. It also
knows its exact local derivative, which the `backprop` learner uses to reproduce autograd.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch
from torch import Tensor

from lbpbench.protocol.slots import SlotInfo


class SlotRunner(Protocol):
    """Runs a learner slot on raw input pieces; returns (parameter delta or None, message or None).

    `aggregate_dim`, when given, is the fan-out axis of per-edge messages to reduce with the
    network's aggregator.
    """

    def __call__(
        self, slot: str, pieces: list[Tensor], *, need_message: bool = True, aggregate_dim: int | None = None
    ) -> tuple[Tensor | None, Tensor | None]: ...


class Node:
    """Base class. Shapes carry a leading task axis T and, inside a step, a batch axis B."""

    role = "node"  # dense | activation | output | loss
    kind = "node"

    def __init__(self, name: str, size: int) -> None:
        self.name = name
        self.size = size

    def slot_pieces(self, message_size: int) -> dict[str, tuple[tuple[str, int], ...]]:
        raise NotImplementedError

    def param_slots(self) -> tuple[str, ...]:
        return ()

    def slots(self, message_size: int) -> list[SlotInfo]:
        return [
            SlotInfo(self.name, slot, self.kind, pieces, slot in self.param_slots(), message_size, self)
            for slot, pieces in self.slot_pieces(message_size).items()
        ]

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        return {}

    def carry_shape(self, slot: str, batch: int) -> tuple[int, ...]:
        """Instance shape of a slot's carry, without the task axis and the channel axis."""
        return (batch, self.size)

    def forward(self, params: dict[str, Tensor], x: Tensor) -> tuple[Tensor, Any]:
        raise NotImplementedError

    def backward(
        self, run: SlotRunner, params: dict[str, Tensor], stash: Any, message: Tensor
    ) -> tuple[Tensor | None, dict[str, Tensor]]:
        raise NotImplementedError

    def exact_message(self, slot: str, pieces: list[Tensor]) -> Tensor:
        raise NotImplementedError(f"node type {self.kind} has no exact derivative")

    def exact_gradient(self, slot: str, pieces: list[Tensor]) -> Tensor:
        raise NotImplementedError(f"node type {self.kind} has no parameters")


class DenseNode(Node):
    """z = x W + b with a W learner per synapse and a b learner per unit; b runs first."""

    role = "dense"
    kind = "dense"

    def __init__(self, name: str, in_size: int, out_size: int) -> None:
        super().__init__(name, out_size)
        self.in_size = in_size
        self.out_size = out_size

    def slot_pieces(self, message_size: int) -> dict[str, tuple[tuple[str, int], ...]]:
        # Dict order is the reference checkpoint's block order: W block, then b block.
        return {
            "W": (("message", message_size), ("W", 1), ("W_in", 1)),
            "b": (("message", message_size), ("b", 1), ("b_in", 1)),
        }

    def param_slots(self) -> tuple[str, ...]:
        return ("W", "b")

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"W": (self.in_size, self.out_size), "b": (self.out_size,)}

    def carry_shape(self, slot: str, batch: int) -> tuple[int, ...]:
        return (batch, self.in_size, self.out_size) if slot == "W" else (batch, self.out_size)

    def forward(self, params: dict[str, Tensor], x: Tensor) -> tuple[Tensor, Any]:
        h = x @ params["W"]
        return h + params["b"].unsqueeze(-2), (x, h)

    def backward(
        self, run: SlotRunner, params: dict[str, Tensor], stash: Any, message: Tensor
    ) -> tuple[Tensor | None, dict[str, Tensor]]:
        x, h = stash  # [T,B,in], [T,B,out]
        W, b = params["W"], params["b"]
        db, msg_b = run("b", [message, b[:, None, :, None], h[..., None]])
        assert msg_b is not None
        # Per synapse (i, j): the b learner's message of unit j, w_ij and the input x_i.
        pieces = [msg_b.unsqueeze(2), W[:, None, :, :, None], x[:, :, :, None, None]]
        is_first = self.name == "dense1"
        dW, msg_w = run("W", pieces, need_message=not is_first, aggregate_dim=3)
        assert dW is not None and db is not None
        return msg_w, {"W": dW, "b": db}

    def exact_gradient(self, slot: str, pieces: list[Tensor]) -> Tensor:
        message, _, state_in = pieces
        return message if slot == "b" else state_in * message  # dL/db = m, dL/dW_ij = x_i m_j

    def exact_message(self, slot: str, pieces: list[Tensor]) -> Tensor:
        message, param, _ = pieces
        return message if slot == "b" else param * message  # summed over fan-out: sum_j w_ij m_j


class ActivationNode(Node):
    """Elementwise φ(z); its learner sees the message and the pre-activation z."""

    role = "activation"

    def slot_pieces(self, message_size: int) -> dict[str, tuple[tuple[str, int], ...]]:
        return {"learner": (("message", message_size), ("act_in", 1))}

    def activation(self, z: Tensor) -> Tensor:
        raise NotImplementedError

    def derivative(self, z: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, params: dict[str, Tensor], x: Tensor) -> tuple[Tensor, Any]:
        return self.activation(x), x

    def backward(
        self, run: SlotRunner, params: dict[str, Tensor], stash: Any, message: Tensor
    ) -> tuple[Tensor | None, dict[str, Tensor]]:
        _, msg = run("learner", [message, stash[..., None]])
        return msg, {}

    def exact_message(self, slot: str, pieces: list[Tensor]) -> Tensor:
        message, z = pieces
        return self.derivative(z) * message


class ReluNode(ActivationNode):
    kind = "relu"

    def activation(self, z: Tensor) -> Tensor:
        return torch.relu(z)

    def derivative(self, z: Tensor) -> Tensor:
        return (z > 0).to(z.dtype)


class SigmoidNode(ActivationNode):
    kind = "sigmoid"

    def activation(self, z: Tensor) -> Tensor:
        return torch.sigmoid(z)

    def derivative(self, z: Tensor) -> Tensor:
        s = torch.sigmoid(z)
        return s * (1 - s)


class TanhNode(ActivationNode):
    kind = "tanh"

    def activation(self, z: Tensor) -> Tensor:
        return torch.tanh(z)

    def derivative(self, z: Tensor) -> Tensor:
        return 1 - torch.tanh(z) ** 2


class StepNode(ActivationNode):
    """max(0, sign z): no useful gradient, which is why learned protocols are tried on it."""

    kind = "step"

    def activation(self, z: Tensor) -> Tensor:
        return torch.clamp(torch.sign(z), min=0)

    def derivative(self, z: Tensor) -> Tensor:
        return torch.zeros_like(z)


class SoftmaxNode(Node):
    """Softmax over classes; its learner sees logit, logit - max, exp(logit - max) and their sum."""

    role = "output"
    kind = "softmax"

    def slot_pieces(self, message_size: int) -> dict[str, tuple[tuple[str, int], ...]]:
        names = ("inputs", "translated_inputs", "exp_nom", "exp_denom")
        return {"learner": (("message", message_size), *((n, 1) for n in names))}

    def forward(self, params: dict[str, Tensor], x: Tensor) -> tuple[Tensor, Any]:
        return torch.softmax(x, dim=-1), x

    def backward(
        self, run: SlotRunner, params: dict[str, Tensor], stash: Any, message: Tensor
    ) -> tuple[Tensor | None, dict[str, Tensor]]:
        logits = stash
        translated = logits - logits.max(dim=-1, keepdim=True).values
        exp_nom = torch.exp(translated)
        exp_denom = exp_nom.sum(dim=-1, keepdim=True).expand_as(exp_nom)
        pieces = [message, logits[..., None], translated[..., None], exp_nom[..., None], exp_denom[..., None]]
        _, msg = run("learner", pieces)
        return msg, {}

    def exact_message(self, slot: str, pieces: list[Tensor]) -> Tensor:
        # With cross-entropy the loss node already sends dL/dlogits = p - t.
        return pieces[0]


class LossNode(Node):
    """Seeds the backward pass with the element loss as a 1-channel message."""

    role = "loss"

    def slot_pieces(self, message_size: int) -> dict[str, tuple[tuple[str, int], ...]]:
        return {"learner": (("loss_value", 1), ("x", 1), ("targets", 1), (self.state_name, 1))}

    state_name = "diff"

    def element_loss(self, prediction: Tensor, target: Tensor) -> Tensor:
        raise NotImplementedError

    def pieces(self, prediction: Tensor, target: Tensor) -> list[Tensor]:
        raise NotImplementedError

    def forward(self, params: dict[str, Tensor], x: Tensor) -> tuple[Tensor, Any]:
        raise TypeError("loss nodes are evaluated with element_loss(prediction, target)")

    def backward(
        self, run: SlotRunner, params: dict[str, Tensor], stash: Any, message: Tensor
    ) -> tuple[Tensor | None, dict[str, Tensor]]:
        prediction, target = stash
        _, msg = run("learner", self.pieces(prediction, target))
        return msg, {}


class L2LossNode(LossNode):
    """½ (t - x)²; learner pieces: loss value, x, t, t - x."""

    kind = "l2"
    state_name = "diff"

    def element_loss(self, prediction: Tensor, target: Tensor) -> Tensor:
        return 0.5 * (target - prediction) ** 2

    def pieces(self, prediction: Tensor, target: Tensor) -> list[Tensor]:
        diff = target - prediction
        return [(0.5 * diff**2)[..., None], prediction[..., None], target[..., None], diff[..., None]]

    def exact_message(self, slot: str, pieces: list[Tensor]) -> Tensor:
        return -pieces[3]  # x - t


class CrossEntropyLossNode(LossNode):
    """-t log p̂ with p̂ = clip(p, 1e-7, 1 - 1e-7); pieces: loss value, p̂, t, log p̂."""

    kind = "cross_entropy"
    state_name = "log_in"
    EPS = 1e-7

    def element_loss(self, prediction: Tensor, target: Tensor) -> Tensor:
        return -target * torch.log(prediction.clamp(self.EPS, 1 - self.EPS))

    def pieces(self, prediction: Tensor, target: Tensor) -> list[Tensor]:
        p = prediction.clamp(self.EPS, 1 - self.EPS)
        log_p = torch.log(p)
        return [(-target * log_p)[..., None], p[..., None], target[..., None], log_p[..., None]]

    def exact_message(self, slot: str, pieces: list[Tensor]) -> Tensor:
        return pieces[1] - pieces[2]  # p - t: the gradient w.r.t. the logits, through the softmax
