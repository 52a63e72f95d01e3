"""The one meta-training loop's state and outer update: S ≥ 1 members stepped together.

A single run is a population of one (its loss is called directly); a seed batch is the same
population with its members' weights stacked on a leading seed axis and the loss
`torch.func.vmap`-ed over it (on a GPU, 8 seeds cost less than 8× one). Per member: its own inputs,
unit-norm gradients, Adam moments and divergence; a diverged member is frozen and the rest go on.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import torch
from torch import Tensor
from torch.func import vmap
from torch.utils._pytree import tree_map

from lbpbench.harness.compiling import begin_graph_step
from lbpbench.harness.config import RunConfig
from lbpbench.harness.members import Member
from lbpbench.harness.schedule import lr_factor


def batchable(configs: Sequence[RunConfig]) -> str | None:
    """Why these configs cannot meta-train as one vectorised population, or None when they can."""
    if len(configs) < 2:
        return "a seed batch needs at least two configs"
    first = {k: v for k, v in configs[0].to_dict().items() if k != "seed"}
    for c in configs[1:]:
        if {k: v for k, v in c.to_dict().items() if k != "seed"} != first:
            return "configs differ in more than their seed"
    if len({c.seed for c in configs}) != len(configs):
        return "seeds repeat"
    if configs[0].baseline:
        return "baselines are not vectorised (MAML's inner autograd does not compose with vmap)"
    if configs[0].checkpointing:
        return "activation checkpointing does not compose with vmap"
    return None


class Population:
    """Members' meta-trained weights stacked [S, ...], one Adam over them, one meta-step for all."""

    def __init__(self, members: Sequence[Member]) -> None:
        if not members:
            raise ValueError("a population needs at least one member")
        self.members = list(members)
        first = self.members[0]
        self.loss_fn = first.loss  # pure in its arguments: any member's weights can be swapped in
        self.grad_norm = first.grad_norm
        self.graphs = any(m.compile_mode == "graphs" for m in self.members)
        if self.graphs and len(self.members) > 1:
            raise ValueError("compile mode 'graphs' meta-trains one member at a time (a seed batch "
                             "is vmapped eagerly); run the seeds as separate runs")
        trainables = [m.trainable() for m in self.members]
        fixeds = [m.fixed() for m in self.members]
        self.weights = {
            n: torch.stack([t[n] for t in trainables]).detach().requires_grad_() for n in trainables[0]
        }
        self.fixed = {n: torch.stack([f[n] for f in fixeds]) for n in fixeds[0]}
        params = list(self.weights.values())
        self.optimizer = torch.optim.Adam(params, lr=first.lr)
        if all(m.adam_state for m in self.members):  # resumed members: stack their moments
            for idx, p in enumerate(params):
                states = [m.adam_state.get(idx) for m in self.members]
                if all(states):  # tensors that never had a gradient have no state
                    stacked = {k: torch.stack([s[k] for s in states]) for k in states[0] if k != "step"}
                    self.optimizer.state[p] = {"step": states[0]["step"].clone(), **stacked}

    @property
    def size(self) -> int:
        return len(self.members)

    def live(self) -> list[int]:
        """Members still meta-training (not diverged or abandoned, steps left)."""
        return [i for i, m in enumerate(self.members) if m.still_training]

    @property
    def step(self) -> int:
        """Meta-steps done by the live members (they step together); the furthest once none is."""
        live = self.live()
        return self.members[live[0]].step if live else max(m.step for m in self.members)

    def sync(self, i: int) -> None:
        """Write member i's slice of the stacked weights and Adam moments back into the member."""
        member = self.members[i]
        member.set_trainable({n: w[i].detach() for n, w in self.weights.items()})
        state: dict[int, dict[str, Tensor]] = {}
        for idx, p in enumerate(self.weights.values()):
            slot = self.optimizer.state.get(p)
            if slot:
                state[idx] = {k: (v[i].clone() if k != "step" else v.clone()) for k, v in slot.items()}
        member.adam_state = state

    # ------------------------------------------------------------------ one meta-step
    def _losses(self, inputs: list[tuple[dict[str, Tensor], tuple[Tensor, ...]]]) -> Tensor:
        """[S, 3]: meta-loss, hint loss, held-out loss per member, differentiable in the weights."""
        if self.size == 1:
            (init, data), = inputs
            weights = {n: w[0] for n, w in self.weights.items()}
            fixed = {n: f[0] for n, f in self.fixed.items()}
            return self.loss_fn(weights, fixed, init, data).unsqueeze(0)
        init = {k: torch.stack([i[k] for i, _ in inputs]) for k in inputs[0][0]}
        data = tree_map(lambda *xs: torch.stack(xs), *[d for _, d in inputs])
        return vmap(self.loss_fn)(self.weights, self.fixed, init, data)

    def meta_step(self) -> list[dict[str, float]]:
        """One outer update of every live member (MPLP.md §5); returns each member's loss terms."""
        started = time.perf_counter()
        if self.graphs:
            begin_graph_step()
        live = self.live()
        self.optimizer.zero_grad(set_to_none=True)
        inputs = [m.draw() for m in self.members]  # every member keeps its stream in step
        losses = self._losses(inputs)
        values = losses.detach().cpu().tolist()
        metrics = [{"meta_loss": v[0], "hint_loss": v[1], "heldout_loss": v[2]} for v in values]
        for i in list(live):
            loss, member = values[i][0], self.members[i]
            if not math.isfinite(loss) or loss > member.config.divergence_threshold:
                self._diverge(i, inputs[i], f"meta-loss {loss:.4g}" + (
                    f" above divergence_threshold {member.config.divergence_threshold:g}"
                    if math.isfinite(loss) else ""))
                live.remove(i)
        if not live:
            return metrics
        losses[live, 0].sum().backward()
        params = [p for p in self.weights.values() if p.grad is not None]
        grads = [p.grad for p in params]
        # Per member and tensor: one fused norm (and one host sync) serves the finite check and
        # the unit-norm scaling; per-tensor checks cost more than the arithmetic on a GPU.
        slices = [g[i] for i in range(self.size) for g in grads]
        norms = torch.stack(torch._foreach_norm(slices)).reshape(self.size, len(grads))
        finite = torch.isfinite(norms).all(1).tolist()
        for i in list(live):
            if not finite[i]:
                self._diverge(i, inputs[i], "non-finite meta-gradient")
                live.remove(i)
        dead = [i for i in range(self.size) if i not in live]
        if dead:
            norms[dead] = 1.0
            for g in grads:
                g[dead] = 0
        if self.grad_norm == "unit":  # per member and tensor (MPLP.md §5)
            torch._foreach_div_(slices, list(norms.clamp_min(1e-12).reshape(-1).unbind()))
        elif self.grad_norm == "clip":  # per member, its global norm clipped to clip_norm
            total = norms.square().sum(1).sqrt()
            scale = (self.members[0].config.clip_norm / total.clamp_min(1e-12)).clamp(max=1.0)
            torch._foreach_mul_(slices, list(scale.repeat_interleave(len(grads)).unbind()))
        if live:
            self._schedule(self.members[live[0]].step)
            kept = [p.detach()[dead].clone() for p in params] if dead else []
            self.optimizer.step()
            if dead:
                with torch.no_grad():
                    for p, old in zip(params, kept, strict=True):
                        p[dead] = old  # Adam's momentum must not move a finished member
        share = (time.perf_counter() - started) / self.size
        for i in live:
            m = self.members[i]
            m.step += 1
            m.train_seconds += share
            v = metrics[i]
            m.history.append([float(m.step), v["meta_loss"], v["hint_loss"], v["heldout_loss"]])
        return metrics

    def _schedule(self, step: int) -> None:
        """Set the learning rate of the update that makes meta-step `step + 1` (live members step
        together, so one rate serves them all)."""
        config = self.members[0].config
        factor = lr_factor(config.lr_schedule, step, config.meta_steps, config.warmup_steps)
        for group in self.optimizer.param_groups:
            group["lr"] = self.members[0].lr * factor

    def _diverge(self, i: int, inputs: tuple[dict[str, Tensor], tuple[Tensor, ...]], what: str) -> None:
        member = self.members[i]
        self.sync(i)
        try:
            culprit = member.diagnose(*inputs)
        except Exception as exc:  # noqa: BLE001 - a diagnosis must never hide the divergence itself
            culprit = f"diagnosis failed: {type(exc).__name__}: {exc}"
        member.mark_diverged(f"{what} at meta-step {member.step + 1}" + (f": {culprit}" if culprit else ""))

