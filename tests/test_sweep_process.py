"""Real processes: resume after `kill -9` of a running sweep, and two concurrent sweeps on one folder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from sweep_fakes import fake_names, marker_lines

from lbpbench.sweep import spec as spec_mod
from lbpbench.sweep.commands import sweep_group
from lbpbench.sweep.executors import RUNNER_ENV
from lbpbench.sweep.store import ResultsStore

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
# only the task is named: the spec must validate against the real registry in the subprocess
SPEC = """
[sweep]
name = "proc"
[fixed]
task = "sinusoid-5x10"
meta_steps = 3
[axes]
seed = [0, 1, 2, 3, 4, 5]
"""
N_RUNS = 6


def start_sweep(cwd: Path, marker: Path, sleep: float) -> subprocess.Popen:
    env = dict(os.environ)
    env.update({
        "PYTHONPATH": os.pathsep.join([str(TESTS), str(REPO), env.get("PYTHONPATH", "")]).strip(os.pathsep),
        RUNNER_ENV: "sweep_fakes:fake_runner",
        "LBPBENCH_FAKE_MARKER": str(marker),
        "LBPBENCH_FAKE_SLEEP": str(sleep),
    })
    for var in ("LBPBENCH_FAKE_FAIL", "LBPBENCH_FAKE_DIVERGE"):
        env.pop(var, None)
    return subprocess.Popen(
        [sys.executable, "-m", "lbpbench", "sweep", "run", "spec.toml", "--out", "out", "--no-report",
         "--no-progress", "--workers", "1"],  # one run at a time, whatever the load (auto reads it)
        cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)


def wait_for(predicate, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"sweep exited early ({proc.returncode}): {proc.stdout.read().decode()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("timed out waiting for the sweep subprocess")
        time.sleep(0.02)


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "spec.toml").write_text(SPEC)
    monkeypatch.setenv(RUNNER_ENV, "sweep_fakes:fake_runner")
    monkeypatch.setenv("LBPBENCH_FAKE_MARKER", str(tmp_path / "marker.txt"))
    for var in ("LBPBENCH_FAKE_FAIL", "LBPBENCH_FAKE_DIVERGE", "LBPBENCH_FAKE_SLEEP"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


def test_resume_after_kill_9(workdir: Path) -> None:
    marker = workdir / "marker.txt"
    proc = start_sweep(workdir, marker, sleep=0.4)

    def third_run_in_flight() -> bool:
        lines = marker_lines(marker)
        starts = [r for e, r, _ in lines if e == "start"]
        ends = {r for e, r, _ in lines if e == "end"}
        return len(starts) >= 3 and starts[-1] not in ends

    try:
        wait_for(third_run_in_flight, proc)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the sweep's own process group (started above)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    # Read what happened from the markers, not from the timing: on a loaded machine more runs may
    # finish between the check above and the kill. Runs go one at a time, so one was in flight.
    lines = marker_lines(marker)
    store = ResultsStore(workdir / "out")
    finished = {s.run_id for s in store.scan(store.run_folders()) if s.finished}
    assert len(finished) >= 2 and finished <= {r for e, r, _ in lines if e == "end"}, lines
    unfinished = [r for e, r, _ in lines if e == "start" and r not in finished]
    assert len(unfinished) == 1, lines  # the run in flight, or being recorded, at the kill
    killed = unfinished[0]
    assert store.read_run(killed).state == "incomplete"

    result = CliRunner().invoke(sweep_group, ["run", "spec.toml", "--out", "out", "--no-report"])
    assert result.exit_code == 0, result.output

    lines = marker_lines(marker)
    ends = [r for e, r, _ in lines if e == "end"]
    assert len(ends) == N_RUNS and len(set(ends)) == N_RUNS  # every run completed exactly once
    assert [r for e, r, _ in lines if e == "start"].count(killed) == 2
    states = store.scan(store.run_folders())
    assert len(states) == N_RUNS and all(s.state == "ok" for s in states)
    assert not list((workdir / "out").rglob("*.tmp"))
    runs = pd.read_parquet(workdir / "out" / "runs.parquet")
    assert sorted(runs["run_id"]) == sorted(ends)
    assert set(pd.read_parquet(workdir / "out" / "curves.parquet")["run_id"]) == set(ends)


def test_second_concurrent_sweep_refuses(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    marker = workdir / "marker.txt"
    proc = start_sweep(workdir, marker, sleep=1.0)  # 6 s of runs: the second sweep starts well within
    try:
        wait_for(lambda: bool(marker_lines(marker)), proc)  # the first sweep holds the lock now
        out = workdir / "out"
        before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and p.name != ".lock"}
        monkeypatch.setattr(spec_mod, "registry_names", fake_names)
        second = CliRunner().invoke(sweep_group, ["run", "spec.toml", "--out", "out", "--no-report"])
        assert second.exit_code == 3, second.output
        assert "in use by another sweep" in second.output and "pid" in second.output
        for path, mtime in before.items():  # the refused sweep wrote nothing
            assert path.stat().st_mtime_ns == mtime
        assert "running" in CliRunner().invoke(sweep_group, ["status", "out"]).output
        assert proc.wait(timeout=60) == 0, proc.stdout.read().decode()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    ends = [r for e, r, _ in marker_lines(marker) if e == "end"]
    assert len(ends) == len(set(ends)) == N_RUNS
    assert set(pd.read_parquet(workdir / "out" / "runs.parquet")["status"]) == {"ok"}
