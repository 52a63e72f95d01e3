"""`abandon_plateau_at`: a member still on the task-average plateau stops; the others train on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from population_helpers import TINY, assert_member_equals_run, lone_run, tiny_configs

from lbpbench.harness.config import RunConfig
from lbpbench.harness.driver import drive
from lbpbench.harness.members import Member, ProtocolMember
from lbpbench.harness.plateau import PLATEAU_FRACTION, TASK_AVERAGE, abandon_reason
from lbpbench.harness.population import Population
from lbpbench.harness.run import run_config, run_seed_batch
from lbpbench.sweep.identity import identity_config


class MemoryFiles:
    """A run folder in memory: the last checkpoint written."""

    def __init__(self) -> None:
        self.checkpoint: dict[str, Any] | None = None

    def read_checkpoint(self) -> dict[str, Any] | None:
        return self.checkpoint

    def write_checkpoint(self, state: dict[str, Any]) -> None:
        self.checkpoint = {k: (v.copy() if isinstance(v, dict) else v) for k, v in state.items()}

    def write_learner(self, payload: dict[str, Any]) -> None:
        pass


def test_abandon_reason_follows_the_plateau_line() -> None:
    on = {"eval_loss": 0.0185, TASK_AVERAGE: 0.0185}
    off = {"eval_loss": 0.5 * 0.0185, TASK_AVERAGE: 0.0185}
    assert abandon_reason(0, 750, on) is None  # never, by default
    assert abandon_reason(750, 500, on) is None  # not yet
    assert abandon_reason(750, 750, off) is None  # below the line: it learns
    reason = abandon_reason(750, 1000, on)
    assert reason is not None and "meta-step 1000" in reason and "0.0185" in reason
    just_below = {"eval_loss": PLATEAU_FRACTION * 0.0185 * 0.999, TASK_AVERAGE: 0.0185}
    assert abandon_reason(750, 750, just_below) is None
    with pytest.raises(ValueError, match="eval_loss_task_average"):
        abandon_reason(10, 10, {"eval_loss": 2.3, "eval_accuracy": 0.1})


def test_abandon_setting_is_validated_and_leaves_run_ids_alone() -> None:
    with pytest.raises(ValueError, match="abandon_plateau_at must be >= 0"):
        RunConfig(abandon_plateau_at=-1)
    with pytest.raises(ValueError, match="set eval_every > 0"):
        RunConfig(abandon_plateau_at=500, eval_every=0)
    assert identity_config(RunConfig(**TINY)) == identity_config(RunConfig(**TINY, abandon_plateau_at=0))
    assert "abandon_plateau_at" in identity_config(RunConfig(abandon_plateau_at=500, eval_every=250))


@pytest.mark.trajectory
def test_a_stuck_member_stops_and_the_others_train_on_as_if_alone(one_thread: None) -> None:
    settings = dict(meta_steps=4, eval_every=2, abandon_plateau_at=2)
    members: list[Member] = [ProtocolMember(c) for c in tiny_configs((0, 1, 2), **settings)]
    files = [MemoryFiles() for _ in members]

    def evaluate(member: Member) -> dict[str, float]:  # seed 1 is "on the plateau", the others learn
        loss = 0.02 if member.config.seed == 1 else 0.005
        return {"eval_loss": loss, TASK_AVERAGE: 0.0185}

    drive(Population(members), files, evaluate=evaluate)
    stuck, learners = members[1], [members[0], members[2]]
    assert stuck.abandoned_at == 2 and stuck.step == 2 and "plateau" in stuck.abandon_cause
    assert [m.step for m in learners] == [4, 4] and all(m.abandoned_at is None for m in learners)
    assert files[1].checkpoint["abandoned_at"] == 2 and files[1].checkpoint["step"] == 2
    assert [f.checkpoint["step"] for f in (files[0], files[2])] == [4, 4]
    # each member is what it would be alone: the rebuilt population carries weights and Adam moments
    for member, steps in ((members[0], 4), (stuck, 2), (members[2], 4)):
        alone = RunConfig(**{**member.config.to_dict(), "abandon_plateau_at": 0})
        assert_member_equals_run(member, lone_run(alone, steps))


def test_an_untrained_learner_is_abandoned_reported_and_stays_abandoned(tmp_path: Path) -> None:
    # An untrained learner's five steps do no better than the task-average curve (ratio ~1.3).
    config = RunConfig(**TINY, meta_steps=3, eval_every=1, abandon_plateau_at=1)
    result = run_config(config, tmp_path / "run", progress=False)
    assert result.status == "ok" and result.final["abandoned_at"] == 1.0
    meta = result.curves[result.curves.phase == "meta_train"]
    assert meta.step.max() == 1 and set(result.curves.phase) == {"meta_train", "meta_eval", "eval"}
    again = run_config(config, tmp_path / "run", progress=False)  # resumed: nothing more to train
    assert again.curves[again.curves.phase == "meta_train"].step.max() == 1
    assert again.final == pytest.approx(result.final)
    # in a seed batch, the abandoned member resumes as finished and the batch still runs
    batch = run_seed_batch([config, RunConfig(**{**config.to_dict(), "seed": 1})],
                           [tmp_path / "run", tmp_path / "other"])
    assert [r.final["abandoned_at"] for r in batch] == [1.0, 1.0]


def test_a_classification_task_is_refused_before_anything_runs(tmp_path: Path) -> None:
    from lbpbench.registry import build_registry
    from lbpbench.sweep.checks import run_problems

    (tmp_path / "labels.py").write_text(
        "from lbpbench import hookimpl\n"
        "from lbpbench.tasks.sinusoid import SinusoidFamily\n"
        "@hookimpl\n"
        "def lbpbench_register_tasks(register):\n"
        "    register('labels', lambda **kw: SinusoidFamily(name='labels', metric='eval_accuracy'))\n"
    )
    registry = build_registry([tmp_path])
    problems = run_problems(RunConfig(task="labels", abandon_plateau_at=5, eval_every=5), registry)
    assert len(problems) == 1 and "needs a regression task" in problems[0] and "eval_accuracy" in problems[0]
    assert run_problems(RunConfig(task="labels", eval_every=5), registry) == []
    # MAML meta-trains, so the rule would stop it too: refused; a tuned baseline ignores the setting
    maml = RunConfig(task="labels", baseline="maml", abandon_plateau_at=5, eval_every=5)
    assert len(run_problems(maml, registry)) == 1
    assert run_problems(RunConfig(**{**maml.to_dict(), "baseline": "adam"}), registry) == []
    assert run_problems(RunConfig(abandon_plateau_at=5, eval_every=5), registry) == []
