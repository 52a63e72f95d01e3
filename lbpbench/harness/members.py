"""Population members: one seed of one configuration, with everything that makes it that seed.

A member owns its task stream (its generator), its initialisations, its calibration and its
history; its meta-trained weights live stacked in the `Population` while it trains and are written
back (`set_trainable`) for evaluation and checkpoints. Two kinds today:

- `ProtocolMember`: a learned protocol (MPLP.md §5), optionally with a learned prior;
- `MamlMember`: second-order MAML, whose only meta-trained weights are the initial parameters.

`loss(weights, fixed, inputs)` is a pure function of its arguments, so the population can call it
directly for one member or `torch.func.vmap` it over a stacked seed axis.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call

from lbpbench.harness import defaults
from lbpbench.harness.allocator import retain_freed_memory
from lbpbench.harness.baselines import GradientStepper
from lbpbench.harness.compiling import CompileMode, compile_mode, compile_protocol
from lbpbench.harness.config import RunConfig, training_differences
from lbpbench.harness.evaluate import LearnedStepper, Stepper
from lbpbench.harness.unroll import unroll
from lbpbench.harness.zoo import start_folder
from lbpbench.protocol.builder import build_network
from lbpbench.protocol.network import MessagePassingNetwork
from lbpbench.tasks.base import TaskFamily
from lbpbench.tasks.network_spec import NetworkSpec
from lbpbench.tasks.optimizee import Optimizee, build_optimizee

CHECKPOINT_SCHEMA = 2
PRIOR = "prior."  # trainable-name prefix of a learned prior's tensors
NET = "net."  # trainable-name prefix of a learner network's tensors


class CheckpointMismatch(ValueError):
    """A checkpoint was written by a run with other training settings."""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but no CUDA device is available; use --device cpu or auto")
    return torch.device(name)


def resolve_registry(registry: Any = None) -> Any:
    if registry is None:
        from lbpbench.registry import get_registry

        registry = get_registry()
    return registry


def make_family(config: RunConfig, registry: Any, task: str | None = None) -> TaskFamily:
    return registry.create("task", task or config.task, data_dir=config.data_dir)


def network_spec(config: RunConfig, family: TaskFamily) -> NetworkSpec:
    """The task's optimizee, with the run's `activation` node type when it sets one."""
    if config.activation is None:
        return family.network
    return dataclasses.replace(family.network, activation=config.activation)


def learner_network(config: RunConfig, spec: NetworkSpec, registry: Any) -> MessagePassingNetwork:
    """The network a RunConfig's learner settings describe, for any optimizee spec."""
    return build_network(
        spec,
        learner=config.learner,
        aggregator=config.aggregator,
        message_size=config.message_size,
        hidden_size=config.hidden_size,
        sharing=config.sharing,
        mlp_widths=config.mlp_widths,
        untrained_message_mlp=config.untrained_message_mlp,
        registry=registry,
        loss_rule=config.loss_rule,
    )


def meta_loss_terms(
    net: MessagePassingNetwork,
    config: RunConfig,
    params: dict[str, Tensor],
    train_x: Tensor,
    train_y: Tensor,
    eval_x: Tensor,
    eval_y: Tensor,
) -> tuple[Tensor, Tensor, Tensor]:
    """(meta-loss, hint loss, held-out loss) of one unroll from `params` (MPLP.md §5): the hint
    loss is the mean loss after each inner step on its own batch, the held-out loss that of the
    final parameters on the eval split; `meta_loss = "mixed"` weighs them by `hint_weight`."""
    out = unroll(
        net, params, train_x, train_y, truncation=config.truncation, checkpointing=config.checkpointing
    )
    heldout = net.loss(out.params, eval_x, eval_y).mean()
    hint = torch.stack(out.hint_losses).mean()
    if config.meta_loss == "mixed":
        return config.hint_weight * hint + (1 - config.hint_weight) * heldout, hint, heldout
    return heldout, hint, heldout


class _MetaLoss(nn.Module):
    """The meta-loss as a module call, so functional_call can swap in a member's weights."""

    def __init__(self, net: MessagePassingNetwork, config: RunConfig) -> None:
        super().__init__()
        self.net = net
        self.config = config

    def forward(self, init: dict[str, Tensor], *data: Tensor) -> Tensor:
        return torch.stack(meta_loss_terms(self.net, self.config, init, *data))


class Member:
    """The state every member kind shares: stream, counters, history, divergence, checkpoints."""

    default_grad_norm = "unit"  # per-tensor unit-norm gradients before Adam (MPLP.md §5)

    def __init__(self, config: RunConfig, registry: Any) -> None:
        retain_freed_memory()
        self.config = config
        self.device = resolve_device(config.device)
        self.family = make_family(config, registry)
        self.meta_batch = defaults.meta_batch(config, self.family)
        self.lr = defaults.meta_lr(config, self.family)
        self.grad_norm = config.grad_norm or self.default_grad_norm
        self.generator = torch.Generator().manual_seed(config.seed)
        self.step = 0
        self.history: list[list[float]] = []  # [step, meta_loss, hint_loss, heldout_loss]
        self.meta_evals: list[dict[str, Any]] = []  # evaluation rows taken during meta-training
        self.train_seconds = 0.0  # wall time spent meta-training (this member's share), across resumes
        # The run's wall time before this process took it up (construction, meta-training and
        # evaluations of earlier sessions), so a run resumed across sessions reports all of it.
        self.earlier_wall_seconds = 0.0
        self._segment_started = time.monotonic()
        self.wall_share = 1.0  # a seed batch of n members books 1/n of its wall time to each
        self.diverged = False
        self.cause: str | None = None  # why it diverged, naming the component where known
        self.abandoned_at: int | None = None  # meta-step it stopped at on the plateau (harness/plateau.py)
        self.abandon_cause: str | None = None
        self.adam_state: dict[int, dict[str, Tensor]] = {}  # by trainable index, from a checkpoint
        self.prior: dict[str, Tensor] | None = None
        self.compile_mode: CompileMode | None = None  # what torch.compile compiled (harness.compiling)
        self.optimizee: Optimizee

    # -- what subclasses provide -------------------------------------------------------
    def trainable(self) -> dict[str, Tensor]:
        """Name -> current value of every meta-trained tensor, in a fixed order."""
        raise NotImplementedError

    def fixed(self) -> dict[str, Tensor]:
        """Name -> value of the tensors the loss reads but never trains (buffers, frozen weights)."""
        return {}

    def set_trainable(self, weights: dict[str, Tensor]) -> None:
        raise NotImplementedError

    def set_fixed(self, values: dict[str, Tensor]) -> None:
        """Restore saved fixed tensors (calibration statistics), so a resume never depends on
        recomputing them bit for bit."""

    def draw(self) -> tuple[dict[str, Tensor], tuple[Tensor, ...]]:
        """A meta-step's inputs, drawn from this member's own generator: (initial params, data)."""
        raise NotImplementedError

    def loss(self, weights: dict[str, Tensor], fixed: dict[str, Tensor], init: dict[str, Tensor],
             data: tuple[Tensor, ...]) -> Tensor:
        """[3]: meta-loss, hint loss, held-out loss; differentiable in `weights`."""
        raise NotImplementedError

    def stepper(self) -> Stepper:
        """The trained rule, for evaluation."""
        raise NotImplementedError

    def diagnose(self, init: dict[str, Tensor], data: tuple[Tensor, ...]) -> str | None:
        """Which component made a meta-loss non-finite, if it can be told."""
        return None

    # -- shared ------------------------------------------------------------------------
    def initial_params(self) -> dict[str, Tensor] | None:
        """A learned prior as [1, ...] initial parameters, or None (random initialisation)."""
        if self.prior is None:
            return None
        return {k: v.detach() for k, v in self.prior.items()}

    def mark_diverged(self, cause: str) -> None:
        self.diverged = True
        self.cause = self.cause or cause

    def abandon(self, cause: str) -> None:
        """Stop meta-training here (still on the plateau); the member is evaluated as it stands."""
        self.abandoned_at = self.step
        self.abandon_cause = cause

    @property
    def wall_seconds(self) -> float:
        """The run's wall time so far (a seed batch member: its share), every session included."""
        return self.earlier_wall_seconds + self.wall_share * (time.monotonic() - self._segment_started)

    @property
    def still_training(self) -> bool:
        """Still meta-training: not diverged, not abandoned, steps left."""
        return not (self.diverged or self.abandoned_at is not None or self.step >= self.config.meta_steps)

    def state_dict(self) -> dict[str, Any]:
        return {
            "schema": CHECKPOINT_SCHEMA,
            "config": self.config.to_dict(),
            "weights": {k: v.detach().clone() for k, v in self.trainable().items()},
            "fixed": {k: v.detach().clone() for k, v in self.fixed().items()},
            "adam": self.adam_state,
            "step": self.step,
            "generator": self.generator.get_state(),
            "history": self.history,
            "meta_evals": self.meta_evals,
            "train_seconds": self.train_seconds,
            "wall_seconds": self.wall_seconds,
            "diverged": self.diverged,
            "cause": self.cause,
            "abandoned_at": self.abandoned_at,
            "abandon_cause": self.abandon_cause,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume from `state_dict()` output; refuses one written with other training settings."""
        saved = state.get("config")
        if saved is not None:
            differences = training_differences(saved, self.config)
            if differences:
                raise CheckpointMismatch(
                    "the checkpoint was written by a run with other settings ("
                    + "; ".join(differences) + "); use another output folder"
                )
        weights = state["weights"] if "weights" in state else schema1_weights(state)
        missing = sorted(set(self.trainable()) - set(weights))
        if missing:
            raise CheckpointMismatch(f"the checkpoint lacks {', '.join(missing[:5])}")
        self.set_trainable({k: weights[k] for k in self.trainable()})
        fixed = state["fixed"] if "fixed" in state else {NET + k: v for k, v in state.get("net", {}).items()}
        self.set_fixed({k: v for k, v in fixed.items() if k in self.fixed()})
        self.adam_state = state["adam"] if "adam" in state else state["optimizer"]["state"]
        self.step = int(state["step"])
        self.generator.set_state(state["generator"])
        self.history = [list(map(float, row)) for row in state["history"]]
        self.meta_evals = list(state.get("meta_evals", []))
        self.train_seconds = float(state.get("train_seconds", 0.0))
        # Checkpoints written before wall_seconds existed hold only the meta-training seconds.
        self.earlier_wall_seconds = float(state.get("wall_seconds", self.train_seconds))
        self._segment_started = time.monotonic()
        self.diverged = bool(state["diverged"])
        self.cause = state.get("cause")
        self.abandoned_at = state.get("abandoned_at")
        self.abandon_cause = state.get("abandon_cause")


@torch.no_grad()
def scale_learner_matrices(net: MessagePassingNetwork, gain: float) -> None:
    """Multiply every learner weight matrix (not biases, not out_scale) by `gain`, before calibration.

    Which initial learner escapes the task-average plateau is a lottery of its draw
    (results/search/README.md, rounds 5-9); the scale of the draw sets how saturated its units start."""
    for parameter in net.cores.parameters():
        if parameter.ndim >= 2:
            parameter.mul_(gain)


def schema1_weights(state: dict[str, Any]) -> dict[str, Tensor]:
    """Trainable weights of a checkpoint written before schema 2 (net state + prior by "/" keys)."""
    weights = {NET + k: v for k, v in state.get("net", {}).items()}
    weights.update({PRIOR + k.replace("/", "."): v for k, v in (state.get("prior") or {}).items()})
    return weights


class ProtocolMember(Member):
    """One seed of a learned protocol: learner init, calibration, init pool or learned prior."""

    def __init__(self, config: RunConfig, registry: Any = None, compile: bool | str = False) -> None:
        registry = resolve_registry(registry)
        super().__init__(config, registry)
        # The learner's initial weights: which draw of them escapes the task-average plateau is a
        # lottery of its own (results/search/README.md, rounds 5-8), so it can be set apart.
        torch.manual_seed(config.seed if config.learner_seed is None else config.learner_seed)
        self.net = learner_network(config, network_spec(config, self.family), registry)
        if config.learner_init_gain != 1.0:
            scale_learner_matrices(self.net, config.learner_init_gain)
        self.optimizee = self.net.optimizee
        passes, blend = defaults.calibration(self.family)
        calibration = self.family.sample(passes, self.generator, split="train")
        self.net.calibrate(calibration.train_x, calibration.train_y, blend=blend, generator=self.generator,
                           standardise=config.calibration == "frozen")
        bad = self.net.nonfinite_statistics()
        if bad:
            self.mark_diverged(f"calibration statistics are not finite in {', '.join(bad)}")
            self.net.reset_nonfinite_statistics()  # never keep NaN statistics
        start = None
        if config.init_from:
            start = load_start(config.init_from, config, network_spec(config, self.family))
        if start is not None:
            self.net.load_state_dict(start["net"])  # weights and the statistics they were trained with
        self.net.to(self.device)
        pool_size = defaults.init_pool(config, self.family)
        self.pool = {k: v.to(self.device) for k, v in self.net.init_params(pool_size, self.generator).items()}
        if config.learned_prior:
            self.prior = {k: v[:1].clone() for k, v in self.pool.items()}
            if start is not None and start["prior"]:
                self.prior = {k: start["prior"][k].to(self.device).clone() for k in self.prior}
        self.module = _MetaLoss(self.net, config)
        self.compile_mode = compile_mode(compile)
        compile_protocol(self.net, self.module, self.compile_mode)
        self._trained = [n for n, p in self.net.named_parameters() if p.requires_grad]

    def trainable(self) -> dict[str, Tensor]:
        named = dict(self.net.named_parameters())
        weights = {NET + n: named[n].detach() for n in self._trained}
        if self.prior is not None:
            weights.update({PRIOR + k: v for k, v in self.prior.items()})
        return weights

    def fixed(self) -> dict[str, Tensor]:
        frozen = {NET + n: p.detach() for n, p in self.net.named_parameters() if n not in self._trained}
        return {**frozen, **{NET + n: b for n, b in self.net.named_buffers()}}

    def set_trainable(self, weights: dict[str, Tensor]) -> None:
        named = dict(self.net.named_parameters())
        with torch.no_grad():
            for name, value in weights.items():
                if name.startswith(NET):
                    named[name[len(NET):]].copy_(value)
        if self.prior is not None:
            self.prior = {k: weights[PRIOR + k].detach().clone().to(self.device) for k in self.prior}

    def set_fixed(self, values: dict[str, Tensor]) -> None:
        state = {k[len(NET):]: v for k, v in values.items()}
        self.net.load_state_dict(state, strict=False)

    def draw(self) -> tuple[dict[str, Tensor], tuple[Tensor, ...]]:
        tasks = self.family.sample(self.meta_batch, self.generator, split="train").to(self.device)
        init: dict[str, Tensor] = {}
        if self.prior is None:  # a learned prior replaces the pool draw
            idx = torch.randint(next(iter(self.pool.values())).shape[0], (self.meta_batch,),
                                generator=self.generator).to(self.device)
            init = {k: v[idx] for k, v in self.pool.items()}
        return init, (tasks.train_x, tasks.train_y, tasks.eval_x, tasks.eval_y)

    def loss(self, weights: dict[str, Tensor], fixed: dict[str, Tensor], init: dict[str, Tensor],
             data: tuple[Tensor, ...]) -> Tensor:
        state = {k: v for k, v in weights.items() if k.startswith(NET)}
        state.update(fixed)
        if self.prior is not None:
            n = data[0].shape[0]
            init = {k: weights[PRIOR + k].expand(n, *weights[PRIOR + k].shape[1:]) for k in self.prior}
        return functional_call(self.module, state, (init, *data))

    def stepper(self) -> Stepper:
        return LearnedStepper(self.net)

    @torch.no_grad()
    def diagnose(self, init: dict[str, Tensor], data: tuple[Tensor, ...]) -> str | None:
        """Replay the unroll with messages traced; name the first slot whose output is not finite."""
        train_x, train_y = data[0], data[1]
        n = train_x.shape[0]
        params = init or {k: v.expand(n, *v.shape[1:]) for k, v in (self.prior or {}).items()}
        carries = self.net.init_carries(train_x.shape[0], train_x.shape[2], device=train_x.device)
        for s in range(train_x.shape[1]):
            out = self.net.inner_step(params, carries, train_x[:, s], train_y[:, s], trace=True)
            for key, message in out.messages.items():
                if not bool(torch.isfinite(message).all()):
                    where = self.net.describe_slot(key)
                    return f"non-finite message from learner {key} ({where}) at inner step {s + 1}"
            for name, value in out.params.items():
                if not bool(torch.isfinite(value).all()):
                    return f"non-finite update of {name} at inner step {s + 1}"
            params, carries = out.params, out.carries
        return None


LEARNER_SETTINGS = ("learner", "aggregator", "message_size", "hidden_size", "sharing", "mlp_widths",
                    "untrained_message_mlp", "calibration", "loss_rule")


def read_start(folder: str, config: RunConfig) -> tuple[dict[str, Any], RunConfig]:
    """The saved learner.pt of `folder` and the config it was trained with; ValueError naming the
    problem when it is missing, unreadable or of another learner than `config`'s."""
    path = start_folder(folder) / "learner.pt"
    try:
        saved = torch.load(path, weights_only=True, map_location="cpu")
        theirs = RunConfig.from_dict(saved["config"])
    except FileNotFoundError:
        raise ValueError(f"init_from: {path} does not exist (a finished run holds learner.pt)") from None
    except Exception as exc:  # noqa: BLE001 - any unreadable content is the same problem
        problem = f"{type(exc).__name__}: {exc}"
        raise ValueError(f"init_from: {path} is not a readable learner file ({problem})") from None
    mine = config.to_dict()
    differing = [f"{k}: {getattr(theirs, k)!r} there, {mine[k]!r} here" for k in LEARNER_SETTINGS
                 if getattr(theirs, k) != mine[k]]
    if differing:
        raise ValueError(f"init_from {folder}: its learner differs ({'; '.join(differing)})")
    return saved, theirs


def load_start(folder: str, config: RunConfig, spec: NetworkSpec) -> dict[str, Any]:
    """A trained learner (a run folder's learner.pt, e.g. a zoo entry) to start meta-training from.

    Its learner settings must be this run's; the task may differ (a learner keyed by another
    activation node type is renamed, as for transfer)."""
    saved, theirs = read_start(folder, config)
    state, prior = saved["net"], saved.get("prior") or {}
    old = theirs.activation or _task_activation(theirs)
    if old != spec.activation:
        state = {k.replace(f"{old}_learner", f"{spec.activation}_learner"): v for k, v in state.items()}
    return {"net": state, "prior": prior}


def _task_activation(config: RunConfig) -> str:
    return make_family(config, resolve_registry()).network.activation


class MamlMember(Member):
    """Second-order MAML (MPLP.md §6 baseline): a meta-learned initial point, SGD inside."""

    default_grad_norm = "none"  # MAML's outer Adam sees raw gradients

    def __init__(self, config: RunConfig, registry: Any = None, compile: bool | str = False) -> None:
        registry = resolve_registry(registry)
        super().__init__(config, registry)
        self.optimizee = build_optimizee(network_spec(config, self.family), registry)
        self.optimiser = registry.create("baseline", config.baseline)
        self.lr = config.meta_lr or 1e-3
        torch.manual_seed(config.seed)
        self.prior = {k: v.to(self.device) for k, v in self.optimizee.init_params(1, self.generator).items()}
        self._inner = GradientStepper(
            self.optimizee, self.optimiser, self.optimiser.inner_lr, create_graph=True
        )

    def trainable(self) -> dict[str, Tensor]:
        assert self.prior is not None
        return {PRIOR + k: v for k, v in self.prior.items()}

    def set_trainable(self, weights: dict[str, Tensor]) -> None:
        assert self.prior is not None
        self.prior = {k: weights[PRIOR + k].detach().clone().to(self.device) for k in self.prior}

    def draw(self) -> tuple[dict[str, Tensor], tuple[Tensor, ...]]:
        tasks = self.family.sample(self.meta_batch, self.generator, split="train").to(self.device)
        return {}, (tasks.train_x, tasks.train_y, tasks.eval_x, tasks.eval_y)

    def loss(self, weights: dict[str, Tensor], fixed: dict[str, Tensor], init: dict[str, Tensor],
             data: tuple[Tensor, ...]) -> Tensor:
        train_x, train_y, eval_x, eval_y = data
        n = train_x.shape[0]
        params = {k[len(PRIOR):]: v.expand(n, *v.shape[1:]) for k, v in weights.items()}
        for s in range(self.family.inner_steps):
            params, _ = self._inner.step(params, None, train_x[:, s], train_y[:, s])
        heldout = self.optimizee.loss(params, eval_x, eval_y).mean()
        return torch.stack([heldout, torch.full_like(heldout, math.nan), heldout])

    def stepper(self) -> Stepper:
        return GradientStepper(self.optimizee, self.optimiser, self.optimiser.inner_lr)


def make_member(config: RunConfig, registry: Any = None, compile: bool | str = False) -> Member:
    """The member kind a configuration meta-trains (a learned protocol or a MAML-style baseline)."""
    registry = resolve_registry(registry)
    if config.baseline:
        optimiser = registry.create("baseline", config.baseline)
        if not getattr(optimiser, "meta_learns_init", False):
            raise ValueError(f"baseline {config.baseline!r} is not meta-trained; it has no population member")
        return MamlMember(config, registry, compile)
    return ProtocolMember(config, registry, compile)
