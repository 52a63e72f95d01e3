"""lbpbench.contracts: the Protocols a plugin codes against, the checks behind Registry.create, and
the aggregator shape probe at network build."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import torch

from lbpbench import contracts
from lbpbench.contracts import (
    Aggregator,
    Baseline,
    CountsInstanceMacs,
    HasMetaDefaults,
    LearnerCore,
    LearnerFamily,
    MetaLearnsInit,
    NodeType,
    TaskFamily,
    contract_problems,
    meta_defaults,
    protocol_members,
)
from lbpbench.protocol.aggregators import check_aggregator
from lbpbench.protocol.builder import build_network
from lbpbench.protocol.nodes import ReluNode
from lbpbench.registry import PluginContractError, get_registry
from lbpbench.tasks.base import NetworkSpec

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.usefixtures("isolated_plugins")

SPEC = NetworkSpec(3, (5, 4, 2), "relu", "identity", "l2")  # dense1 3->5, dense2 5->4, dense3 4->2


def plugin(folder: Path, stem: str, body: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem}.py"
    path.write_text("import torch\nfrom lbpbench import hookimpl\n\n" + textwrap.dedent(body))
    return path


def aggregator_plugin(folder: Path, name: str, aggregate_body: str) -> Path:
    """A plugin file registering one aggregator whose aggregate(edges, dim) runs `aggregate_body`."""
    body = textwrap.indent(textwrap.dedent(aggregate_body).strip(), " " * 8)
    return plugin(
        folder,
        f"agg_{name.replace('-', '_')}",
        f"class Agg:\n"
        f"    def __init__(self, message_size, **options):\n"
        f"        self.message_size = message_size\n\n"
        f"    def aggregate(self, edges, dim):\n{body}\n\n"
        f"@hookimpl\ndef lbpbench_register_aggregators(register):\n    register({name!r}, Agg)\n",
    )


# -- the Protocols --------------------------------------------------------------------------------


def test_protocol_members_are_the_documented_contract():
    assert protocol_members(NodeType) == (
        ["name", "size", "role", "kind"],
        ["slots", "param_shapes", "carry_shape", "forward", "backward"],
    )
    assert protocol_members(Aggregator) == ([], ["aggregate"])
    assert protocol_members(LearnerFamily) == (
        ["name", "standardize", "scale_output"],
        ["carry_size", "make_core"],
    )
    assert protocol_members(LearnerCore) == ([], ["__call__"])
    assert protocol_members(TaskFamily) == (
        ["name", "network", "inner_steps", "batch_size", "metric"],
        ["sample"],
    )
    assert protocol_members(Baseline) == (["name", "lrs"], ["step"])
    assert protocol_members(MetaLearnsInit) == (["meta_learns_init", "inner_lr"], [])
    assert protocol_members(HasMetaDefaults) == (["meta_defaults"], [])
    assert protocol_members(CountsInstanceMacs) == ([], ["instance_macs"])
    assert set(contracts.KIND_PROTOCOLS) == set(get_registry().kinds)
    assert set(contracts.__all__) <= set(dir(contracts))


def test_builtins_and_example_plugins_satisfy_their_protocols(signsgd_dist):
    reg = get_registry(plugin_dirs=[REPO / "plugins"], refresh=True)
    made = {
        "median": reg.create("aggregator", "median", message_size=3),
        "signsgd": reg.create("baseline", "signsgd"),
        "maml": reg.create("baseline", "maml"),
        "stateful": reg.create("learner", "stateful", message_size=3),
        "sinusoid": reg.create("task", "sinusoid-5x10"),
        "mnist": reg.create("task", "mnist-20x8", data_dir=None),
        "loss": reg.create("node_type", "cross_entropy", name="loss", size=10),
    }
    assert isinstance(made["median"], Aggregator) and not isinstance(made["median"], torch.nn.Module)
    assert isinstance(made["signsgd"], Baseline) and not isinstance(made["signsgd"], MetaLearnsInit)
    assert isinstance(made["maml"], MetaLearnsInit) and made["maml"].inner_lr > 0
    assert isinstance(made["stateful"], LearnerFamily)
    assert isinstance(made["sinusoid"], TaskFamily) and isinstance(made["mnist"], TaskFamily)
    assert isinstance(made["loss"], contracts.LossNodeType)
    options = {
        "node_type": lambda n: (
            dict(name="dense2", in_size=3, out_size=4) if n == "dense" else dict(name="x", size=4)
        ),
        "aggregator": lambda n: dict(message_size=3),
        "learner": lambda n: dict(message_size=1 if n == "backprop" else 3),
        "task": lambda n: dict(data_dir=None),
        "baseline": lambda n: {},
    }
    every = [c for c in reg.all() if c.name != "fashion-mnist-20x8"]  # needs IDX files
    assert {c.plugin for c in every} >= {"median_aggregator", "lbpbench-signsgd"}
    for comp in every:
        obj = comp.factory(**options[comp.kind](comp.name))
        assert contract_problems(comp.kind, obj, comp.factory) == [], comp


def test_learner_cores_satisfy_learner_core():
    net = build_network(SPEC, learner="stateless", message_size=2, hidden_size=2)
    assert all(isinstance(core, LearnerCore) for core in net.cores.values())


# -- contract_problems -------------------------------------------------------------------------------


class GoodBaseline:
    name = "good"
    lrs = (0.1,)

    def step(self, params, grads, state, lr):
        return params, state


def test_a_satisfying_object_has_no_problems():
    assert contract_problems("baseline", GoodBaseline()) == []


def test_missing_attribute_and_non_callable_method():
    class Bad:
        name = "bad"
        step = 3

    problems = contract_problems("baseline", Bad())
    assert "missing attribute 'lrs'" in problems
    assert "step is not callable (expected method step(params, grads, state, lr, /))" in problems


def test_a_property_that_raises_counts_as_a_problem():
    class Raising(GoodBaseline):
        @property
        def lrs(self):
            raise RuntimeError("no grid")

    assert contract_problems("baseline", Raising()) == ["attribute 'lrs' raised RuntimeError: no grid"]


def test_signatures_are_checked_the_way_lbpbench_calls():
    class NoSplit:
        name, network, inner_steps, batch_size, metric = "t", SPEC, 1, 1, "eval_loss"

        def sample(self, n_tasks, generator):
            raise NotImplementedError

    class NeedsSplit(NoSplit):
        def sample(self, n_tasks, generator, split):  # callers may omit split
            raise NotImplementedError

    class Flexible(NoSplit):
        def sample(self, *args, **kwargs):
            raise NotImplementedError

    (problem,) = contract_problems("task", NoSplit())
    assert "unexpected keyword argument 'split'" in problem
    (problem,) = contract_problems("task", NeedsSplit())
    assert "sample(n_tasks, generator)" in problem and "missing a required argument: 'split'" in problem
    assert contract_problems("task", Flexible()) == []


def test_task_metric_and_meta_defaults_are_checked():
    class Task:
        name, network, inner_steps, batch_size, metric = "t", SPEC, 1, 1, "accuracy"
        meta_defaults = {"meta_lr": 1e-3, "meta_steps": 10}

        def sample(self, n_tasks, generator, split="train"):
            raise NotImplementedError

    problems = contract_problems("task", Task())
    assert "metric is 'accuracy', not one of eval_loss, eval_accuracy" in problems
    assert any("unknown meta_defaults key(s) 'meta_steps'" in p for p in problems)


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ([("meta_lr", 1e-3)], "must be a mapping"),
        ({"meta_batch": 2.0}, "meta_batch'] must be an int"),
        ({"meta_batch": True}, "meta_batch'] must be an int"),
        ({"meta_lr": 0.0}, "out of range"),
        ({"meta_lr": float("inf")}, "out of range"),
        ({"calibration_blend": 1.5}, "out of range"),
        ({"calibration_passes": -1}, "out of range"),
        ({"init_pool": "16"}, "init_pool'] must be an int"),
    ],
)
def test_meta_defaults_validation(value, error):
    class Task:
        meta_defaults = value

    with pytest.raises(ValueError, match=error.replace("[", r"\[").replace("]", r"\]")):
        meta_defaults(Task())


def test_meta_defaults_values():
    class Task:
        meta_defaults = {"meta_batch": 2, "meta_lr": 1e-3, "init_pool": 8, "calibration_passes": 0,
                         "calibration_blend": 0.5}

    assert meta_defaults(Task()) == Task.meta_defaults
    assert meta_defaults(object()) == {}
    assert contracts.META_DEFAULT_KEYS == (
        "meta_batch", "meta_lr", "init_pool", "calibration_passes", "calibration_blend"
    )


def test_meta_learns_init_needs_inner_lr():
    class HalfMaml(GoodBaseline):
        meta_learns_init = True

    assert contract_problems("baseline", HalfMaml()) == [
        "meta_learns_init is set but inner_lr (the inner SGD learning rate) is missing"
    ]


def test_node_type_role_checks():
    def no_role(**kw):  # a factory function: build_network could never select it
        return ReluNode(**kw)

    problems = contract_problems("node_type", ReluNode("a", 2), no_role)
    assert any("factory's role is None" in p for p in problems)

    class FakeDense(ReluNode):
        role = "dense"

    assert "a 'dense' node must subclass lbpbench.protocol.nodes.DenseNode" in contract_problems(
        "node_type", FakeDense("d", 2), FakeDense
    )

    class FakeLoss(ReluNode):
        role = "loss"

    problems = contract_problems("node_type", FakeLoss("loss", 2), FakeLoss)
    assert "a 'loss' node must subclass lbpbench.protocol.nodes.LossNode" in problems
    assert "missing method element_loss(prediction, target, /)" in problems


def test_unknown_kind():
    with pytest.raises(ValueError, match="unknown component kind 'widget'"):
        contract_problems("widget", object())


# -- a new activation node type, exactly as the NodeType docstring writes it ---------------------------

GELU_PLUGIN = '''
from lbpbench.protocol.nodes import ActivationNode

class GeluNode(ActivationNode):
    kind = "gelu"

    def activation(self, z):
        return torch.nn.functional.gelu(z)

    def derivative(self, z):
        cdf = 0.5 * (1 + torch.erf(z / 2**0.5))
        return cdf + z * torch.exp(-0.5 * z**2) / (2 * torch.pi) ** 0.5

@hookimpl
def lbpbench_register_node_types(register):
    register("gelu", GeluNode)
'''


def test_documented_activation_plugin_builds_and_steps(tmp_path):
    plugin(tmp_path, "gelu_node", GELU_PLUGIN)
    reg = get_registry(plugin_dirs=[tmp_path], refresh=True)
    node = reg.create("node_type", "gelu", name="act1", size=4)
    assert isinstance(node, NodeType) and node.role == "activation"
    z = torch.randn(2, 3, 4, requires_grad=True)
    (grad,) = torch.autograd.grad(node.activation(z).sum(), z)
    assert torch.allclose(node.derivative(z), grad, atol=1e-6)
    spec = NetworkSpec(3, (5, 4, 2), "gelu", "identity", "l2")
    net = build_network(spec, learner="backprop", aggregator="sum", message_size=1, registry=reg)
    assert [n.kind for n in net.nodes] == ["dense", "gelu", "dense", "gelu", "dense", "l2"]
    params = net.init_params(2, torch.Generator().manual_seed(0))
    out = net.inner_step(params, net.init_carries(2, 3), torch.randn(2, 3, 3), torch.randn(2, 3, 2))
    assert torch.isfinite(out.loss).all()


# -- aggregator shapes at network build ----------------------------------------------------------------


def test_wrong_shape_aggregator_fails_at_build_naming_layer_and_shapes(tmp_path):
    aggregator_plugin(tmp_path, "bad-shape", "return edges.mean(dim)[..., :1]  # drops channels")
    reg = get_registry(plugin_dirs=[tmp_path], refresh=True)
    reg.create("aggregator", "bad-shape", message_size=3)  # structurally fine: only the probe sees it
    with pytest.raises(ValueError) as err:
        build_network(SPEC, learner="stateless", aggregator="bad-shape", message_size=3, registry=reg)
    msg = str(err.value)
    assert "aggregator 'bad-shape'" in msg and "layer dense2" in msg
    assert "returned shape (1, 1, 5, 1)" in msg and "expected shape (1, 1, 5, 3)" in msg
    assert "(1, 1, 5, 4, 3)" in msg  # the probe: dense2's messages [T, B, fan_in, fan_out, k]


def test_shared_aggregator_is_probed_on_every_layer(tmp_path):
    # right for dense2 (fan-out 4), wrong for dense3 (fan-out 2): sharing "kind" shares one instance
    aggregator_plugin(tmp_path, "picky", "return edges if edges.shape[dim] == 2 else edges.sum(dim)")
    reg = get_registry(plugin_dirs=[tmp_path], refresh=True)
    with pytest.raises(ValueError, match=r"'picky' returned shape \(1, 1, 4, 2, 3\) for layer dense3"):
        build_network(
            SPEC, learner="stateless", aggregator="picky", message_size=3, sharing="kind", registry=reg
        )


def test_aggregator_that_raises_or_returns_no_tensor(tmp_path):
    aggregator_plugin(tmp_path, "crashes", "raise RuntimeError('kaputt')")
    aggregator_plugin(tmp_path, "no-tensor", "return 0.0")
    reg = get_registry(plugin_dirs=[tmp_path], refresh=True)
    with pytest.raises(ValueError, match=r"'crashes' failed on layer dense2's messages.*RuntimeError: kap"):
        build_network(SPEC, learner="stateless", aggregator="crashes", message_size=3, registry=reg)
    with pytest.raises(ValueError, match=r"'no-tensor' returned float for layer dense2.*expected a Tensor"):
        build_network(SPEC, learner="stateless", aggregator="no-tensor", message_size=3, registry=reg)


def test_aggregator_missing_aggregate_fails_in_create(tmp_path):
    path = plugin(
        tmp_path,
        "no_aggregate",
        """
        class Reducer:
            def __init__(self, message_size, **options):
                pass

            def reduce(self, edges, dim):
                return edges.mean(dim)

        @hookimpl
        def lbpbench_register_aggregators(register):
            register("reducer", Reducer)
        """,
    )
    reg = get_registry(plugin_dirs=[tmp_path], refresh=True)
    with pytest.raises(PluginContractError) as err:
        build_network(SPEC, aggregator="reducer", message_size=3, registry=reg)
    msg = str(err.value)
    assert "aggregator 'reducer' from plugin 'no_aggregate'" in msg and str(path) in msg
    assert "missing method aggregate(edges, /, dim)" in msg


@pytest.mark.parametrize("aggregator", ["mean", "sum", "rnn", "median"])
@pytest.mark.parametrize("sharing", ["layer", "kind"])
def test_good_aggregators_pass_the_probe(aggregator, sharing):
    reg = get_registry(plugin_dirs=[REPO / "plugins"], refresh=True)
    net = build_network(SPEC, learner="stateless", aggregator=aggregator, message_size=3, sharing=sharing,
                        registry=reg)
    assert len(net.aggregators) == (2 if sharing == "layer" else 1)


def test_probe_leaves_the_global_random_stream_alone():
    reg = get_registry(refresh=True)
    agg = reg.create("aggregator", "rnn", message_size=3)
    state = torch.get_rng_state()
    check_aggregator(agg, "rnn", layer="dense2", edges_shape=(1, 1, 5, 4, 3), dim=3)
    assert torch.equal(torch.get_rng_state(), state)
