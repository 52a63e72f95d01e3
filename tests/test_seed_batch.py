"""Seed batches: a population of S seeds, vmapped, must equal S populations of one (separate runs)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from population_helpers import assert_member_equals_run, lone_run, population, tiny_configs

from lbpbench.harness import run as harness_run
from lbpbench.harness.config import RunConfig
from lbpbench.harness.members import Member
from lbpbench.harness.population import Population, batchable
from lbpbench.harness.run import run_config, run_seed_batch
from lbpbench.protocol.aggregators import RNNAggregator
from lbpbench.sweep.commands import sweep_group


def _first_losses(configs: list[RunConfig]) -> list[float]:
    return [population([c]).meta_step()[0]["meta_loss"] for c in configs]


@pytest.mark.trajectory
@pytest.mark.parametrize(
    "settings",
    [
        dict(learner="stateful", aggregator="mean"),
        dict(learner="stateful", aggregator="rnn"),
        dict(learner="stateless", aggregator="sum", sharing="all"),
        dict(learner="backprop", aggregator="sum", message_size=1),
        dict(task="sinusoid-2x10", learner="stateless", learned_prior=True),
    ],
    ids=["stateful-mean", "stateful-rnn", "stateless-sum-all", "backprop", "learned-prior"],
)
def test_seed_batch_equals_separate_runs(settings: dict, one_thread: None) -> None:
    configs = tiny_configs((0, 1, 2), **settings)
    batch = population(configs)
    for _ in range(3):
        batch.meta_step()
    for i, config in enumerate(configs):
        batch.sync(i)
        assert_member_equals_run(batch.members[i], lone_run(config, 3))
    assert batch.members[0].history != batch.members[1].history  # the seeds really differ


@pytest.mark.trajectory
def test_a_diverging_seed_stops_alone(one_thread: None) -> None:
    threshold = sum(_first_losses(tiny_configs())) / 2  # the higher seed diverges at its first step
    configs = tiny_configs(divergence_threshold=threshold)
    batch = population(configs)
    for _ in range(3):
        batch.meta_step()
    diverged = [m for m in batch.members if m.diverged]
    assert diverged and all("above divergence_threshold" in m.cause for m in diverged)
    for i, config in enumerate(configs):
        batch.sync(i)
        assert_member_equals_run(batch.members[i], lone_run(config, 3))


def test_rnn_scan_equals_torch_gru() -> None:
    torch.manual_seed(0)
    agg = RNNAggregator(message_size=3, rnn_hidden=5)
    edges = torch.randn(2, 4, 6, 3)
    torch.testing.assert_close(agg.scan(edges.reshape(-1, 6, 3)), agg.gru(edges.reshape(-1, 6, 3))[1][-1])
    stacked = {k: torch.stack([v, v + 0.01]) for k, v in agg.state_dict().items()}

    def one(state: dict, e: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(agg, state, (e, 2))

    batched = torch.func.vmap(one)(stacked, torch.stack([edges, edges]))
    torch.testing.assert_close(batched[0], agg.aggregate(edges, dim=2))


def test_batchable_says_why_not() -> None:
    assert batchable(tiny_configs()) is None
    assert "at least two" in batchable(tiny_configs((0,)))
    assert "more than their seed" in batchable([*tiny_configs((0,)), *tiny_configs((1,), aggregator="sum")])
    assert "repeat" in batchable(tiny_configs((1, 1)))
    assert "baselines" in batchable(tiny_configs(baseline="adam"))
    assert "checkpointing" in batchable(tiny_configs(checkpointing=True))


def test_run_seed_batch_writes_what_run_config_writes_and_resumes(tmp_path: Path, one_thread: None) -> None:
    configs = tiny_configs(meta_steps=2, eval_every=1)
    dirs = [tmp_path / f"batch{c.seed}" for c in configs]
    batched = run_seed_batch(configs, dirs)
    for config, out, result in zip(configs, dirs, batched, strict=True):
        single = run_config(config, tmp_path / f"single{config.seed}", progress=False)
        assert result.status == single.status == "ok"
        assert result.final == pytest.approx(single.final, rel=1e-4)
        names = lambda d: {p.name for p in d.iterdir()}  # noqa: E731
        # the harness persists only its checkpoint and learner; curves and status are the store's
        assert names(out) == names(tmp_path / f"single{config.seed}") == {"checkpoint.pt", "learner.pt"}
        assert set(result.curves.phase) == {"meta_train", "meta_eval", "eval"}
    # Resume: members continue from their own checkpoints, one step more, exactly as run_config would.
    longer = tiny_configs(meta_steps=3, eval_every=1)
    resumed = run_seed_batch(longer, dirs)
    for out, result in zip(dirs, resumed, strict=True):
        # the checkpoint books each member its share of the batch's wall time, as its result does
        earlier = torch.load(out / "checkpoint.pt", weights_only=False)["wall_seconds"]
        assert 0 < earlier < result.wall_time_s
    for config, result in zip(longer, resumed, strict=True):
        alone = run_config(config, tmp_path / f"single{config.seed}", progress=False)
        meta = lambda r: r.curves[r.curves.phase == "meta_train"].value.to_numpy()  # noqa: E731
        assert meta(result) == pytest.approx(meta(alone), rel=1e-5)
        assert result.curves[result.curves.phase == "meta_train"].step.max() == 3


def test_run_seed_batch_falls_back_and_never_raises(tmp_path: Path) -> None:
    baselines = tiny_configs(baseline="adam", baseline_lrs=[0.01])
    results = run_seed_batch(baselines, [tmp_path / "a", tmp_path / "b"])
    assert [r.status for r in results] == ["ok", "ok"]
    broken = tiny_configs(task="sinusoid-5x10", data_dir=str(tmp_path / "missing"), learner="no-such-learner")
    results = run_seed_batch(broken, [tmp_path / "c", tmp_path / "d"])
    assert [r.status for r in results] == ["failed", "failed"] and "no-such-learner" in results[0].error
    with pytest.raises(ValueError, match="output folders"):
        run_seed_batch(tiny_configs(), [tmp_path / "e"])


def test_sweep_seed_batch_gives_the_same_results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "spec.toml").write_text(
        '[sweep]\nname = "sb"\n[fixed]\nmeta_steps = 2\neval_tasks = 4\nmeta_batch = 2\n'
        "message_size = 4\nhidden_size = 4\nmlp_widths = [32, 16]\n"
        '[axes]\nseed = [0, 1]\nbaselines = ["adam"]\nbaseline_lrs = [[0.01]]\n'
    )
    batches: list[list[int]] = []

    class Recording(Population):
        def __init__(self, members: list[Member]) -> None:
            batches.append([m.config.seed for m in members])
            super().__init__(members)

    monkeypatch.setattr(harness_run, "Population", Recording)
    runs = {}
    for name, extra in (("loop", []), ("batched", ["--seed-batch"])):
        args = ["run", "spec.toml", "--out", name, "--no-report", "--no-progress", *extra]
        result = CliRunner().invoke(sweep_group, args)
        assert result.exit_code == 0, result.output
        runs[name] = pd.read_parquet(tmp_path / name / "runs.parquet").sort_values("run_id")
    loop, batched = runs["loop"], runs["batched"]
    assert list(loop.run_id) == list(batched.run_id)  # seed batching is not part of a run's identity
    assert list(batched.status) == ["ok"] * 4  # 2 learner seeds + 2 Adam seeds
    # the loop sweep ran two populations of one; the batched sweep the learner's two seeds as one
    assert batches == [[0], [1], [0, 1]]
    for a, b in zip(loop.final, batched.final, strict=True):
        assert b == pytest.approx(a, rel=1e-4)


@pytest.mark.trajectory
def test_run_seed_batch_matches_run_config_through_divergence(tmp_path: Path, one_thread: None) -> None:
    """Meta-eval rows and meta-curves of a batch with a diverging seed equal those of single runs."""
    threshold = sum(_first_losses(tiny_configs())) / 2
    configs = tiny_configs(meta_steps=3, eval_every=1, divergence_threshold=threshold)
    batched = run_seed_batch(configs, [tmp_path / f"b{c.seed}" for c in configs])
    assert any(r.status == "diverged" for r in batched)
    for config, result in zip(configs, batched, strict=True):
        single = run_config(config, tmp_path / f"s{config.seed}", progress=False)
        assert result.status == single.status
        for phase in ("meta_train", "meta_eval"):
            a = result.curves[result.curves.phase == phase].reset_index(drop=True)
            b = single.curves[single.curves.phase == phase].reset_index(drop=True)
            assert list(a.step) == list(b.step) and list(a.metric) == list(b.metric)
            learned = a.metric != "wall_s"  # wall time is the only row allowed to differ
            expected = b[learned].value.to_numpy(dtype=float)
            assert a[learned].value.to_numpy(dtype=float) == pytest.approx(expected, rel=1e-4, nan_ok=True)
            wall = a[~learned].value.to_numpy(dtype=float)
            assert (wall > 0).all() and (wall[1:] >= wall[:-1]).all()


def test_sweep_runner_execution_options(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import pickle

    from lbpbench.sweep.executors import harness_runner, resolve_runner

    monkeypatch.delenv("LBPBENCH_SWEEP_RUNNER", raising=False)
    calls: list[bool] = []

    def fake_run_config(config: RunConfig, out_dir: Path, *, progress: bool, compile: bool) -> str:
        calls.append(compile)
        return "result"

    monkeypatch.setattr(harness_run, "run_config", fake_run_config)
    assert resolve_runner() is harness_runner
    compiled = resolve_runner(compile=True)
    assert compiled(tiny_configs((0,))[0], tmp_path) == "result" and calls == [True]
    assert not compiled.supports_seed_batch
    batching = pickle.loads(pickle.dumps(resolve_runner(seed_batch=True)))  # process-pool workers
    assert batching.supports_seed_batch and not batching.compile
