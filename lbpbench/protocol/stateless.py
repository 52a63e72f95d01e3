"""The stateless learner: an update MLP f and a message MLP g on the same inputs (MPLP.md §3)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from lbpbench.protocol.piecewise import KerasDense, project_pieces
from lbpbench.protocol.slots import CoreOutput, SlotInfo


def _check_widths(mlp_widths: Sequence[int]) -> list[int]:
    widths = list(mlp_widths)
    if not widths or any(not isinstance(w, int) or w < 1 for w in widths):
        raise ValueError(f"mlp_widths must be a non-empty list of positive integers, got {mlp_widths!r}")
    return widths


class StatelessCore(nn.Module):
    """f: F -> widths -> 1 and g: F -> widths -> k, ReLU hidden layers, tanh outputs.

    Both first layers are evaluated as one piecewise projection (their kernels side by side).
    """

    carry_size = 0
    message_only_prefixes = ("message_mlp.",)

    def __init__(self, slot: SlotInfo, mlp_widths: Sequence[int], untrained_message_mlp: bool) -> None:
        super().__init__()
        widths = _check_widths(mlp_widths)
        self.widths = slot.piece_widths
        self.is_param = slot.is_param
        dims = [slot.in_features, *widths]
        self.update_mlp = (
            nn.ModuleList([KerasDense(a, b) for a, b in zip(dims, [*widths, 1], strict=True)])
            if slot.is_param
            else None
        )
        self.message_mlp = nn.ModuleList(
            [KerasDense(a, b) for a, b in zip(dims, [*widths, slot.message_size], strict=True)]
        )
        if untrained_message_mlp:
            # The reference's typo: message MLPs never reach the meta-optimiser.
            for p in self.message_mlp.parameters():
                p.requires_grad_(False)

    def _rest(self, h: Tensor, layers: nn.ModuleList) -> Tensor:
        for layer in layers[1:-1]:
            h = torch.relu(layer(h))
        return torch.tanh(layers[-1](h))

    def forward(self, pieces: list[Tensor], carry: Tensor | None, need_message: bool) -> CoreOutput:
        first = []
        if self.update_mlp is not None:
            first.append(self.update_mlp[0])
        if need_message:
            first.append(self.message_mlp[0])
        kernel = torch.cat([layer.kernel for layer in first], dim=1)
        bias = torch.cat([layer.bias for layer in first])
        h = torch.relu(project_pieces(pieces, self.widths, kernel, bias))
        width = first[0].kernel.shape[1]
        update = message = None
        if self.update_mlp is not None and need_message:
            # split, not slicing: a slice's backward zero-fills a tensor of the full fused width.
            h_update, h = h.split([width, h.shape[-1] - width], dim=-1)
            update = self._rest(h_update, self.update_mlp)
        elif self.update_mlp is not None:
            update = self._rest(h, self.update_mlp)
        if need_message:
            message = self._rest(h, self.message_mlp)
        return CoreOutput(update, message, None)

    def instance_macs(self, need_message: bool = True) -> int:
        """Multiply-adds per node instance of the core's instance-level matmuls; the first layer is
        excluded because it runs on un-broadcast pieces. (The bench's analytic FLOPs.)"""
        macs = 0
        if self.update_mlp is not None:
            macs += sum(layer.kernel.numel() for layer in self.update_mlp[1:])
        if need_message:
            macs += sum(layer.kernel.numel() for layer in self.message_mlp[1:])
        return macs

    def reference_tensors(self) -> tuple[list[tuple[str, Tensor]], list[tuple[str, Tensor]]]:
        """(before out_scale, after out_scale) in the reference checkpoint's block order."""
        before = []
        if self.update_mlp is not None:
            for i, layer in enumerate(self.update_mlp):
                before += layer.reference_tensors(f"update_mlp.dense{i}")
        after = []
        for i, layer in enumerate(self.message_mlp):
            after += layer.reference_tensors(f"message_mlp.dense{i}")
        return before, after


class StatelessLearner:
    """Registered as learner `stateless`."""

    name = "stateless"
    standardize = True
    scale_output = True

    def __init__(
        self,
        message_size: int = 8,
        mlp_widths: Sequence[int] = (80, 40),
        untrained_message_mlp: bool = False,
        **_ignored: object,
    ) -> None:
        self.message_size = message_size
        self.mlp_widths = _check_widths(mlp_widths)
        self.untrained_message_mlp = untrained_message_mlp

    def carry_size(self, slot: SlotInfo) -> int:
        return 0

    def make_core(self, slot: SlotInfo) -> nn.Module:
        return StatelessCore(slot, self.mlp_widths, self.untrained_message_mlp)
