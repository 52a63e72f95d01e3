"""Aggregators reduce per-edge messages over the fan-out axis (a sweep axis: mean, sum, rnn, max,
attention)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from lbpbench.protocol.vmapped import is_vmapped


class _FixedReduction(nn.Module):
    """An aggregator without weights: the options a factory receives (message_size, ...) are unused."""

    def __init__(self, message_size: int = 8, **_ignored: object) -> None:
        super().__init__()

    def aggregate(self, edges: Tensor, dim: int) -> Tensor:
        raise NotImplementedError

    def forward(self, edges: Tensor, dim: int) -> Tensor:
        return self.aggregate(edges, dim)


class MeanAggregator(_FixedReduction):
    """Mean over fan-out (appendix eq. 9): the reference's choice."""

    def aggregate(self, edges: Tensor, dim: int) -> Tensor:
        return edges.mean(dim=dim)


class SumAggregator(_FixedReduction):
    """Sum over fan-out: with the backprop learner this is the chain rule's sum."""

    def aggregate(self, edges: Tensor, dim: int) -> Tensor:
        return edges.sum(dim=dim)


class MaxAggregator(_FixedReduction):
    """Channel-wise maximum over fan-out: order-free like mean, but keeps the strongest signal
    instead of averaging it away (its gradient reaches only the arg-max edge)."""

    def aggregate(self, edges: Tensor, dim: int) -> Tensor:
        return edges.amax(dim=dim)


class AttentionAggregator(nn.Module):
    """Learned attention pooling over fan-out: softmax(edges · q / √k) weights, channel-wise sum.

    Order-free; q is meta-trained with the learners. It starts at 0, where the weights are uniform,
    so an untrained attention aggregator is exactly the mean.
    """

    def __init__(self, message_size: int = 8, **_ignored: object) -> None:
        super().__init__()
        self.query = nn.Parameter(torch.zeros(message_size))
        self.scale = float(message_size) ** -0.5

    def aggregate(self, edges: Tensor, dim: int) -> Tensor:
        scores = (edges * self.query).sum(-1, keepdim=True) * self.scale  # [..., fan_out, ..., 1]
        weights = torch.softmax(scores, dim=dim)
        return (weights * edges).sum(dim=dim)

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
        if is_vmapped(self.gru.weight_ih_l0) or is_vmapped(sequences):
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


def check_aggregator(
    obj: object,
    name: str,
    *,
    layer: str | None = None,
    edges_shape: Sequence[int] | None = None,
    dim: int = 3,
) -> None:
    """A plugin aggregator must offer aggregate(edges, dim); say so early instead of mid-step.

    With `edges_shape` (a layer's real message shape, e.g. [1, 1, fan_in, fan_out, k]) it is also
    called once on a probe of that shape, so a wrong output shape fails at network build, naming
    the aggregator, the layer and both shapes, instead of as a broadcasting error mid meta-step.
    The probe uses its own generator: the global random stream (and so every run) is unchanged.
    """
    aggregate = getattr(obj, "aggregate", None)
    if not callable(aggregate):
        raise ValueError(f"aggregator {name!r} does not provide aggregate(edges, dim)")
    if edges_shape is None:
        return
    shape = tuple(int(s) for s in edges_shape)
    expected = shape[: dim % len(shape)] + shape[dim % len(shape) + 1 :]
    where = f"layer {layer}" if layer else "a layer"
    probe = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    try:
        with torch.no_grad():
            out = aggregate(probe, dim=dim)
    except Exception as exc:  # noqa: BLE001 - any failure is the plugin's; report where it happened
        raise ValueError(
            f"aggregator {name!r} failed on {where}'s messages of shape {shape} (dim={dim}), "
            f"expected to return shape {expected}: {type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(out, Tensor):
        raise ValueError(
            f"aggregator {name!r} returned {type(out).__name__} for {where} (messages {shape}, dim={dim}); "
            f"expected a Tensor of shape {expected}"
        )
    if tuple(out.shape) != expected:
        raise ValueError(
            f"aggregator {name!r} returned shape {tuple(out.shape)} for {where} (messages {shape} "
            f"reduced over dim={dim}); expected shape {expected}"
        )
