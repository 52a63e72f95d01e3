"""The engine's built-in components, registered through the same hooks as any third party."""

from __future__ import annotations

from lbpbench.hookspecs import Register, hookimpl
from lbpbench.protocol.aggregators import (
    AttentionAggregator,
    MaxAggregator,
    MeanAggregator,
    RNNAggregator,
    SumAggregator,
)
from lbpbench.protocol.backprop_learner import BackpropLearner
from lbpbench.protocol.nodes import (
    CrossEntropyLossNode,
    DenseNode,
    L2LossNode,
    ReluNode,
    SigmoidNode,
    SoftmaxNode,
    StepNode,
    TanhNode,
)
from lbpbench.protocol.stateful import StatefulLearner
from lbpbench.protocol.stateless import StatelessLearner


@hookimpl
def lbpbench_register_node_types(register: Register) -> None:
    register("dense", DenseNode, "Dense layer: a W learner per synapse, a b learner per unit (b runs first)")
    register("relu", ReluNode, "ReLU activation; learner sees message and pre-activation")
    register("sigmoid", SigmoidNode, "Sigmoid activation; learner sees message and pre-activation")
    register("tanh", TanhNode, "tanh activation; learner sees message and pre-activation")
    register("step", StepNode, "Step activation max(0, sign z): zero gradient, learnable protocol")
    register("softmax", SoftmaxNode, "Softmax output; learner sees logit, logit-max, exp, sum of exps")
    register("l2", L2LossNode, "L2 loss ½(t-x)²; seeds the backward with the element loss")
    register(
        "cross_entropy", CrossEntropyLossNode, "Cross-entropy on clipped probabilities; seeds the backward"
    )


@hookimpl
def lbpbench_register_aggregators(register: Register) -> None:
    register("mean", MeanAggregator, "Mean over fan-out (the reference, appendix eq. 9)")
    register("sum", SumAggregator, "Sum over fan-out (the chain rule's reduction)")
    register("rnn", RNNAggregator, "GRU along the fan-out axis, final state projected to k; meta-trained")
    register("max", MaxAggregator, "Channel-wise maximum over fan-out")
    register("attention", AttentionAggregator, "Softmax attention pooling over fan-out, learned query")


@hookimpl
def lbpbench_register_learners(register: Register) -> None:
    register("stateless", StatelessLearner, "Two MLPs (update f, message g), ReLU hidden, tanh outputs")
    register("stateful", StatefulLearner, "MLP-GRU with per-instance carry [update | hidden | message]")
    register("backprop", BackpropLearner, "Hand-set rules reproducing autograd + SGD (k=1, sum aggregation)")
