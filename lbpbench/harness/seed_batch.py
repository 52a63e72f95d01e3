"""Several seeds of one configuration meta-trained as one vectorised computation.

Why: one seed of a small configuration leaves most of a GPU idle (kernel launches, not arithmetic,
bound a meta-step), so S seeds cost barely more than one when their learners are stacked on a
leading seed axis and the meta-loss is `torch.func.vmap`-ed over it. Each seed keeps everything
that makes it that seed: its own learner initialisation and calibration, task and initialisation
stream, Adam moments, per-tensor unit-norm gradients and divergence. The result equals S separate
runs up to float rounding (tests/test_seed_batch.py), and the members' checkpoints are ordinary
single-run checkpoints, so a seed batch resumes from them and `lbpbench eval` reads its learners.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap

from lbpbench.harness.config import RunConfig
from lbpbench.harness.meta_train import MetaTraining, meta_loss_terms, resolve_registry
from lbpbench.protocol.network import MessagePassingNetwork


def batchable(configs: Sequence[RunConfig]) -> str | None:
    """Why these configs cannot run as one seed batch, or None when they can."""
    if len(configs) < 2:
        return "a seed batch needs at least two configs"
    first = {k: v for k, v in configs[0].to_dict().items() if k != "seed"}
    for c in configs[1:]:
        if {k: v for k, v in c.to_dict().items() if k != "seed"} != first:
            return "configs differ in more than their seed"
    if len({c.seed for c in configs}) != len(configs):
        return "seeds repeat"
    if configs[0].baseline:
        return "baselines have no learners to stack"
    if configs[0].checkpointing:
        return "activation checkpointing does not compose with vmap"
    return None


class _MetaLoss(nn.Module):
    """The meta-loss of one seed as a module call, so functional_call can swap in its weights."""

    def __init__(self, net: MessagePassingNetwork, config: RunConfig) -> None:
        super().__init__()
        self.net = net
        self.config = config

    def forward(
        self,
        init: dict[str, Tensor],
        train_x: Tensor,
        train_y: Tensor,
        eval_x: Tensor,
        eval_y: Tensor,
    ) -> Tensor:
        return torch.stack(meta_loss_terms(self.net, self.config, init, train_x, train_y, eval_x, eval_y))


class SeedBatchTraining:
    """S MetaTrainings differing only in seed, stepped together; `members[i]` is seed i's run."""

    def __init__(self, configs: Sequence[RunConfig], registry: Any = None) -> None:
        reason = batchable(configs)
        if reason is not None:
            raise ValueError(f"cannot batch these runs: {reason}")
        registry = resolve_registry(registry)
        self.configs = list(configs)
        self.members = [MetaTraining(c, registry) for c in configs]
        self.device = self.members[0].device
        self.module = _MetaLoss(self.members[0].net, configs[0])
        self.restack()

    # ------------------------------------------------------------------ stacking
    def restack(self) -> None:
        """Stack every member's learner weights, prior and Adam state (again after members were
        loaded from checkpoints)."""
        params, buffers = stack_module_state([m.net for m in self.members])
        names = [n for n, p in self.members[0].net.named_parameters() if p.requires_grad]
        self.params = {n: params[n].detach().requires_grad_() for n in names}
        self.frozen = {n: v.detach() for n, v in params.items() if n not in self.params}
        self.buffers = buffers
        self.prior: dict[str, Tensor] = {}
        if self.members[0].prior is not None:
            self.prior = {
                k: torch.stack([m.prior[k].detach() for m in self.members]).requires_grad_()
                for k in self.members[0].prior
            }
        trainable = self.trainable_parameters()
        self.optimizer = torch.optim.Adam(trainable, lr=self.members[0].optimizer.param_groups[0]["lr"])
        states = [m.optimizer.state_dict()["state"] for m in self.members]
        if all(states):  # resumed members: stack their Adam moments slot by slot
            for idx, p in enumerate(trainable):
                if idx in states[0]:  # parameters that never had a gradient have no state
                    self.optimizer.state[p] = {
                        key: (
                            torch.stack([s[idx][key] for s in states])
                            if key != "step"
                            else states[0][idx][key].clone()
                        )
                        for key in states[0][idx]
                    }

    def trainable_parameters(self) -> list[Tensor]:
        return [*self.params.values(), *self.prior.values()]

    def sync_members(self) -> None:
        """Write seed i's slice of the stacked state back into members[i] (its net, prior, Adam)."""
        trainable = self.trainable_parameters()
        for i, m in enumerate(self.members):
            with torch.no_grad():
                for name, p in m.net.named_parameters():
                    if name in self.params:
                        p.copy_(self.params[name][i])
                if m.prior is not None:
                    for k, p in m.prior.items():
                        p.copy_(self.prior[k][i])
            member_params = m.trainable_parameters()
            for p_stacked, p_member in zip(trainable, member_params, strict=True):
                state = self.optimizer.state.get(p_stacked)
                if state:
                    m.optimizer.state[p_member] = {
                        k: (v[i].clone() if k != "step" else v.clone()) for k, v in state.items()
                    }

    # ------------------------------------------------------------------ one meta-step
    def _member_inputs(self) -> tuple[dict[str, Tensor], list[Tensor]]:
        """Each member draws its tasks and initial parameters from its own generator, in the order
        a single run does, so seed i sees exactly the data of a separate run with that seed."""
        inits, data = [], []
        prior = self.members[0].prior is not None
        for m in self.members:
            tasks = m.family.sample(m.meta_batch, m.generator, split="train").to(self.device)
            data.append((tasks.train_x, tasks.train_y, tasks.eval_x, tasks.eval_y))
            if not prior:  # a learned prior replaces the pool draw, as in a single run
                inits.append(m.initial_params(m.meta_batch))
        stacked = [torch.stack([d[j] for d in data]) for j in range(4)]
        if prior:
            n = self.members[0].meta_batch
            init = {k.replace("/", "."): v.expand(-1, n, *v.shape[2:]) for k, v in self.prior.items()}
        else:
            init = {k: torch.stack([i[k] for i in inits]) for k in inits[0]}
        return init, stacked

    def meta_losses(self) -> Tensor:
        """[S, 3]: meta-loss, hint loss and held-out loss per seed, differentiable."""
        init, (train_x, train_y, eval_x, eval_y) = self._member_inputs()
        weights = {**self.params, **self.frozen}

        def one(w: dict[str, Tensor], b: dict[str, Tensor], *args: Any) -> Tensor:
            state = {f"net.{k}": v for k, v in {**w, **b}.items()}
            return functional_call(self.module, state, args)

        return vmap(one)(weights, self.buffers, init, train_x, train_y, eval_x, eval_y)

    def meta_step(self) -> list[dict[str, float]]:
        """One outer update of every live seed; a seed that diverges stops (its state is kept)."""
        self.optimizer.zero_grad(set_to_none=True)
        losses = self.meta_losses()
        values = losses.detach().cpu().tolist()
        live = []
        for i in self.live():
            m, loss = self.members[i], values[i][0]
            if not math.isfinite(loss) or loss > m.config.divergence_threshold:
                m.diverged = True
            else:
                live.append(i)
        metrics = [{"meta_loss": v[0], "hint_loss": v[1], "heldout_loss": v[2]} for v in values]
        if not live:
            return metrics
        losses[live, 0].sum().backward()
        trainable = [p for p in self.trainable_parameters() if p.grad is not None]
        per_seed = [torch.isfinite(p.grad).reshape(len(self.members), -1).all(1) for p in trainable]
        finite = torch.stack(per_seed).all(0).tolist()  # one host sync
        for i in list(live):
            if not finite[i]:
                self.members[i].diverged = True
                live.remove(i)
        dead = [i for i in range(len(self.members)) if i not in live]
        kept = [p.detach()[dead].clone() for p in trainable] if dead else []
        for p in trainable:
            g = p.grad
            if dead:
                g[dead] = 0
            norms = g.reshape(len(self.members), -1).norm(dim=1).clamp_min(1e-12)
            g.div_(norms.view(-1, *([1] * (g.dim() - 1))))  # per seed, per tensor unit norm
        if live:
            self.optimizer.step()
        if dead:
            with torch.no_grad():
                for p, old in zip(trainable, kept, strict=True):
                    p[dead] = old  # Adam's momentum must not move a finished seed
        for i in live:
            m = self.members[i]
            m.step += 1
            v = metrics[i]
            m.history.append([float(m.step), v["meta_loss"], v["hint_loss"], v["heldout_loss"]])
        return metrics

    def live(self) -> list[int]:
        """Members still meta-training (not diverged, steps left)."""
        return [i for i, m in enumerate(self.members) if not (m.diverged or m.step >= m.config.meta_steps)]

    @property
    def step(self) -> int:
        """Meta-steps done by the live members (they step together); the furthest once none is."""
        live = self.live()
        return self.members[live[0]].step if live else max(m.step for m in self.members)

    @property
    def done(self) -> bool:
        return not self.live()
