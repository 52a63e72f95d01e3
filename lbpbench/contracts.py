"""Plugin contracts: what each hook's factory must return, as one ``typing.Protocol`` per kind.

Every component reaches lbpbench through ``register(name, factory)`` in one of the hooks of
``lbpbench.hookspecs``; ``Registry.create(kind, name, **options)`` calls ``factory(**options)`` and
checks the product against its kind's Protocol here before anything uses it, so a plugin that
misses a method fails at once, naming the plugin and the method, instead of deep inside a
meta-training step.

========== ============================== =====================================================
kind       the factory returns            Protocol
========== ============================== =====================================================
node_type  one node of the optimizee      ``NodeType`` (``LossNodeType`` for role ``loss``)
aggregator a fan-out reduction            ``Aggregator``
learner    a recipe for per-slot cores    ``LearnerFamily`` (its cores: ``LearnerCore``)
task       a task family                  ``TaskFamily``
baseline   a hand-designed learning rule  ``Baseline``
========== ============================== =====================================================

Optional members (never required, used when present) have Protocols of their own:
``CountsInstanceMacs`` (a learner core's FLOP count), ``HasMetaDefaults`` (a task's own
meta-training defaults, see ``MetaDefaults``) and ``MetaLearnsInit`` (MAML-style baselines).

The check (``contract_problems``) is structural: every attribute present, every method callable
and callable *the way lbpbench calls it* (arguments the engine passes by position are
positional-only in the Protocols below, the others are passed by keyword, so their names matter),
plus a few checks where the engine would otherwise fail obscurely later (noted per Protocol).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypedDict, runtime_checkable

if TYPE_CHECKING:
    import torch
    from torch import Tensor

    from lbpbench.protocol.nodes import SlotRunner
    from lbpbench.protocol.slots import CoreOutput, SlotInfo
    from lbpbench.tasks.base import NetworkSpec, TaskBatch

__all__ = [
    "KIND_PROTOCOLS",
    "META_DEFAULT_KEYS",
    "METRICS",
    "NODE_ROLES",
    "Aggregator",
    "Baseline",
    "CountsInstanceMacs",
    "HasMetaDefaults",
    "LearnerCore",
    "LearnerFamily",
    "LossNodeType",
    "MetaDefaults",
    "MetaLearnsInit",
    "NodeType",
    "PluginContractError",
    "TaskFamily",
    "contract_problems",
    "meta_defaults",
    "protocol_members",
]

NODE_ROLES = ("dense", "activation", "output", "loss")
METRICS = ("eval_loss", "eval_accuracy")


# ------------------------------------------------------------------------------------- node_type
@runtime_checkable
class NodeType(Protocol):
    """One node of the optimizee: what a ``node_type`` factory returns.

    The factory is called with keyword options only: ``factory(name=..., size=...)`` for
    activation, output and loss nodes, ``factory(name=..., in_size=..., out_size=...)`` for dense
    nodes. Nodes are named like the reference: ``dense1, act1, dense2, ..., [softmax], loss``.
    The *factory* must carry a ``role`` attribute (``"dense" | "activation" | "output" |
    "loss"``): ``build_network`` picks node types by it (a node class has it as a class attribute).

    Shapes carry a leading task axis T and, inside a step, a batch axis B; messages carry the
    message size k on the last axis.

    Subclass one of the bases in ``lbpbench.protocol.nodes`` rather than writing a node from
    scratch: ``Node`` implements ``slots`` from ``slot_pieces``/``param_slots``; the network finds
    the first dense layer and the loss node by class, so a ``dense`` node must subclass
    ``DenseNode`` and a ``loss`` node ``LossNode`` (checked by ``Registry.create``).

    A new activation, e.g. GELU, is one small class::

        import torch
        from lbpbench import hookimpl
        from lbpbench.protocol.nodes import ActivationNode

        class GeluNode(ActivationNode):      # role = "activation" comes with the base class
            kind = "gelu"                    # the registered name

            def activation(self, z):         # elementwise phi(z), same shape as z [T, B, size]
                return torch.nn.functional.gelu(z)

            def derivative(self, z):         # dphi/dz, same shape; the backprop learner's exact rule
                cdf = 0.5 * (1 + torch.erf(z / 2**0.5))
                return cdf + z * torch.exp(-0.5 * z**2) / (2 * torch.pi) ** 0.5

        @hookimpl
        def lbpbench_register_node_types(register):
            register("gelu", GeluNode)

    ``ActivationNode`` supplies ``forward`` (returns ``(phi(z), z)``: the output and, as the
    stash, the pre-activation) and ``backward`` (runs the node's ``"learner"`` slot on the pieces
    ``[message, z[..., None]]`` and returns ``(outgoing message [T, B, size, k], {})`` — an
    activation has no parameters). A run selects the node type with the run setting
    ``activation`` (``RunConfig.activation``, which overrides the activation of the task's
    ``NetworkSpec``; a sweep axis like any other field: ``activation = ["relu", "gelu"]``) or a
    task does through ``NetworkSpec.activation``.
    """

    name: str  # "dense2", "act1", "loss", ...
    size: int  # units (a dense node's out_size)
    role: str  # one of NODE_ROLES
    kind: str  # the registered node type name

    def slots(self, message_size: int, /) -> list[SlotInfo]:
        """The node's learner slots (dense: ``W`` then ``b``; others one ``"learner"`` slot),
        each listing its input pieces (name, width) in reference order."""
        ...

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """Optimizee parameters by name, without the task axis (dense: ``W [in, out]``, ``b [out]``);
        ``{}`` for nodes without parameters."""
        ...

    def carry_shape(self, slot: str, batch: int, /) -> tuple[int, ...]:
        """Instance shape of a slot's learner carry, without the task and channel axes."""
        ...

    def forward(self, params: dict[str, Tensor], x: Tensor, /) -> tuple[Tensor, Any]:
        """``(output [T, B, size], stash)``: the stash is whatever ``backward`` needs."""
        ...

    def backward(
        self, run: SlotRunner, params: dict[str, Tensor], stash: Any, message: Tensor | None, /
    ) -> tuple[Tensor | None, dict[str, Tensor]]:
        """Run the node's slots through ``run(slot, pieces, need_message=..., aggregate_dim=...)``
        (it returns ``(parameter delta or None, message or None)``) and return ``(message to the
        previous node or None, {parameter name: delta [T, *param shape]})``. ``message`` is the
        next node's message ``[T, B, size, k]`` (``None`` for the loss node, which starts it)."""
        ...


@runtime_checkable
class LossNodeType(NodeType, Protocol):
    """A ``role = "loss"`` node: also computes the element loss (subclass ``LossNode``)."""

    def element_loss(self, prediction: Tensor, target: Tensor, /) -> Tensor:
        """Per-element loss, same shape as ``prediction``; the harness averages it per task."""
        ...


# ------------------------------------------------------------------------------------ aggregator
@runtime_checkable
class Aggregator(Protocol):
    """A reduction of per-synapse messages over the fan-out axis: what an ``aggregator`` factory
    returns.

    The factory is called as ``factory(message_size=k)`` — the only option ``build_network``
    passes today; accept and ignore others (``**options``) so new options do not break you.
    A sweep sets aggregator options only through RunConfig fields (``aggregator`` picks the name,
    ``message_size`` is passed on); an option without a RunConfig field cannot be swept.

    One instance per dense layer after the first with ``sharing = "layer"`` (the first layer's
    W messages are never used), one instance shared by all those layers with ``"kind"`` or
    ``"all"``. It may be a ``torch.nn.Module``: its parameters are then meta-trained with the
    learners (a plain object is wrapped and has none). It must be differentiable, use no global
    random state, and be ``torch.func.vmap``-able (seed batches).

    ``build_network`` calls every instance once on a small probe with each layer's real shape and
    raises ``ValueError`` naming the aggregator, the layer, the expected and the actual shape.
    """

    def aggregate(self, edges: Tensor, /, dim: int) -> Tensor:
        """Reduce ``edges`` over ``dim`` (passed by keyword): a dense layer's W-slot messages
        ``[T, B, fan_in, fan_out, k]`` with ``dim = 3``, channels (the message size k) on the last
        axis. Return ``edges``'s shape without ``dim``: ``[T, B, fan_in, k]``."""
        ...


# --------------------------------------------------------------------------------------- learner
@runtime_checkable
class LearnerCore(Protocol):
    """The small network at one slot: what ``LearnerFamily.make_core`` returns.

    It must be a ``torch.nn.Module`` (the network keeps cores in an ``nn.ModuleDict``; their
    parameters are what meta-training learns). Optional members: ``instance_macs`` (see
    ``CountsInstanceMacs``), ``reference_tensors()`` (only to load/export reference checkpoints)
    and ``message_only_prefixes`` (parameter-name prefixes of the message path).
    """

    def __call__(self, pieces: list[Tensor], carry: Tensor | None, need_message: bool, /) -> CoreOutput:
        """``pieces``: broadcastable tensors in the order of ``SlotInfo.pieces``, each ``[..., width]``
        (standardised first when the family asks for it); ``carry``: ``[T, *carry_shape, C]`` or
        ``None`` (first step, or a stateless learner). Return ``CoreOutput(raw_update, message,
        carry)``: ``raw_update [T, B, *instance, 1]`` for parameter slots (else ``None``),
        ``message [T, B, *instance, k]`` when ``need_message`` (else ``None``), and the new carry
        (``None`` when ``carry_size`` is 0)."""
        ...


@runtime_checkable
class CountsInstanceMacs(Protocol):
    """Optional on a ``LearnerCore``: its multiply-adds per node instance, for the benchmark's FLOP
    count (``lbpbench bench``); without it the core's work is missing from the count and the
    benchmark reports the step's cost as unknown."""

    def instance_macs(self, need_message: bool = True) -> int:
        """Multiply-adds per instance of the instance-level matmuls (the first layer runs on the
        un-broadcast pieces and is not counted); ``need_message=False``: the message path skipped."""
        ...


@runtime_checkable
class LearnerFamily(Protocol):
    """What a ``learner`` factory returns: a recipe for one core per slot (or per shared slot).

    The factory is called as ``factory(message_size=..., hidden_size=..., mlp_widths=(...),
    untrained_message_mlp=..., **learner_options)``; accept and ignore what you do not use
    (``**options``). Earlier hook docs described the factory as returning the core itself: a
    factory returning an ``nn.Module`` core now fails ``Registry.create`` — wrap it in a family.
    """

    name: str
    standardize: bool  # wrap each core's inputs in frozen per-piece standardisation
    scale_output: bool  # parameter updates become (batch mean - out_mean) * out_scale

    def carry_size(self, slot: SlotInfo, /) -> int:
        """Channels C of the slot's per-instance carry; 0 for a stateless learner."""
        ...

    def make_core(self, slot: SlotInfo, /) -> LearnerCore:
        """A fresh core (an ``nn.Module``) for ``slot``; called once per core the sharing needs."""
        ...


# ------------------------------------------------------------------------------------------ task
@runtime_checkable
class TaskFamily(Protocol):
    """What a ``task`` factory returns: a network description plus a deterministic task sampler.

    The factory is called as ``factory(data_dir=...)`` (``None`` or the CLI's ``--data-dir``);
    accept and ignore other options. ``metric`` must be one of ``METRICS`` (checked).
    Optional: ``meta_defaults`` (see ``HasMetaDefaults``), checked when present; and, for
    regression tasks, ``eval_regions(eval_x) -> {name: bool mask [n, points]}``: evaluation then
    also reports ``eval_loss_<name>``, the loss over each region's held-out points (the sinusoid
    families: ``centre`` and ``outer`` by |x|, for the centre-arc signature of MPLP appendix B).
    """

    name: str
    network: NetworkSpec
    inner_steps: int  # S
    batch_size: int  # B
    metric: str  # "eval_loss" (lower is better) | "eval_accuracy" (higher is better)

    def sample(self, n_tasks: int, generator: torch.Generator, /, split: str = "train") -> TaskBatch:
        """``n_tasks`` tasks drawn with ``generator`` only; ``split`` is ``"train"`` or ``"eval"``
        (disjoint data where the family's data is finite). Everything float32 on CPU."""
        ...


class MetaDefaults(TypedDict, total=False):
    """A task's own meta-training defaults; a RunConfig value that is set wins over them."""

    meta_batch: int  # tasks per meta-step
    meta_lr: float  # the outer Adam learning rate
    init_pool: int  # size of the pool of initial optimizee parameters
    calibration_passes: int  # calibration passes before meta-training
    calibration_blend: float  # weight of each pass's statistics, in [0, 1]


META_DEFAULT_KEYS: tuple[str, ...] = tuple(MetaDefaults.__annotations__)
_META_DEFAULT_INTS = frozenset({"meta_batch", "init_pool", "calibration_passes"})


@runtime_checkable
class HasMetaDefaults(Protocol):
    """Optional on a ``TaskFamily``: ``meta_defaults``, a mapping with any of ``META_DEFAULT_KEYS``."""

    meta_defaults: Mapping[str, int | float]


# -------------------------------------------------------------------------------------- baseline
@runtime_checkable
class Baseline(Protocol):
    """What a ``baseline`` factory returns: a hand-designed rule the harness runs on autograd
    gradients, through the same evaluation as learned protocols.

    The factory is called with keyword options only (accept and ignore unknown ones).
    Optional: ``meta_learns_init`` with ``inner_lr`` (see ``MetaLearnsInit``), checked together.
    """

    name: str  # the label reports show
    lrs: Sequence[float]  # the baseline's own learning-rate grid (RunConfig.baseline_lrs may override)

    def step(
        self, params: dict[str, Tensor], grads: dict[str, Tensor], state: Any, lr: float, /
    ) -> tuple[dict[str, Tensor], Any]:
        """One functional update (nothing in place) of every parameter ``[T, ...]``; ``state`` is
        ``None`` on the first step and whatever the previous call returned afterwards."""
        ...


@runtime_checkable
class MetaLearnsInit(Protocol):
    """Optional on a ``Baseline`` (MAML-style): with ``meta_learns_init = True`` the harness
    meta-learns the initial parameters and adapts them with ``step`` at ``inner_lr`` instead of
    searching ``lrs``."""

    meta_learns_init: bool
    inner_lr: float


KIND_PROTOCOLS: dict[str, type] = {
    "node_type": NodeType,
    "aggregator": Aggregator,
    "learner": LearnerFamily,
    "task": TaskFamily,
    "baseline": Baseline,
}


class PluginContractError(TypeError):
    """A factory's product does not satisfy its kind's Protocol (raised by ``Registry.create``)."""

    def __init__(
        self, kind: str, name: str, plugin: str, source: str, problems: Sequence[str], hint: str = ""
    ) -> None:
        self.kind, self.name, self.plugin, self.source = kind, name, plugin, source
        self.problems = list(problems)
        proto = KIND_PROTOCOLS[kind].__name__
        message = (
            f"{kind} {name!r} from plugin {plugin!r} ({source}) does not satisfy "
            f"lbpbench.contracts.{proto}: {'; '.join(self.problems)}"
        )
        super().__init__(message + (f". {hint}" if hint else ""))


# ------------------------------------------------------------------------------------ the checks
def protocol_members(proto: type) -> tuple[list[str], list[str]]:
    """(data attributes, methods) a Protocol declares, its Protocol bases included."""
    attrs: list[str] = []
    methods: list[str] = []
    for klass in reversed(proto.__mro__):
        if klass in (object, Protocol) or not getattr(klass, "_is_protocol", False):
            continue
        for attr in klass.__dict__.get("__annotations__", {}):
            if attr not in attrs:
                attrs.append(attr)
        for attr, value in klass.__dict__.items():
            if callable(value) and (attr == "__call__" or not attr.startswith("_")) and attr not in methods:
                methods.append(attr)
    return attrs, methods


def _call_forms(spec: Callable[..., Any]) -> list[tuple[list[str], list[str]]]:
    """How lbpbench calls a Protocol method: (positional names, keyword names), with and without
    the parameters that have defaults (callers may omit them)."""
    params = list(inspect.signature(spec).parameters.values())[1:]  # drop self
    forms = []
    for with_defaults in (True, False):
        chosen = [p for p in params if with_defaults or p.default is inspect.Parameter.empty]
        positional = [p.name for p in chosen if p.kind is inspect.Parameter.POSITIONAL_ONLY]
        keyword = [
            p.name
            for p in chosen
            if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        ]
        if (positional, keyword) not in forms:
            forms.append((positional, keyword))
    return forms


def _signature_problem(method: str, impl: Any, spec: Callable[..., Any]) -> str | None:
    try:
        signature = inspect.signature(impl)
    except (TypeError, ValueError):  # builtins without a signature: nothing to check
        return None
    for positional, keyword in _call_forms(spec):
        try:
            signature.bind(*positional, **dict.fromkeys(keyword))
        except TypeError as exc:
            call = ", ".join([*positional, *(f"{k}=..." for k in keyword)])
            return f"{method}{signature} cannot be called as lbpbench calls it, {method}({call}): {exc}"
    return None


_MISSING = object()


def _structural_problems(obj: Any, proto: type) -> list[str]:
    attrs, methods = protocol_members(proto)
    problems: list[str] = []
    for attr in attrs:
        try:
            present = hasattr(obj, attr)
        except Exception as exc:  # noqa: BLE001 - a property that raises is as good as missing
            problems.append(f"attribute {attr!r} raised {type(exc).__name__}: {exc}")
            continue
        if not present:
            problems.append(f"missing attribute {attr!r}")
    for method in methods:
        spec = proto.__dict__.get(method) or getattr(proto, method)
        wanted = f"{method}{_public_signature(spec)}"
        if method == "__call__":
            impl = obj if callable(obj) else _MISSING
        else:
            impl = getattr(obj, method, _MISSING)
        if impl is _MISSING:
            problems.append(f"missing method {wanted}")
        elif not callable(impl):
            problems.append(f"{method} is not callable (expected method {wanted})")
        else:
            problem = _signature_problem(method, impl, spec)
            if problem:
                problems.append(problem)
    return problems


def _public_signature(spec: Callable[..., Any]) -> str:
    """``(edges, /, dim)``: the Protocol method's parameters without self and annotations."""
    params = list(inspect.signature(spec).parameters.values())[1:]
    return str(inspect.Signature([p.replace(annotation=inspect.Parameter.empty) for p in params]))


def meta_defaults(family: Any) -> MetaDefaults:
    """A task family's ``meta_defaults``, validated; ``{}`` when it declares none.

    Raises ``ValueError`` naming the bad key or value.
    """
    raw = getattr(family, "meta_defaults", None)
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ValueError(f"meta_defaults must be a mapping, got {type(raw).__name__}")
    unknown = sorted(set(raw) - set(META_DEFAULT_KEYS))
    if unknown:
        raise ValueError(
            f"unknown meta_defaults key(s) {', '.join(map(repr, unknown))}; "
            f"known: {', '.join(META_DEFAULT_KEYS)}"
        )
    out: dict[str, Any] = {}
    for key, value in raw.items():
        integer = key in _META_DEFAULT_INTS
        ok_type = isinstance(value, int) if integer else isinstance(value, int | float)
        if isinstance(value, bool) or not ok_type:
            wanted = "an int" if integer else "a number"
            raise ValueError(f"meta_defaults[{key!r}] must be {wanted}, got {value!r}")
        if key == "calibration_blend":
            ok = 0.0 <= value <= 1.0
        elif key == "calibration_passes":
            ok = value >= 0
        else:
            ok = value > 0 and math.isfinite(value)
        if not ok:
            raise ValueError(f"meta_defaults[{key!r}] is out of range: {value!r}")
        out[key] = value
    return out  # type: ignore[return-value]


def _kind_problems(kind: str, obj: Any, factory: Any) -> list[str]:
    """Checks past the structure, where the engine would otherwise fail far from the cause."""
    problems: list[str] = []
    if kind == "node_type":
        from lbpbench.protocol.nodes import DenseNode, LossNode

        role = getattr(factory, "role", None)
        if role not in NODE_ROLES:
            problems.append(
                f"the factory's role is {role!r}, not one of {', '.join(NODE_ROLES)} "
                "(build_network selects node types by the factory's role attribute)"
            )
        role = getattr(obj, "role", role)
        if role == "dense" and not isinstance(obj, DenseNode):
            problems.append("a 'dense' node must subclass lbpbench.protocol.nodes.DenseNode")
        if role == "loss":
            if not isinstance(obj, LossNode):
                problems.append("a 'loss' node must subclass lbpbench.protocol.nodes.LossNode")
            problems += [p for p in _structural_problems(obj, LossNodeType) if "element_loss" in p]
    elif kind == "task":
        metric = getattr(obj, "metric", None)
        if hasattr(obj, "metric") and metric not in METRICS:
            problems.append(f"metric is {metric!r}, not one of {', '.join(METRICS)}")
        try:
            meta_defaults(obj)
        except ValueError as exc:
            problems.append(str(exc))
    elif kind == "baseline":
        inner_lr = getattr(obj, "inner_lr", None)
        if getattr(obj, "meta_learns_init", False) and not isinstance(inner_lr, int | float):
            problems.append("meta_learns_init is set but inner_lr (the inner SGD learning rate) is missing")
    elif kind == "learner":
        import torch

        if isinstance(obj, torch.nn.Module) and not hasattr(obj, "make_core"):
            problems.append(
                "the factory returned an nn.Module; a learner factory returns a LearnerFamily whose "
                "make_core(slot) builds the nn.Module core (earlier hook docs described the core itself)"
            )
    return problems


def contract_problems(kind: str, obj: Any, factory: Any = None) -> list[str]:
    """Why ``obj`` (made by ``factory``) does not satisfy ``kind``'s Protocol; ``[]`` when it does."""
    try:
        proto = KIND_PROTOCOLS[kind]
    except KeyError:
        raise ValueError(f"unknown component kind {kind!r}; kinds: {', '.join(KIND_PROTOCOLS)}") from None
    return _structural_problems(obj, proto) + _kind_problems(kind, obj, factory)
