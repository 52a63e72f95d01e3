"""Built-in aggregators: closed forms, gradients against autograd, and use inside the engine."""

from __future__ import annotations

import pytest
import torch

from lbpbench.harness.config import RunConfig
from lbpbench.harness.members import ProtocolMember
from lbpbench.harness.population import Population
from lbpbench.protocol.aggregators import AttentionAggregator, MaxAggregator


def test_max_is_the_channelwise_maximum():
    edges = torch.tensor([[[1.0, -2.0], [3.0, -5.0], [0.0, 4.0]]])  # [1, fan_out 3, k 2]
    assert MaxAggregator(2).aggregate(edges, dim=1).tolist() == [[3.0, 4.0]]


def test_untrained_attention_is_the_mean_and_a_query_weights_by_softmax():
    torch.manual_seed(0)
    edges = torch.randn(2, 5, 4, 3)  # reduce over dim 2 (fan-out 4), k = 3
    agg = AttentionAggregator(message_size=3)
    torch.testing.assert_close(agg.aggregate(edges, dim=2), edges.mean(dim=2))
    with torch.no_grad():
        agg.query.copy_(torch.tensor([1.0, -0.5, 2.0]))
    # closed form, computed edge by edge in float64
    e = edges.double()
    q = agg.query.detach().double()
    scores = (e * q).sum(-1) / 3**0.5  # [2, 5, 4]
    w = scores.exp() / scores.exp().sum(2, keepdim=True)
    expected = (w.unsqueeze(-1) * e).sum(2)
    torch.testing.assert_close(agg.aggregate(edges, dim=2).double(), expected, rtol=1e-5, atol=1e-6)


def test_attention_query_gets_gradients_that_match_finite_differences():
    torch.manual_seed(1)
    edges = torch.randn(3, 6, 2, dtype=torch.float64)
    agg = AttentionAggregator(message_size=2).double()
    with torch.no_grad():
        agg.query.copy_(torch.tensor([0.3, -0.7], dtype=torch.float64))
    torch.autograd.gradcheck(lambda q: torch.func.functional_call(agg, {"query": q}, (edges, 1)),
                             (agg.query.detach().clone().requires_grad_(),))


@pytest.mark.trajectory
@pytest.mark.parametrize("aggregator", ["max", "attention"])
def test_new_aggregators_meta_train_alone_and_in_a_seed_batch(aggregator, one_thread):
    configs = [RunConfig(aggregator=aggregator, message_size=4, hidden_size=4, mlp_widths=[16],
                         meta_batch=2, seed=s) for s in (0, 1)]
    batch = Population([ProtocolMember(c) for c in configs])
    single = Population([ProtocolMember(configs[0])])
    for _ in range(2):
        batch.meta_step()
        single.meta_step()
    assert not any(m.diverged for m in batch.members)
    flat = lambda m: [v for row in m.history for v in row]  # noqa: E731
    assert flat(batch.members[0]) == pytest.approx(flat(single.members[0]), rel=1e-5)
    if aggregator == "attention":  # its query is meta-trained
        batch.sync(0)
        query = next(v for k, v in batch.members[0].net.named_parameters() if k.endswith("query"))
        assert query.abs().sum() > 0


@pytest.mark.trajectory
def test_frozen_standardisation_makes_sum_train_as_mean(one_thread):
    """sum = fan-in x mean on every node of a layer, and the statistics frozen at calibration divide
    the factor out again: under the paper's calibration a sum-aggregated learner meta-trains as the
    mean-aggregated one up to float rounding; with raw inputs (no standardisation) it does not. This
    is what ablation (b) measures once trained (results/ablation/b_aggregator_learner_trained.toml).
    Compared on the learners' weights after three meta-steps: the meta-losses of untrained learners
    barely depend on their messages yet (5e-5 relative apart even with raw inputs)."""

    def trained_weights(aggregator: str, calibration: str) -> dict[str, torch.Tensor]:
        config = RunConfig(aggregator=aggregator, calibration=calibration, message_size=4, hidden_size=4,
                           mlp_widths=[16], meta_batch=2, seed=0)
        population = Population([ProtocolMember(config)])
        for _ in range(3):
            population.meta_step()
        population.sync(0)
        return {k: v.detach() for k, v in population.members[0].net.named_parameters()}

    def largest_relative_change(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
        return max(float((a[k] - b[k]).abs().max() / a[k].abs().max().clamp_min(1e-12)) for k in a)

    frozen = largest_relative_change(trained_weights("mean", "frozen"), trained_weights("sum", "frozen"))
    raw = largest_relative_change(trained_weights("mean", "no-standardisation"),
                                  trained_weights("sum", "no-standardisation"))
    assert frozen < 1e-4  # measured 1.7e-6: float rounding
    assert raw > 0.1  # measured 3.9: different learners
