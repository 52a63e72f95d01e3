"""The driver of the one meta-training loop: progress, evaluation cadence, checkpoints, resume.

It steps a `Population` until no member is live. Every member checkpoints through its own
`CheckpointFiles` (the store's run-folder writer) every `CHECKPOINT_SECONDS`, at the end, and when
the loop is interrupted (Ctrl-C), so a resumed run continues from where it stopped, mid-training
evaluations included. A member abandoned on the plateau (`harness/plateau.py`) is checkpointed and
the population is rebuilt without it, so the members that learn no longer pay for it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from tqdm import tqdm

from lbpbench.harness.members import Member
from lbpbench.harness.plateau import abandon_reason
from lbpbench.harness.population import Population

CHECKPOINT_SECONDS = 30.0


class CheckpointFiles(Protocol):
    """What the harness needs of a run folder; `lbpbench.sweep.store.RunFiles` is the writer."""

    def read_checkpoint(self) -> dict[str, Any] | None: ...

    def write_checkpoint(self, state: dict[str, Any]) -> None: ...

    def write_learner(self, payload: dict[str, Any]) -> None: ...


def resume(members: Sequence[Member], files: Sequence[CheckpointFiles | None]) -> None:
    """Load each member's checkpoint, where its run folder holds one."""
    for member, f in zip(members, files, strict=True):
        state = f.read_checkpoint() if f is not None else None
        if state is not None:
            member.load_state_dict(state)


def save(population: Population, files: Sequence[CheckpointFiles | None]) -> None:
    for i, f in enumerate(files):
        if f is not None:
            population.sync(i)
            f.write_checkpoint(population.members[i].state_dict())


def drive(
    population: Population,
    files: Sequence[CheckpointFiles | None],
    *,
    evaluate: Callable[[Member], dict[str, float]],
    progress: bool = False,
    desc: str = "",
) -> None:
    """Meta-train to the end. `evaluate(member)` gives the metrics recorded every `eval_every` steps."""
    config = population.members[0].config
    every = config.eval_every
    bar = tqdm(total=config.meta_steps, initial=population.step, disable=not progress, desc=desc, leave=False)
    started, start_step, last_save = time.monotonic(), population.step, time.monotonic()
    try:
        while population.live():
            before = {i: population.members[i].step for i in population.live()}
            metrics = population.meta_step()
            bar.update(1)
            rate = (population.step - start_step) / max(1e-9, time.monotonic() - started)
            best = min(metrics[i]["meta_loss"] for i in before)
            bar.set_postfix(meta_loss=f"{best:.4g}", steps_per_s=f"{rate:.2f}")
            abandoned = False
            for i in before:
                member = population.members[i]
                if every and member.step != before[i] and member.step % every == 0:
                    population.sync(i)
                    values = evaluate(member)
                    member.meta_evals += _rows(member, values)
                    cause = abandon_reason(member.config.abandon_plateau_at, member.step, values)
                    if cause is not None:
                        member.abandon(cause)
                        abandoned = True
            if abandoned and population.live():
                save(population, files)  # the abandoned members' last checkpoint
                population, files = _without_finished(population, files)
                last_save = time.monotonic()
            elif time.monotonic() - last_save > CHECKPOINT_SECONDS:
                save(population, files)
                last_save = time.monotonic()
    except KeyboardInterrupt:
        save(population, files)  # an interrupted run resumes from here, nothing lost
        raise
    finally:
        bar.close()
    save(population, files)  # members dropped by a rebuild were written just before it


def _without_finished(
    population: Population, files: Sequence[CheckpointFiles | None]
) -> tuple[Population, list[CheckpointFiles | None]]:
    """The live members as a new population (weights and Adam moments carried over)."""
    keep = population.live()
    for i in keep:
        population.sync(i)
    return Population([population.members[i] for i in keep]), [files[i] for i in keep]


def _rows(member: Member, values: dict[str, float]) -> list[dict[str, Any]]:
    """meta_eval rows at the member's step, with the meta-training wall time spent to get there."""
    rows = [{"phase": "meta_eval", "step": member.step, "metric": k, "value": v} for k, v in values.items()]
    rows.append({"phase": "meta_eval", "step": member.step, "metric": "wall_s",
                 "value": member.train_seconds})
    return rows
