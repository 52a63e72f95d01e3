"""The message-passing network: ordinary forward, learned backward, functional parameter update.

Optimizee parameters and carries are plain tensors with a leading task axis T that flow through
`inner_step` (nothing is updated in place), so meta-gradients reach the learners and a whole
meta-batch of tasks runs as one batched computation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from lbpbench.contracts import LearnerFamily
from lbpbench.protocol.gradient_seed import GradientSeedCore
from lbpbench.protocol.loss_rules import LOSS_RULES
from lbpbench.protocol.nodes import DenseNode, LossNode, Node
from lbpbench.protocol.sharing import SHARINGS
from lbpbench.protocol.slots import SlotInfo
from lbpbench.protocol.standardize import OutputScaling, Standardizer
from lbpbench.tasks.optimizee import Optimizee


@dataclass
class StepOutput:
    params: dict[str, Tensor]
    carries: dict[str, Tensor]
    loss: Tensor  # [T] element-mean loss on the step's batch, before the update
    messages: dict[str, Tensor] = field(default_factory=dict)  # outgoing messages, when traced


@dataclass(frozen=True)
class SlotEntry:
    info: SlotInfo
    core: str
    standardizer: str | None
    scaling: str | None
    aggregator: str | None


class MessagePassingNetwork(nn.Module):
    """Nodes (dense, activation, output, loss) wired with one learner per slot under a sharing rule.

    Sharing (MPLP.md §3): `layer` — one learner per node type per layer; `kind` — one per node
    type and slot for the whole network (standardisation and out_scale stay per layer); `all` —
    like `kind`, and standardisation and out_scale are shared too. `loss_rule = "gradient"` gives
    the loss node a fixed rule instead of a learner (`GradientSeedCore`).
    """

    def __init__(
        self,
        nodes: list[Node],
        family: LearnerFamily,
        make_aggregator: Callable[[], nn.Module],
        message_size: int,
        sharing: str = "layer",
        init_std: float = 0.05,
        loss_rule: str = "learned",
    ) -> None:
        super().__init__()
        if sharing not in SHARINGS:
            raise ValueError(f"sharing must be one of {', '.join(SHARINGS)}; got {sharing!r}")
        if loss_rule not in LOSS_RULES:
            raise ValueError(f"loss_rule must be one of {', '.join(LOSS_RULES)}; got {loss_rule!r}")
        self.optimizee = Optimizee(nodes, init_std)
        self.nodes = self.optimizee.nodes
        self.family = family
        self.message_size = message_size
        self.sharing = sharing
        self.init_std = init_std
        self.loss_rule = loss_rule
        self.cores = nn.ModuleDict()
        self.standardizers = nn.ModuleDict()
        self.scalings = nn.ModuleDict()
        self.aggregators = nn.ModuleDict()
        self.entries: dict[str, SlotEntry] = {}
        first_dense = next(n for n in nodes if isinstance(n, DenseNode))
        for node in nodes:
            for info in node.slots(message_size):
                kind_key = f"{info.node_kind}_{info.slot}"
                core_key = info.key if sharing == "layer" else kind_key
                own_key = kind_key if sharing == "all" else info.key
                fixed_rule = loss_rule == "gradient" and isinstance(node, LossNode)
                if core_key not in self.cores:
                    self.cores[core_key] = GradientSeedCore(info) if fixed_rule else family.make_core(info)
                std_key = scale_key = agg_key = None
                if family.standardize and not fixed_rule:
                    std_key = own_key
                    if std_key not in self.standardizers:
                        self.standardizers[std_key] = Standardizer(info.piece_names)
                if family.scale_output and info.is_param:
                    scale_key = own_key
                    if scale_key not in self.scalings:
                        self.scalings[scale_key] = OutputScaling(0.2 * init_std)
                if info.slot == "W" and node is not first_dense:
                    agg_key = node.name if sharing == "layer" else "dense"
                    if agg_key not in self.aggregators:
                        self.aggregators[agg_key] = make_aggregator()
                self.entries[info.key] = SlotEntry(info, core_key, std_key, scale_key, agg_key)

    # ----------------------------------------------------------------------------- optimizee
    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        return self.optimizee.param_shapes()

    def init_params(self, n_tasks: int, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        return self.optimizee.init_params(n_tasks, generator)

    def carry_shapes(self, batch_size: int) -> dict[str, tuple[int, ...]]:
        shapes = {}
        for key, entry in self.entries.items():
            size = self.family.carry_size(entry.info)
            if size:
                shapes[key] = (*entry.info.node.carry_shape(entry.info.slot, batch_size), size)
        return shapes

    def init_carries(
        self, n_tasks: int, batch_size: int, device: torch.device | None = None
    ) -> dict[str, Tensor]:
        return {k: torch.zeros(n_tasks, *s, device=device) for k, s in self.carry_shapes(batch_size).items()}

    def forward(self, params: dict[str, Tensor], x: Tensor) -> Tensor:
        """The optimizee's output for x [T, M, in]."""
        return self.optimizee.forward(params, x)

    def loss(self, params: dict[str, Tensor], x: Tensor, y: Tensor) -> Tensor:
        """Element-mean loss per task, [T]."""
        return self.optimizee.loss(params, x, y)

    # ----------------------------------------------------------------------------- backward
    def inner_step(
        self, params: dict[str, Tensor], carries: dict[str, Tensor], x: Tensor, y: Tensor, trace: bool = False
    ) -> StepOutput:
        """One learned training step on the batch x [T,B,in], y [T,B,out].

        Every learner reads the parameters from before the step; all updates apply at once.
        """
        prediction, stashes = self.optimizee.forward_with_stashes(params, x)
        element = self.optimizee.loss_node.element_loss(prediction, y)
        new_carries: dict[str, Tensor] = {}
        messages: dict[str, Tensor] = {}
        new_params = dict(params)
        message: Tensor | None = None
        for node, stash in zip(reversed(self.nodes), [(prediction, y), *reversed(stashes)], strict=True):
            run = self._slot_runner(node, carries, new_carries, messages if trace else None)
            node_params = self.optimizee.node_params(params, node)
            message, deltas = node.backward(run, node_params, stash, message)
            for name, delta in deltas.items():
                new_params[f"{node.name}.{name}"] = node_params[name] + delta
        return StepOutput(new_params, new_carries, element.flatten(1).mean(1), messages)

    def _slot_runner(
        self,
        node: Node,
        carries: dict[str, Tensor],
        new_carries: dict[str, Tensor],
        messages: dict[str, Tensor] | None,
    ) -> Callable[..., tuple[Tensor | None, Tensor | None]]:
        def run(
            slot: str, pieces: list[Tensor], *, need_message: bool = True, aggregate_dim: int | None = None
        ) -> tuple[Tensor | None, Tensor | None]:
            key = f"{node.name}_{slot}" if slot != "learner" else node.name
            entry = self.entries[key]
            if entry.standardizer is not None:
                pieces = self.standardizers[entry.standardizer](pieces)
            out = self.cores[entry.core](pieces, carries.get(key), need_message)
            if out.carry is not None:
                new_carries[key] = out.carry
            delta = None
            if out.raw_update is not None:
                raw = out.raw_update.squeeze(-1)  # [T, B, *param shape]; a view, no slice backward
                raw_mean = raw.mean(dim=1)
                delta = raw_mean if entry.scaling is None else self.scalings[entry.scaling](raw_mean, raw)
            message = out.message if need_message else None
            if message is not None and aggregate_dim is not None:
                message = self.aggregators[entry.aggregator].aggregate(message, dim=aggregate_dim)
            if messages is not None and message is not None:
                messages[key] = message
            return delta, message

        return run

    # ----------------------------------------------------------------------------- calibration
    @torch.no_grad()
    def calibrate(
        self, train_x: Tensor, train_y: Tensor, blend: float = 1.0, generator: torch.Generator | None = None,
        standardise: bool = True,
    ) -> None:
        """Measure the frozen input statistics and out_mean on the untrained learner (MPLP.md §4).

        One pass per task in train_x [P, S, B, in]: fresh initial parameters, zero carries, the
        inner steps run with live statistics (updates applied); each pass's statistics are the
        average over its steps, blended in with weight `blend`. `standardise=False` leaves the
        learners' inputs unstandardised (identity statistics) and calibrates only out_mean: the
        ablation that shows what the standardisation absorbs (e.g. sum = fan-in x mean).
        """
        modules = [*(self.standardizers.values() if standardise else ()), *self.scalings.values()]
        for p in range(train_x.shape[0]):
            for m in modules:
                m.start_calibration()
            params = self.init_params(1, generator)
            carries = self.init_carries(1, train_x.shape[2])
            for s in range(train_x.shape[1]):
                out = self.inner_step(params, carries, train_x[p : p + 1, s], train_y[p : p + 1, s])
                params, carries = out.params, out.carries
            for m in modules:
                m.finish_calibration(blend)

    def nonfinite_statistics(self) -> list[str]:
        """Which calibrated statistics hold NaN/inf (e.g. a learner whose messages blew up)."""
        groups = (("standardisation of", self.standardizers), ("output scaling of", self.scalings))
        return [f"{label} {key}" for label, modules in groups for key, m in modules.items()
                if not m.statistics_finite()]

    def reset_nonfinite_statistics(self) -> None:
        for m in [*self.standardizers.values(), *self.scalings.values()]:
            if not m.statistics_finite():
                m.reset_statistics()

    def describe_slot(self, key: str) -> str:
        """A slot key in words: which node, slot and learner core serve it."""
        entry = self.entries.get(key)
        if entry is None:
            return key
        return f"node {entry.info.node.name}, slot {entry.info.slot}, core {entry.core}"

    # ----------------------------------------------------------------------------- layout
    def unused_parameter_names(self) -> list[str]:
        """Parameters that cannot influence anything: the message path of a core that serves only
        the first dense layer's W slot, whose outgoing message is never used (MPLP.md §2)."""
        first = next(e for e in self.entries.values() if e.info.slot == "W")
        if sum(e.core == first.core for e in self.entries.values()) > 1:
            return []
        prefixes = getattr(self.cores[first.core], "message_only_prefixes", ())
        return [
            f"cores.{first.core}.{n}"
            for n, _ in self.cores[first.core].named_parameters()
            if n.startswith(tuple(prefixes))
        ]

    def slot_order(self) -> list[SlotEntry]:
        return list(self.entries.values())
