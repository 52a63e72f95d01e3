"""The stateful learner: the MLP-GRU of the MPLP appendix (eqs. 10-12), carries per instance.

Carry layout (MPLP.md §3): parameter nodes [update | hidden | message], others [hidden | message].
The update is channel 0 and the message the last k channels of the *new* carry, used raw.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from lbpbench.protocol.fast_tanh import fast_tanh
from lbpbench.protocol.piecewise import KerasDense, glorot_uniform, project_pieces
from lbpbench.protocol.slots import CoreOutput, SlotInfo
from lbpbench.protocol.stateless import _check_widths


def gru_cell(
    gates_x: Tensor,
    pre_x: Tensor,
    carry: Tensor,
    gate_c_kernel: Tensor,
    mlp_x_kernels: list[Tensor],
    mlp_x_biases: list[Tensor],
    mlp_c_kernels: list[Tensor],
    mlp_c_biases: list[Tensor],
    b_next: Tensor,
) -> Tensor:
    """The MLP-GRU update given the x-side projections; returns the new carry.

    Written for speed but equal to the plain equations (tests/test_fast_paths.py): the gate
    pre-activation is one addmm onto the broadcast x-part, u and r come from one sigmoid and a split
    (no slice backward), tanh is `fast_tanh` (2σ(2z) − 1 on the CPU, backward from the output),
    both last layers accumulate into one tensor, and u c + (1 - u) cand is one lerp.
    """
    shape = carry.shape
    c = shape[-1]
    flat_carry = carry.reshape(-1, c)
    gates = torch.addmm(gates_x.expand(*shape[:-1], 2 * c).reshape(-1, 2 * c), flat_carry, gate_c_kernel)
    u, r = torch.sigmoid(gates).split([c, c], dim=-1)
    hx = fast_tanh(pre_x.expand(*shape[:-1], pre_x.shape[-1]).reshape(-1, pre_x.shape[-1]))
    for kernel, bias in zip(mlp_x_kernels[:-1], mlp_x_biases, strict=True):
        hx = fast_tanh(torch.addmm(bias, hx, kernel))
    hc = r * flat_carry
    for kernel, bias in zip(mlp_c_kernels[:-1], mlp_c_biases, strict=True):
        hc = fast_tanh(torch.addmm(bias, hc, kernel))
    candidate = torch.addmm(b_next, hx, mlp_x_kernels[-1])
    candidate = fast_tanh(torch.addmm(candidate, hc, mlp_c_kernels[-1]))
    return torch.lerp(candidate, flat_carry, u).view(shape)


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
        # Two separate piecewise projections (gate x-part, MLP_x first layer) instead of one fused
        # projection sliced afterwards: the backward of a slice allocates and zero-fills a tensor of
        # the full fused width, which cost ~15 % of a meta-step.
        gates_x = project_pieces(
            pieces,
            self.widths,
            torch.cat([self.W_update_x, self.W_reset_x], dim=1),
            torch.cat([self.b_update, self.b_reset]),
        )
        pre_x = project_pieces(pieces, self.widths, self.mlp_x[0].kernel, self.mlp_x[0].bias)
        if carry is None:
            carry = gates_x.new_zeros((*gates_x.shape[:-1], self.carry_size))
        new_carry = gru_cell(
            gates_x,
            pre_x,
            carry,
            torch.cat([self.W_update_c, self.W_reset_c], dim=1),
            [layer.kernel for layer in self.mlp_x[1:]],
            [layer.bias for layer in self.mlp_x[1:-1]],
            [layer.kernel for layer in self.mlp_c],
            [layer.bias for layer in self.mlp_c[:-1]],
            self.b_next,
        )
        k = self.message_size
        if self.is_param:
            update, _, message = new_carry.split([1, self.carry_size - 1 - k, k], dim=-1)
        else:
            update = None
            _, message = new_carry.split([self.carry_size - k, k], dim=-1)
        return CoreOutput(update, message, new_carry)

    def instance_macs(self, need_message: bool = True) -> int:
        """Multiply-adds per node instance of the core's instance-level matmuls; the first layer is
        excluded because it runs on un-broadcast pieces. The carry is computed whether or not a
        message is needed, so `need_message` changes nothing here. (The bench's analytic FLOPs.)"""
        c = self.carry_size
        gates_c = c * 2 * c  # [c, 2c]: W_update_c and W_reset_c side by side
        return (
            gates_c
            + sum(layer.kernel.numel() for layer in self.mlp_x[1:])
            + sum(layer.kernel.numel() for layer in self.mlp_c)
        )

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
