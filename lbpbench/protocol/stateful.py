"""The stateful learner: the MLP-GRU of the MPLP appendix (eqs. 10-12), carries per instance.

Carry layout (MPLP.md §3): parameter nodes [update | hidden | message], others [hidden | message].
The update is channel 0 and the message the last k channels of the *new* carry, used raw.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from lbpbench.protocol.piecewise import KerasDense, glorot_uniform, project_pieces
from lbpbench.protocol.slots import CoreOutput, SlotInfo
from lbpbench.protocol.stateless import _check_widths


class StatefulCore(nn.Module):
    """u = σ(x Wux + c Wuc + bu), r = σ(x Wrx + c Wrc + br),
    c' = u c + (1-u) tanh(MLP_x(x) + MLP_c(r c) + bn).

    The x-side kernels of u, r and MLP_x's first layer are evaluated as one piecewise projection.
    """

    def __init__(self, slot: SlotInfo, carry_size: int, mlp_widths: Sequence[int]) -> None:
        super().__init__()
        widths = _check_widths(mlp_widths)
        f, c = slot.in_features, carry_size
        self.widths = slot.piece_widths
        self.carry_size = c
        self.is_param = slot.is_param
        self.message_size = slot.message_size
        self.W_update_x = nn.Parameter(glorot_uniform(f, c))
        self.W_update_c = nn.Parameter(glorot_uniform(c, c))
        self.b_update = nn.Parameter(torch.full((c,), -1.0))
        self.W_reset_x = nn.Parameter(glorot_uniform(f, c))
        self.W_reset_c = nn.Parameter(glorot_uniform(c, c))
        self.b_reset = nn.Parameter(torch.full((c,), -1.0))
        self.b_next = nn.Parameter(torch.zeros(c))
        self.mlp_x = nn.ModuleList(
            [
                KerasDense(a, b, bias=i < len(widths))
                for i, (a, b) in enumerate(zip([f, *widths], [*widths, c], strict=True))
            ]
        )
        self.mlp_c = nn.ModuleList(
            [
                KerasDense(a, b, bias=i < len(widths))
                for i, (a, b) in enumerate(zip([c, *widths], [*widths, c], strict=True))
            ]
        )

    def forward(self, pieces: list[Tensor], carry: Tensor | None, need_message: bool) -> CoreOutput:
        c = self.carry_size
        kernel = torch.cat([self.W_update_x, self.W_reset_x, self.mlp_x[0].kernel], dim=1)
        bias = torch.cat([self.b_update, self.b_reset, self.mlp_x[0].bias])
        px = project_pieces(pieces, self.widths, kernel, bias)
        if carry is None:
            carry = px.new_zeros(())
        gates = px[..., : 2 * c] + carry @ torch.cat([self.W_update_c, self.W_reset_c], dim=1)
        u = torch.sigmoid(gates[..., :c])
        r = torch.sigmoid(gates[..., c:])
        hx = torch.tanh(px[..., 2 * c :])
        for layer in self.mlp_x[1:-1]:
            hx = torch.tanh(layer(hx))
        hc = r * carry
        for layer in self.mlp_c[:-1]:
            hc = torch.tanh(layer(hc))
        candidate = torch.tanh(self.mlp_x[-1](hx) + self.mlp_c[-1](hc) + self.b_next)
        new_carry = u * carry + (1 - u) * candidate
        update = new_carry[..., :1] if self.is_param else None
        message = new_carry[..., -self.message_size :]
        return CoreOutput(update, message, new_carry)

    def reference_tensors(self) -> tuple[list[tuple[str, Tensor]], list[tuple[str, Tensor]]]:
        gru = [
            ("gru.W_update_x", self.W_update_x),
            ("gru.W_update_c", self.W_update_c),
            ("gru.b_update", self.b_update),
            ("gru.W_reset_x", self.W_reset_x),
            ("gru.W_reset_c", self.W_reset_c),
            ("gru.b_reset", self.b_reset),
            ("gru.b_next", self.b_next),
        ]
        for name, mlp in (("mlp_x", self.mlp_x), ("mlp_c", self.mlp_c)):
            for i, layer in enumerate(mlp):
                gru += layer.reference_tensors(f"gru.{name}.dense{i}")
        return gru, []


class StatefulLearner:
    """Registered as learner `stateful`."""

    name = "stateful"
    standardize = True
    scale_output = True

    def __init__(
        self,
        message_size: int = 8,
        hidden_size: int = 15,
        mlp_widths: Sequence[int] = (80, 40),
        **_ignored: object,
    ) -> None:
        if not isinstance(hidden_size, int) or hidden_size < 0:
            raise ValueError(f"hidden_size must be a non-negative integer, got {hidden_size!r}")
        self.message_size = message_size
        self.hidden_size = hidden_size
        self.mlp_widths = _check_widths(mlp_widths)

    def carry_size(self, slot: SlotInfo) -> int:
        return (1 if slot.is_param else 0) + self.hidden_size + slot.message_size

    def make_core(self, slot: SlotInfo) -> nn.Module:
        return StatefulCore(slot, self.carry_size(slot), self.mlp_widths)
