"""Dense layers that take their input as broadcastable pieces instead of one concatenated tensor.

A learner's first layer on concat(p_1, ..., p_n) equals sum_i p_i @ K_i with K_i the kernel rows of
piece i. Pieces live on small un-broadcast shapes (x on [B,in,1], w on [in,out], the message on
[B,1,out]), so each product is cheap and only the sum is materialised at full instance shape.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def glorot_uniform(fan_in: int, fan_out: int, generator: torch.Generator | None = None) -> Tensor:
    """Keras' default kernel initialiser, kernel stored [in, out] like Keras."""
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    return (torch.rand(fan_in, fan_out, generator=generator) * 2 - 1) * bound


def project_pieces(pieces: list[Tensor], widths: list[int], kernel: Tensor, bias: Tensor | None) -> Tensor:
    """sum_i pieces[i] @ kernel[rows of i] (+ bias), broadcasting the pieces against each other."""
    if sum(widths) != kernel.shape[0]:
        raise ValueError(f"pieces have {sum(widths)} features but the kernel expects {kernel.shape[0]}")
    # One split (one backward node) instead of a slice per piece, whose backward each zero-fills
    # a kernel-sized gradient; width-1 rows are squeezed (a view), not selected.
    blocks = kernel.split(widths, dim=0)
    out: Tensor | None = None
    # Add the smaller pieces first so only the last addition allocates at full instance shape.
    for i in sorted(range(len(pieces)), key=lambda i: pieces[i].numel()):
        term = pieces[i] * blocks[i].squeeze(0) if widths[i] == 1 else pieces[i] @ blocks[i]
        if out is None:
            out = term if bias is None else term + bias
        else:
            out = out + term
    assert out is not None
    return out


class KerasDense(nn.Module):
    """y = x @ kernel + bias with a Keras-layout kernel [in, out], so checkpoints load verbatim."""

    def __init__(self, fan_in: int, fan_out: int, bias: bool = True) -> None:
        super().__init__()
        self.kernel = nn.Parameter(glorot_uniform(fan_in, fan_out))
        self.bias = nn.Parameter(torch.zeros(fan_out)) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        y = x @ self.kernel
        return y if self.bias is None else y + self.bias

    def reference_tensors(self, prefix: str) -> list[tuple[str, Tensor]]:
        out = [(f"{prefix}.kernel", self.kernel)]
        if self.bias is not None:
            out.append((f"{prefix}.bias", self.bias))
        return out
