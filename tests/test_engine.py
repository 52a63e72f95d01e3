"""The MPLP engine: exactness of the fast paths, backprop parity, meta-gradients, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from engine_helpers import batch, reference_dir, small_net

from lbpbench.cli import main
from lbpbench.protocol.builder import build_network
from lbpbench.protocol.checkpoint import export_vector, layout_table, load_vector
from lbpbench.protocol.gradient_seed import GradientSeedCore
from lbpbench.protocol.nodes import L2LossNode, Node
from lbpbench.protocol.piecewise import project_pieces
from lbpbench.protocol.slots import SlotInfo
from lbpbench.protocol.stateful import StatefulCore
from lbpbench.protocol.stateless import StatelessCore
from lbpbench.reference.golden import infer_setup, load_reference_network
from lbpbench.tasks.network_spec import NetworkSpec


def _synapse_pieces(B=3, n_in=4, n_out=5, k=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [
        torch.randn(B, 1, n_out, k, generator=g),
        torch.randn(1, n_in, n_out, 1, generator=g),
        torch.randn(B, n_in, 1, 1, generator=g),
    ]


def _concat(pieces):
    shape = torch.broadcast_shapes(*[p.shape[:-1] for p in pieces])
    return torch.cat([p.expand(*shape, p.shape[-1]) for p in pieces], dim=-1)


def test_piecewise_projection_equals_concatenation():
    pieces = _synapse_pieces()
    kernel, bias = torch.randn(5, 7), torch.randn(7)
    fast = project_pieces(pieces, [3, 1, 1], kernel, bias)
    plain = _concat(pieces) @ kernel + bias
    torch.testing.assert_close(fast, plain, atol=1e-5, rtol=1e-5)


def _slot(is_param=True, k=3):
    return SlotInfo("dense2", "W", "dense", (("message", k), ("W", 1), ("W_in", 1)), is_param, k)


def test_stateless_core_matches_plain_concatenated_mlps():
    torch.manual_seed(1)
    core = StatelessCore(_slot(), (80, 40), False)
    pieces = _synapse_pieces()
    out = core(pieces, None, True)
    x = _concat(pieces)

    def mlp(layers, h):
        for layer in layers[:-1]:
            h = torch.relu(h @ layer.kernel + layer.bias)
        return torch.tanh(h @ layers[-1].kernel + layers[-1].bias)

    torch.testing.assert_close(out.raw_update, mlp(core.update_mlp, x), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.message, mlp(core.message_mlp, x), atol=1e-5, rtol=1e-5)


def test_stateful_core_matches_plain_gru_equations():
    torch.manual_seed(2)
    core = StatefulCore(_slot(), 1 + 2 + 3, (80, 40))
    pieces = _synapse_pieces()
    carry = torch.randn(3, 4, 5, 6)
    out = core(pieces, carry, True)
    x = _concat(pieces)
    u = torch.sigmoid(x @ core.W_update_x + carry @ core.W_update_c + core.b_update)
    r = torch.sigmoid(x @ core.W_reset_x + carry @ core.W_reset_c + core.b_reset)
    hx = torch.tanh(x @ core.mlp_x[0].kernel + core.mlp_x[0].bias)
    hx = torch.tanh(hx @ core.mlp_x[1].kernel + core.mlp_x[1].bias) @ core.mlp_x[2].kernel
    hc = torch.tanh((r * carry) @ core.mlp_c[0].kernel + core.mlp_c[0].bias)
    hc = torch.tanh(hc @ core.mlp_c[1].kernel + core.mlp_c[1].bias) @ core.mlp_c[2].kernel
    expected = u * carry + (1 - u) * torch.tanh(hx + hc + core.b_next)
    torch.testing.assert_close(out.carry, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.raw_update, expected[..., :1])
    torch.testing.assert_close(out.message, expected[..., -3:])


@pytest.mark.parametrize(
    "activation,loss",
    [
        ("relu", "l2"),
        ("sigmoid", "l2"),
        ("tanh", "l2"),
        ("sigmoid", "cross_entropy"),
        ("relu", "cross_entropy"),
        ("tanh", "cross_entropy"),
    ],
)
def test_backprop_learner_equals_autograd_sgd(activation, loss):
    lr = 0.1
    net = small_net("backprop", "sum", loss=loss, activation=activation, lr=lr)
    x, y = batch(net, n_tasks=2, steps=3, b=4)
    params = net.init_params(2, torch.Generator().manual_seed(3))
    params = {k: v + 0.1 * torch.randn_like(v) for k, v in params.items()}  # non-zero biases too
    ref = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    carries = net.init_carries(2, 4)
    for s in range(3):
        params = net.inner_step(params, carries, x[:, s], y[:, s]).params
        # per-example loss summed over outputs, averaged over the batch, summed over tasks
        element = net.optimizee.element_loss(ref, x[:, s], y[:, s])
        grads = torch.autograd.grad(element.sum(-1).mean(-1).sum(), list(ref.values()))
        ref = {
            k: (v - lr * g).detach().requires_grad_(True)
            for (k, v), g in zip(ref.items(), grads, strict=True)
        }
        for k in params:
            torch.testing.assert_close(params[k], ref[k].detach(), atol=1e-6, rtol=0)


LEARNERS = ["stateless", "stateful", "backprop"]
AGGREGATORS = ["mean", "sum", "rnn"]


@pytest.mark.parametrize("learner", LEARNERS)
@pytest.mark.parametrize("aggregator", AGGREGATORS)
@pytest.mark.parametrize("sharing", ["layer", "all"])
def test_meta_gradients_reach_every_learner_and_aggregator_parameter(learner, aggregator, sharing):
    net = small_net(learner, aggregator, sharing=sharing)
    x, y = batch(net, n_tasks=2, steps=3, b=4)
    net.calibrate(x[:1], y[:1])
    params = net.init_params(2, torch.Generator().manual_seed(0))
    carries = net.init_carries(2, 4)
    for s in range(3):
        out = net.inner_step(params, carries, x[:, s], y[:, s])
        params, carries = out.params, out.carries
    net.loss(params, x[:, 0], y[:, 0]).mean().backward()
    unused = set(net.unused_parameter_names())
    checked = 0
    for name, p in net.named_parameters():
        if name in unused:
            assert p.grad is None or torch.all(p.grad == 0), name
            continue
        assert p.grad is not None, f"no meta-gradient reaches {name}"
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, f"zero meta-gradient at {name}"
        checked += 1
    assert checked > 0
    if aggregator == "rnn":
        assert any(n.startswith("aggregators.") for n, _ in net.named_parameters())


def test_task_axis_equals_separate_runs():
    net = small_net("stateful", "rnn")
    x, y = batch(net, n_tasks=3, steps=2, b=4)
    net.calibrate(x[:1], y[:1])
    params = net.init_params(3, torch.Generator().manual_seed(0))
    carries = net.init_carries(3, 4)
    joint = net.inner_step(params, carries, x[:, 0], y[:, 0])
    for t in range(3):
        single = net.inner_step(
            {k: v[t : t + 1] for k, v in params.items()},
            {k: v[t : t + 1] for k, v in carries.items()},
            x[t : t + 1, 0],
            y[t : t + 1, 0],
        )
        for k in params:
            torch.testing.assert_close(single.params[k][0], joint.params[k][t], atol=1e-6, rtol=1e-5)


def test_calibration_measures_live_statistics_and_blends():
    net = small_net("stateful")
    x, y = batch(net, n_tasks=1, steps=1, b=4)
    g = torch.Generator().manual_seed(5)
    net.calibrate(x, y, generator=g)
    params = net.init_params(1, torch.Generator().manual_seed(5))
    pred = net(params, x[:, 0])
    pieces = net.nodes[-1].pieces(pred, y[:, 0])
    std = net.standardizers["loss"]

    def closed_form(t: torch.Tensor) -> tuple[float, float]:
        """shift = -mean, scale = 1 / population std, in float64 numpy (not the code under test)."""
        a = t.detach().double().numpy()
        return -a.mean(), 1.0 / a.std()

    for i, piece in enumerate(pieces):
        shift, scale = closed_form(piece)
        assert float(std.shift[i]) == pytest.approx(shift, rel=1e-5, abs=1e-7)
        assert float(std.scale[i]) == pytest.approx(scale, rel=1e-5)
    # Blending: two passes with identical statistics, p = 0.5, from the initial (shift 0, scale 1).
    from lbpbench.protocol.standardize import Standardizer

    blended = Standardizer(["v"])
    v = torch.randn(4, 3) * 2 + 1
    for _ in range(2):
        blended.start_calibration()
        blended([v])
        blended.finish_calibration(0.5)
    shift, scale = closed_form(v)
    assert float(blended.shift[0]) == pytest.approx(0.75 * shift, rel=1e-5)
    assert float(blended.scale[0]) == pytest.approx(0.75 * scale + 0.25, rel=1e-5)
    # out_scale starts at 0.2 x the initial weight std
    assert float(next(iter(net.scalings.values())).out_scale.detach()) == pytest.approx(0.01)


# ------------------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    "kwargs,field",
    [
        (dict(spec=dict(input_size=3, layer_sizes=(5, 0))), "layer_sizes[1]"),
        (dict(spec=dict(input_size=0, layer_sizes=(5,))), "input_size"),
        (dict(spec=dict(input_size=3, layer_sizes=(5, 2), activation="gelu")), "activation 'gelu'"),
        (dict(spec=dict(input_size=3, layer_sizes=(5, 2), loss="hinge")), "loss 'hinge'"),
        (dict(message_size=0), "message_size"),
        (dict(aggregator="maximum"), "unknown aggregator 'maximum'"),
        (dict(learner="lstm"), "unknown learner 'lstm'"),
        (dict(sharing="none"), "sharing"),
        (dict(hidden_size=-1), "hidden_size"),
    ],
)
def test_bad_input_raises_value_error_naming_the_field(kwargs, field):
    spec_kwargs = kwargs.pop("spec", dict(input_size=3, layer_sizes=(5, 2)))
    with pytest.raises(ValueError) as err:
        build_network(NetworkSpec(**spec_kwargs), **kwargs)
    assert field in str(err.value)
    if "unknown" in field:
        assert "registered:" in str(err.value)
    if "gelu" in field:
        assert "relu" in str(err.value) and "sigmoid" in str(err.value)


def test_checkpoint_length_mismatch_is_rejected_and_nothing_is_loaded():
    net = small_net("stateful")
    before = export_vector(net)
    with pytest.raises(ValueError, match="checkpoint length 10 does not match"):
        load_vector(net, np.zeros(10, dtype=np.float32))
    np.testing.assert_array_equal(export_vector(net), before)


def test_export_load_round_trip():
    net = small_net("stateless", "rnn")
    vec = export_vector(net) + 1.0
    load_vector(net, vec)
    np.testing.assert_array_equal(export_vector(net), vec)


# ------------------------------------------------------------------------------------------ reference
GOLDEN = [
    "golden_sinusoid_stateful_5x10.npz",
    "golden_maml_stateless_2x10.npz",
    "golden_mnist_stateful_20x8.npz",
]


def _require(path):
    if not path.exists():
        pytest.skip(f"reference folder not available: {path} is absent (set LBPBENCH_REFERENCE_DIR)")


@pytest.mark.parametrize("golden", GOLDEN)
def test_layout_matches_reference_layout_json(golden):
    path = reference_dir() / golden
    _require(path)
    with np.load(path) as f:
        data = {k: f[k] for k in f.files}
    setup = infer_setup(data, path, None)
    net, _ = load_reference_network(setup)
    expected = json.loads((reference_dir() / "checkpoints" / "layout.json").read_text())[
        setup.checkpoint.name
    ]
    ours = layout_table(net)
    assert [(r["offset"], r["name"], r["shape"]) for r in ours] == [
        (t["offset"], t["name"], t["shape"]) for t in expected["tensors"]
    ]


@pytest.mark.trajectory
@pytest.mark.parametrize("golden", GOLDEN)
def test_reference_verify_cli_passes_on_public_golden_files(golden):
    path = reference_dir() / golden
    _require(path)
    result = CliRunner().invoke(main, ["reference", "verify", str(path)])
    assert result.exit_code == 0, result.output
    assert "PASS" in result.output


@pytest.mark.trajectory
def test_reference_verify_cli_fails_on_a_wrong_checkpoint(tmp_path):
    path = reference_dir() / GOLDEN[1]
    _require(path)
    vec = np.load(reference_dir() / "checkpoints" / "maml_sin_net_weights_00258202.npy")
    bad = tmp_path / "bad.npy"
    np.save(bad, vec * 1.01)
    result = CliRunner().invoke(main, ["reference", "verify", str(path), "--checkpoint", str(bad)])
    assert result.exit_code == 1
    assert "FAIL" in result.output


def test_reference_verify_cli_missing_file(tmp_path):
    result = CliRunner().invoke(main, ["reference", "verify", str(tmp_path / "nope.npz")])
    assert result.exit_code != 0
    assert "not found" in result.output


def test_calibration_without_standardisation_leaves_inputs_raw_and_still_measures_out_mean():
    x, y = batch(small_net("stateful"), n_tasks=1, steps=2, b=4)
    frozen, raw = small_net("stateful"), small_net("stateful")
    frozen.calibrate(x, y, generator=torch.Generator().manual_seed(5))
    raw.calibrate(x, y, generator=torch.Generator().manual_seed(5), standardise=False)
    for name, std in raw.standardizers.items():
        assert torch.equal(std.shift, torch.zeros_like(std.shift)), name
        assert torch.equal(std.scale, torch.ones_like(std.scale)), name
    assert any(not torch.equal(s.shift, torch.zeros_like(s.shift)) for s in frozen.standardizers.values())
    # out_mean is measured in both, on what the learner sees in each case (so they differ)
    for name, scaling in raw.scalings.items():
        assert torch.isfinite(scaling.out_mean).all() and scaling.out_mean.abs().sum() > 0, name
    assert any(not torch.equal(a.out_mean, b.out_mean)
               for a, b in zip(raw.scalings.values(), frozen.scalings.values(), strict=True))


@pytest.mark.parametrize("loss", ["l2", "cross_entropy"])
def test_gradient_loss_rule_sends_the_exact_derivative_in_every_channel(loss):
    """loss_rule "gradient": the loss node's message is x - t (p - t) in all k channels, it has no
    weights or statistics, and every other learner still gets a meta-gradient through it."""
    net = small_net("stateful", loss=loss, loss_rule="gradient")
    assert not [n for n, _ in net.named_parameters() if n.startswith("cores.loss")]
    assert "loss" not in net.standardizers
    x, y = batch(net, n_tasks=2, steps=3, b=4)
    net.calibrate(x[:1], y[:1])
    params = net.init_params(2, torch.Generator().manual_seed(0))
    carries = net.init_carries(2, 4)
    prediction = net.forward(params, x[:, 0])
    out = net.inner_step(params, carries, x[:, 0], y[:, 0], trace=True)
    expected = prediction - y[:, 0]  # dL/dx of ½(t - x)², and dL/dlogits of CE through the softmax
    assert out.messages["loss"].shape == (*expected.shape, net.message_size)
    for channel in range(net.message_size):
        torch.testing.assert_close(out.messages["loss"][..., channel], expected, atol=1e-6, rtol=0)
    params, carries = out.params, out.carries
    for s in range(1, 3):
        out = net.inner_step(params, carries, x[:, s], y[:, s])
        params, carries = out.params, out.carries
    net.loss(params, x[:, 0], y[:, 0]).mean().backward()
    unused = set(net.unused_parameter_names())
    for name, p in net.named_parameters():
        if name not in unused:
            assert p.grad is not None and p.grad.abs().sum() > 0, f"zero meta-gradient at {name}"


def test_gradient_loss_rule_refuses_a_loss_node_without_an_exact_derivative_and_unknown_rules():
    class Opaque(L2LossNode):
        kind = "opaque_l2"
        exact_message = Node.exact_message

    spec = NetworkSpec(3, (5, 2), "relu", "identity", "l2")
    with pytest.raises(ValueError, match="loss_rule must be one of learned, gradient; got 'exact'"):
        build_network(spec, loss_rule="exact")
    info = Opaque(name="loss", size=2).slots(3)[0]
    with pytest.raises(ValueError, match="'opaque_l2' to define exact_message"):
        GradientSeedCore(info)
