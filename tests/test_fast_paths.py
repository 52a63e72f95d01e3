"""Every fast path against its plain equations on random inputs (CPU, fast)."""

from __future__ import annotations

import pytest
import torch

from lbpbench.bench import core_instance_macs, learner_macs
from lbpbench.protocol.builder import build_network
from lbpbench.protocol.slots import SlotInfo
from lbpbench.protocol.stateful import StatefulCore
from lbpbench.protocol.stateless import StatelessCore
from lbpbench.tasks.network_spec import NetworkSpec


def _slot(is_param: bool = True, k: int = 3) -> SlotInfo:
    return SlotInfo("dense2", "W", "dense", (("message", k), ("W", 1), ("W_in", 1)), is_param, k)


def _pieces(k: int = 3, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [
        torch.randn(3, 1, 5, k, generator=g, requires_grad=True),
        torch.randn(1, 4, 5, 1, generator=g, requires_grad=True),
        torch.randn(3, 4, 1, 1, generator=g, requires_grad=True),
    ]


def _concat(pieces: list[torch.Tensor]) -> torch.Tensor:
    shape = torch.broadcast_shapes(*[p.shape[:-1] for p in pieces])
    return torch.cat([p.expand(*shape, p.shape[-1]) for p in pieces], dim=-1)


def _plain_gru(core: StatefulCore, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Appendix eqs. 10-12 written out on the concatenated input, no fusion."""
    u = torch.sigmoid(x @ core.W_update_x + c @ core.W_update_c + core.b_update)
    r = torch.sigmoid(x @ core.W_reset_x + c @ core.W_reset_c + core.b_reset)
    hx, hc = x, r * c
    for layer in core.mlp_x[:-1]:
        hx = torch.tanh(hx @ layer.kernel + layer.bias)
    for layer in core.mlp_c[:-1]:
        hc = torch.tanh(hc @ layer.kernel + layer.bias)
    cand = torch.tanh(hx @ core.mlp_x[-1].kernel + hc @ core.mlp_c[-1].kernel + core.b_next)
    return u * c + (1 - u) * cand


@pytest.mark.parametrize("is_param", [True, False])
def test_fused_gru_cell_matches_plain_equations_forward_and_backward(is_param: bool) -> None:
    torch.manual_seed(0)
    k = 3
    carry_size = (1 if is_param else 0) + 4 + k
    core = StatefulCore(_slot(is_param, k), carry_size, (16, 8))
    with torch.no_grad():  # non-trivial biases so every term is exercised
        for p in core.parameters():
            p.add_(0.1 * torch.randn_like(p))
    pieces = _pieces(k)
    carry = torch.randn(3, 4, 5, carry_size, requires_grad=True)
    out = core(pieces, carry, True)
    plain = _plain_gru(core, _concat(pieces), carry)
    torch.testing.assert_close(out.carry, plain, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(out.message, plain[..., -k:])
    if is_param:
        torch.testing.assert_close(out.raw_update, plain[..., :1])
    else:
        assert out.raw_update is None
    weights = torch.randn_like(plain)
    inputs = [*pieces, carry, *core.parameters()]
    fast_grads = torch.autograd.grad((out.carry * weights).sum(), inputs)
    plain_grads = torch.autograd.grad((plain * weights).sum(), inputs)
    for a, b in zip(fast_grads, plain_grads, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_stateless_split_matches_plain_mlps_with_gradients() -> None:
    torch.manual_seed(1)
    core = StatelessCore(_slot(), (16, 8), False)
    pieces = _pieces()
    out = core(pieces, None, True)
    x = _concat(pieces)

    def mlp(layers: torch.nn.ModuleList, h: torch.Tensor) -> torch.Tensor:
        for layer in layers[:-1]:
            h = torch.relu(h @ layer.kernel + layer.bias)
        return torch.tanh(h @ layers[-1].kernel + layers[-1].bias)

    assert core.update_mlp is not None
    up, msg = mlp(core.update_mlp, x), mlp(core.message_mlp, x)
    torch.testing.assert_close(out.raw_update, up)
    torch.testing.assert_close(out.message, msg)
    g_fast = torch.autograd.grad(out.raw_update.sum() + out.message.sum(), pieces)
    g_plain = torch.autograd.grad(up.sum() + msg.sum(), pieces)
    for a, b in zip(g_fast, g_plain, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    only_update = core(pieces, None, False)
    assert only_update.message is None
    torch.testing.assert_close(only_update.raw_update, up)


def test_learner_macs_counts_instances_times_core_work() -> None:
    spec = NetworkSpec(1, (20, 20, 1), "relu", "identity", "l2")
    net = build_network(spec, learner="stateful")
    per = core_instance_macs(net.cores["dense2_W"])
    assert per == 24 * 48 + 80 * 40 + 40 * 24 + 24 * 80 + 80 * 40 + 40 * 24  # the issue's ≈11.4k
    total = learner_macs(net, n_tasks=2, batch_size=10)
    assert total > 2 * 10 * 20 * 20 * per  # at least the dense2 synapses
    assert learner_macs(build_network(spec, learner="backprop", message_size=1), 2, 10) == 0


def test_fast_tanh_matches_tanh_values_gradients_and_vmap() -> None:
    from lbpbench.protocol.fast_tanh import fast_tanh

    x = torch.cat([torch.linspace(-60, 60, 2001), torch.randn(5000) * 3, torch.tensor([0.0, 1e-30, -1e-8])])
    x.requires_grad_(True)
    y = fast_tanh(x)
    exact = torch.tanh(x.detach().double())
    assert (y.detach().double() - exact).abs().max().item() < 3e-7
    assert y.detach().abs().max().item() <= 1.0
    (grad,) = torch.autograd.grad(y.sum(), x)
    torch.testing.assert_close(grad, 1 - y.detach() ** 2)  # tanh's own backward, from the output
    rows = x.detach()[:7000].reshape(7, 1000).requires_grad_(True)
    batched = torch.func.vmap(fast_tanh)(rows)  # seed-vectorised runs map the learners over seeds
    torch.testing.assert_close(batched.detach(), y.detach()[:7000].reshape(7, 1000))
    (grad,) = torch.autograd.grad(batched.sum(), rows)  # plain ops under vmap: 4σ(1−σ), rounded apart
    torch.testing.assert_close(grad, 1 - batched.detach() ** 2, rtol=1e-5, atol=1e-6)

