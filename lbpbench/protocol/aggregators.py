"""Aggregators reduce per-edge messages over the fan-out axis (a sweep axis: mean, sum, rnn)."""

from __future__ import annotations

from torch import Tensor, nn


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
        _, h_n = self.gru(sequences)
        return self.project(h_n[-1]).reshape(*lead, -1)

    forward = aggregate


def check_aggregator(obj: object, name: str) -> None:
    """A plugin aggregator must offer aggregate(edges, dim); say so early instead of mid-step."""
    if not callable(getattr(obj, "aggregate", None)):
        raise ValueError(f"aggregator {name!r} does not provide aggregate(edges, dim)")
