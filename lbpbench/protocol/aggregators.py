"""Aggregators reduce per-edge messages over the fan-out axis (a sweep axis: mean, sum, rnn)."""

from __future__ import annotations

import torch
from torch import Tensor, nn


def _is_batched(t: Tensor) -> bool:
    """True for a tensor seen inside torch.func.vmap."""
    return bool(torch._C._functorch.is_batchedtensor(t))


class MeanAggregator(nn.Module):
    """Mean over fan-out (appendix eq. 9): the reference's choice."""

    def __init__(self, message_size: int = 8, **_ignored: object) -> None:
        super().__init__()

    def aggregate(self, edges: Tensor, dim: int) -> Tensor:
        return edges.mean(dim=dim)

    forward = aggregate


class SumAggregator(nn.Module):
    """Sum over fan-out: with the backprop learner this is the chain rule's sum."""

    def __init__(self, message_size: int = 8, **_ignored: object) -> None:
        super().__init__()

    def aggregate(self, edges: Tensor, dim: int) -> Tensor:
        return edges.sum(dim=dim)

    forward = aggregate


class RNNAggregator(nn.Module):
    """A GRU run along the fan-out axis; its final state is projected to the message size.

    Order-dependent by design (it can learn, say, to attend to the first units); its parameters are
    meta-trained together with the learners.
    """

    def __init__(self, message_size: int = 8, rnn_hidden: int = 16, **_ignored: object) -> None:
        super().__init__()
        if not isinstance(rnn_hidden, int) or rnn_hidden < 1:
            raise ValueError(f"rnn_hidden must be a positive integer, got {rnn_hidden!r}")
        self.gru = nn.GRU(message_size, rnn_hidden, batch_first=True)
        self.project = nn.Linear(rnn_hidden, message_size)

    def aggregate(self, edges: Tensor, dim: int) -> Tensor:
        moved = edges.movedim(dim, -2)  # [..., fan_out, k]
        lead = moved.shape[:-2]
        sequences = moved.reshape(-1, moved.shape[-2], moved.shape[-1])
        if _is_batched(self.gru.weight_ih_l0) or _is_batched(sequences):
            final = self.scan(sequences)  # under vmap (seed batches): aten::gru has no batching rule
        else:
            final = self.gru(sequences)[1][-1]
        return self.project(final).reshape(*lead, -1)

    def scan(self, sequences: Tensor) -> Tensor:
        """nn.GRU's final state written out step by step (PyTorch's gate order r, z, n)."""
        g = self.gru
        x_gates = sequences @ g.weight_ih_l0.T + g.bias_ih_l0  # all steps' input part at once
        h = sequences.new_zeros(sequences.shape[0], g.hidden_size)
        for t in range(sequences.shape[1]):
            h_gates = h @ g.weight_hh_l0.T + g.bias_hh_l0
            xr, xz, xn = x_gates[:, t].chunk(3, dim=-1)
            hr, hz, hn = h_gates.chunk(3, dim=-1)
            r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
            n = torch.tanh(xn + r * hn)
            h = torch.lerp(n, h, z)  # (1 - z) n + z h
        return h

    forward = aggregate


def check_aggregator(obj: object, name: str) -> None:
    """A plugin aggregator must offer aggregate(edges, dim); say so early instead of mid-step."""
    if not callable(getattr(obj, "aggregate", None)):
        raise ValueError(f"aggregator {name!r} does not provide aggregate(edges, dim)")
