"""Running sweeps in-process with the fake runner: store layout and schemas, resume, --retry-failed,
corrupted files, fail-fast, the process pool, seed grouping, run identity, status/ls, report hook."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from sweep_fakes import SeedBatchRunner, fake_names, fake_runner, marker_lines

from lbpbench.harness.config import RunConfig, field_types
from lbpbench.sweep import commands
from lbpbench.sweep import spec as spec_mod
from lbpbench.sweep.commands import sweep_group
from lbpbench.sweep.executors import RUNNER_ENV, LocalExecutor, RunTask, seed_groups
from lbpbench.sweep.identity import run_id
from lbpbench.sweep.store import ResultsStore

SPEC = """
[sweep]
name = "t"
[fixed]
task = "sinusoid-5x10"
meta_steps = 3
[axes]
aggregator = ["mean", "sum"]
seed = [0, 1, 2]
baselines = ["adam"]
"""
N_RUNS = 2 * 3 + 3


@pytest.fixture
def env(tmp_path, monkeypatch):
    """cwd = tmp_path with spec.toml; fake runner; fake registry names; a marker file."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(spec_mod, "registry_names", fake_names)
    (tmp_path / "spec.toml").write_text(SPEC)
    marker = tmp_path / "marker.txt"
    monkeypatch.setenv(RUNNER_ENV, "sweep_fakes:fake_runner")
    monkeypatch.setenv("LBPBENCH_FAKE_MARKER", str(marker))
    for var in ("LBPBENCH_FAKE_FAIL", "LBPBENCH_FAKE_DIVERGE", "LBPBENCH_FAKE_SLEEP",
                "LBPBENCH_FAKE_FAIL_MODE"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


def sweep(*args: str, env: dict[str, str] | None = None):
    args = ("run", "spec.toml", "--out", "out", "--no-report", *args)
    return CliRunner().invoke(sweep_group, list(args), env=env)


def ends(marker: Path) -> list[str]:
    return [r for e, r, _ in marker_lines(marker) if e == "end"]


def test_store_layout_and_schemas(env: Path) -> None:
    result = sweep()
    assert result.exit_code == 0, result.output
    out = env / "out"
    assert (out / "sweep.toml").exists() and (out / ".lock").exists()
    runs = pd.read_parquet(out / "runs.parquet")
    curves = pd.read_parquet(out / "curves.parquet")
    assert len(runs) == N_RUNS and runs["run_id"].is_unique
    expected = ["run_id", "sweep", *field_types(), "method", "status", "error", "wall_time_s", "metric",
                "higher_is_better", "final", "abandoned_at", "torch_version", "lbpbench_version",
                "git_commit"]
    assert sorted(runs.columns) == sorted(set(expected))
    assert runs["abandoned_at"].isna().all()  # no run stopped on the plateau (tests/test_report_restarts.py)
    assert set(runs["status"]) == {"ok"} and set(runs["sweep"]) == {"t"}
    assert set(runs["method"]) == {"stateful/mean", "stateful/sum", "adam"}
    assert set(runs.loc[runs["method"] != "adam", "baseline"]) == {""}
    assert runs["metric"].eq("eval_loss").all() and not runs["higher_is_better"].any()
    assert runs["final"].notna().all()
    assert list(curves.columns) == ["run_id", "phase", "step", "metric", "value"]
    assert str(curves["step"].dtype) == "int64" and str(curves["value"].dtype) == "float64"
    assert set(curves["run_id"]) == set(runs["run_id"])
    for rid in runs["run_id"]:
        folder = out / "runs" / rid
        config = json.loads((folder / "config.json").read_text())
        status = json.loads((folder / "status.json").read_text())
        assert RunConfig.from_dict(config["config"]).to_dict() == config["config"]
        assert status["status"] == "ok" and status["error"] is None
        assert {"python", "torch", "lbpbench", "plugins"} <= set(status["versions"])
        assert {"started_at", "finished_at", "wall_time_s", "device", "git_commit"} <= set(status)
        assert (folder / "learner.pt").exists()  # extra files written by the runner stay
        assert not list(folder.glob(".*.tmp"))
    # the resolved spec reproduces the same runs
    again = spec_mod.load_spec(out / "sweep.toml")
    assert len(again.expand()) == N_RUNS


def test_resume_skips_finished_runs(env: Path) -> None:
    assert sweep().exit_code == 0
    assert len(ends(env / "marker.txt")) == N_RUNS
    result = sweep()
    assert result.exit_code == 0, result.output
    assert len(ends(env / "marker.txt")) == N_RUNS  # nothing re-ran
    assert f"skipped {N_RUNS}" in result.output
    # widening an axis runs only the new points
    result = sweep("--set", "seed=0,1,2,3")
    assert result.exit_code == 0
    assert len(ends(env / "marker.txt")) == N_RUNS + 3


def test_a_narrower_rerun_says_which_finished_runs_leave_the_table(env: Path) -> None:
    assert sweep().exit_code == 0
    result = sweep("--set", "seed=1")  # one seed of the study, re-run into the same folder
    assert result.exit_code == 0, result.output
    runs = pd.read_parquet(env / "out" / "runs.parquet")
    assert set(runs["seed"]) == {1}
    assert "note: 6 finished run(s) planned by this folder's previous spec" in result.output
    result = sweep()  # the whole spec again: every run listed, none re-run, no note
    assert result.exit_code == 0, result.output
    assert len(pd.read_parquet(env / "out" / "runs.parquet")) == N_RUNS
    assert len(ends(env / "marker.txt")) == N_RUNS and "note:" not in result.output


def test_diverged_is_finished_and_failed_needs_retry(env: Path) -> None:
    result = sweep(env={"LBPBENCH_FAKE_FAIL": "1", "LBPBENCH_FAKE_DIVERGE": "2"})
    assert result.exit_code == 1
    assert "fake failure for seed 1" in result.output and "--retry-failed" in result.output
    runs = pd.read_parquet(env / "out" / "runs.parquet")
    assert runs.groupby("status").size().to_dict() == {"ok": 3, "diverged": 3, "failed": 3}
    failed = runs[runs["status"] == "failed"]
    assert failed["error"].str.contains("RuntimeError: fake failure").all()
    assert failed["metric"].eq("eval_loss").all()  # filled from the other runs of the task
    n = len(ends(env / "marker.txt"))

    assert sweep().exit_code == 1  # without --retry-failed: nothing re-runs, failures are kept
    assert len(ends(env / "marker.txt")) == n

    result = sweep("--retry-failed")
    assert result.exit_code == 0, result.output
    assert len(ends(env / "marker.txt")) == n + 3  # only the three failed runs
    runs = pd.read_parquet(env / "out" / "runs.parquet")
    assert runs.groupby("status").size().to_dict() == {"ok": 6, "diverged": 3}


def test_runner_returning_failed_status(env: Path) -> None:
    result = sweep(env={"LBPBENCH_FAKE_FAIL": "0", "LBPBENCH_FAKE_FAIL_MODE": "return"})
    assert result.exit_code == 1
    runs = pd.read_parquet(env / "out" / "runs.parquet")
    assert set(runs.loc[runs["seed"] == 0, "error"]) == {"fake failure (returned)"}


def test_fail_fast_stops_at_first_failure(env: Path) -> None:
    result = sweep("--fail-fast", env={"LBPBENCH_FAKE_FAIL": "0"})
    assert result.exit_code == 1
    assert "--fail-fast" in result.output
    assert len(ends(env / "marker.txt")) == 1


@pytest.mark.parametrize("damage", ["status_garbage", "status_truncated", "curves_garbage", "config_garbage"])
def test_corrupted_run_file_is_reported_and_rerun(env: Path, damage: str) -> None:
    assert sweep().exit_code == 0
    store = ResultsStore(env / "out")
    victim = store.run_folders()[0]
    folder = store.run_dir(victim)
    if damage == "status_garbage":
        (folder / "status.json").write_text("{not json")
    elif damage == "status_truncated":
        (folder / "status.json").write_text('{"status": "ok"')
    elif damage == "curves_garbage":
        (folder / "curves.parquet").write_bytes(b"PAR1 broken")
    else:
        (folder / "config.json").write_text("")
    status = CliRunner().invoke(sweep_group, ["status", "out"])
    assert f"corrupt  {victim}" in status.output and "corrupt  1" in status.output
    before = ends(env / "marker.txt")
    result = sweep()
    assert result.exit_code == 0, result.output
    assert "warning:" in result.output and victim in result.output
    assert ends(env / "marker.txt")[len(before):] == [victim]
    assert store.read_run(victim).state == "ok"
    assert len(pd.read_parquet(env / "out" / "runs.parquet")) == N_RUNS


def test_interrupted_run_without_status_is_rerun(env: Path) -> None:
    assert sweep().exit_code == 0
    store = ResultsStore(env / "out")
    victim = store.run_folders()[1]
    (store.run_dir(victim) / "status.json").unlink()
    (store.run_dir(victim) / ".curves.parquet.abc.tmp").write_bytes(b"half")
    assert "pending  1" in CliRunner().invoke(sweep_group, ["status", "out"]).output
    before = len(ends(env / "marker.txt"))
    assert sweep().exit_code == 0
    assert ends(env / "marker.txt")[before:] == [victim]
    assert not list(store.run_dir(victim).glob(".*.tmp"))


def test_interrupted_sweep_lists_its_finished_runs(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C (or SIGTERM) mid-sweep: exit 130, and runs.parquet/curves.parquet already hold the runs
    that finished, so a study spanning sessions can be reported between them."""
    monkeypatch.setenv("LBPBENCH_FAKE_INTERRUPT", "2")
    result = sweep()
    assert result.exit_code == 130 and "interrupted" in result.output, result.output
    finished = ends(env / "marker.txt")
    runs = pd.read_parquet(env / "out" / "runs.parquet")
    assert sorted(runs["run_id"]) == sorted(finished) and len(finished) >= 2
    assert set(pd.read_parquet(env / "out" / "curves.parquet")["run_id"]) == set(finished)
    monkeypatch.delenv("LBPBENCH_FAKE_INTERRUPT")
    assert sweep().exit_code == 0
    assert len(pd.read_parquet(env / "out" / "runs.parquet")) == N_RUNS


def test_process_pool_executor(env: Path) -> None:
    result = sweep("--workers", "2")
    assert result.exit_code == 0, result.output
    lines = marker_lines(env / "marker.txt")
    assert sorted(r for e, r, _ in lines if e == "end") == sorted(ResultsStore(env / "out").run_folders())
    assert os.getpid() not in {pid for _, _, pid in lines}  # ran in worker processes
    runs = pd.read_parquet(env / "out" / "runs.parquet")
    assert set(runs["status"]) == {"ok"} and len(runs) == N_RUNS
    # same results as a sequential sweep of the same spec
    seq = CliRunner().invoke(sweep_group, ["run", "spec.toml", "--out", "seq", "--no-report"])
    assert seq.exit_code == 0
    a = pd.read_parquet(env / "out" / "curves.parquet").sort_values(["run_id", "phase", "metric", "step"])
    b = pd.read_parquet(env / "seq" / "curves.parquet").sort_values(["run_id", "phase", "metric", "step"])
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True))


@pytest.mark.parametrize("free_cores, in_workers", [(2, True), (1, False)])
def test_auto_workers_follow_the_free_cores(env: Path, monkeypatch, free_cores: int,
                                            in_workers: bool) -> None:
    monkeypatch.delenv("LBPBENCH_WORKERS")  # the CLI default: auto
    monkeypatch.setattr(commands, "fair_threads", lambda *a: free_cores)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # in-process: leave torch's threads alone
    result = sweep()
    assert result.exit_code == 0, result.output
    pids = {pid for _, _, pid in marker_lines(env / "marker.txt")}
    assert (os.getpid() not in pids) == in_workers
    assert sweep("--workers", "two").exit_code == 2


def test_pool_worker_failure_is_recorded(env: Path) -> None:
    result = sweep("--workers", "2", env={"LBPBENCH_FAKE_FAIL": "2"})
    assert result.exit_code == 1
    runs = pd.read_parquet(env / "out" / "runs.parquet")
    assert runs.groupby("status").size().to_dict() == {"ok": 6, "failed": 3}


def test_run_id_identity() -> None:
    a = RunConfig(seed=0)
    assert run_id(a, "1.0", {}) == run_id(RunConfig(seed=0), "1.0", {})
    assert run_id(a, "1.0", {}) != run_id(RunConfig(seed=1), "1.0", {})
    assert run_id(a, "1.0", {}) != run_id(a, "1.1", {})
    assert run_id(a, "1.0", {}) != run_id(a, "1.0", {"aggregator:mean": "p==2"})
    rid = run_id(a, "1.0", {})
    assert rid.startswith("sinusoid-5x10_stateful-mean_s0_") and len(rid.rsplit("_", 1)[1]) == 12
    assert run_id(RunConfig(baseline="adam"), "1.0", {}).startswith("sinusoid-5x10_adam_s0_")


def test_seed_groups_and_batch_plumbing(tmp_path: Path) -> None:
    configs = [RunConfig(aggregator=a, seed=s) for a in ("mean", "sum") for s in (0, 1, 2)]
    tasks = [RunTask(f"r{i}", c.to_dict(), str(tmp_path / "runs" / f"r{i}"), {"plugins": {}})
             for i, c in enumerate(configs)]
    assert seed_groups(tasks, fake_runner) == [[t] for t in tasks]
    runner = SeedBatchRunner()
    groups = seed_groups(tasks, runner)
    assert [[t.run_id for t in g] for g in groups] == [["r0", "r1", "r2"], ["r3", "r4", "r5"]]
    outcomes = []
    LocalExecutor().run(groups, runner, outcomes.append)
    assert runner.batches == [[0, 1, 2], [0, 1, 2]]
    assert [o.status for o in outcomes] == ["ok"] * 6
    store = ResultsStore(tmp_path)
    assert all(store.read_run(f"r{i}").state == "ok" for i in range(6))


def test_status_and_ls(env: Path) -> None:
    assert sweep(env={"LBPBENCH_FAKE_FAIL": "1"}).exit_code == 1
    status = CliRunner().invoke(sweep_group, ["status", "out"])
    assert status.exit_code == 0
    assert "sweep t: 9 runs" in status.output and "failed   3" in status.output
    assert "fake failure for seed 1" in status.output
    CliRunner().invoke(sweep_group, ["run", "spec.toml", "--no-report"])  # into results/t
    listing = CliRunner().invoke(sweep_group, ["ls", "."])
    assert listing.exit_code == 0
    row = next(line for line in listing.output.splitlines() if line.startswith("out"))
    assert row.split() == ["out", "9", "6", "0", "3", "0", "0", "idle"]
    default_root = CliRunner().invoke(sweep_group, ["ls"])
    assert default_root.output.splitlines()[1].split()[:3] == ["t", "9", "9"]
    assert CliRunner().invoke(sweep_group, ["status", "spec_missing"]).exit_code == 2


def test_report_hook(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def fake_make_report(results_dir, out_dir):
        calls.append((Path(results_dir), Path(out_dir)))

    import lbpbench.report

    monkeypatch.setattr(lbpbench.report, "make_report", fake_make_report, raising=False)
    result = CliRunner().invoke(sweep_group, ["run", "spec.toml", "--out", "out"])
    assert result.exit_code == 0, result.output
    # --out DIR: the report goes with the results, never to ./reports/<name>/ of the cwd
    assert calls == [(Path("out"), Path("out") / "report")]
    CliRunner().invoke(sweep_group, ["run", "spec.toml", "--out", "out", "--no-report"])
    assert len(calls) == 1
    # two sweeps of one name into different folders: two reports, neither overwrites the other
    assert CliRunner().invoke(sweep_group, ["run", "spec.toml", "--out", "other"]).exit_code == 0
    assert calls[-1] == (Path("other"), Path("other") / "report")
    # without --out: results/<name>/ and reports/<name>/ (the README's default sweep)
    assert CliRunner().invoke(sweep_group, ["run", "spec.toml"]).exit_code == 0
    assert calls[-1] == (Path("results") / "t", Path("reports") / "t")


def test_report_hook_failure_keeps_exit_status(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(results_dir, out_dir):
        raise RuntimeError("boom")

    import lbpbench.report

    monkeypatch.setattr(lbpbench.report, "make_report", broken, raising=False)
    messages = []
    assert commands._write_report(env, "t", echo=lambda m, err=False: messages.append(m)) is None
    assert "boom" in messages[0]


def test_no_spec_runs_default_sweep(env: Path) -> None:
    result = CliRunner().invoke(sweep_group, ["run", "--no-report", "--set", "seed=0"])
    assert result.exit_code == 0, result.output
    runs = pd.read_parquet(env / "results" / "default" / "runs.parquet")
    assert sorted(runs["method"]) == ["adam", "stateful/mean", "stateful/mean"]
    assert set(runs["meta_steps"]) == {20}


def test_executor_option_errors(env: Path) -> None:
    assert sweep("--address", "auto").exit_code == 2
    assert sweep("--executor", "dask").exit_code == 2
    assert sweep("--workers", "0").exit_code == 2
    assert not (env / "out").exists()


def test_reindex_moves_runs_named_by_an_older_rule_so_a_rerun_skips_them(env: Path) -> None:
    assert sweep().exit_code == 0
    store = ResultsStore(env / "out")
    ids = store.run_folders()
    old = {rid: rid.rsplit("_", 1)[0] + "_000000000000" for rid in ids[:2]}  # as an older rule named them
    for rid, stale in old.items():
        (store.run_dir(rid)).rename(store.run_dir(stale))
        data = json.loads((store.run_dir(stale) / "config.json").read_text())
        (store.run_dir(stale) / "config.json").write_text(json.dumps({**data, "run_id": stale}))
    index = json.loads((env / "out" / "index.json").read_text())
    (env / "out" / "index.json").write_text(json.dumps({**index, "run_ids": [old.get(r, r) for r in ids]}))
    result = CliRunner().invoke(sweep_group, ["reindex", "out"])
    assert result.exit_code == 0, result.output
    assert sorted(store.run_folders()) == sorted(ids) and "2 run folder(s) renamed" in result.output
    assert json.loads((store.run_dir(ids[0]) / "config.json").read_text())["run_id"] == ids[0]
    before = len(ends(env / "marker.txt"))
    rerun = sweep()
    assert rerun.exit_code == 0 and len(ends(env / "marker.txt")) == before  # nothing trained again
    assert CliRunner().invoke(sweep_group, ["reindex", "out"]).output.count("->") == 0


def test_identity_ignores_settings_at_their_defaults() -> None:
    from lbpbench.sweep.identity import identity_config

    assert identity_config(RunConfig(seed=3)) == {"seed": 3}
    assert run_id(RunConfig(seed=3)) == run_id(RunConfig.from_dict({"seed": 3}))
