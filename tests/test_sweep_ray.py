"""The Ray executor against a local Ray instance started here, on loopback only."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from sweep_fakes import fake_names, marker_lines

from lbpbench.sweep import spec as spec_mod
from lbpbench.sweep.commands import sweep_group
from lbpbench.sweep.executors import RUNNER_ENV

ray = pytest.importorskip("ray")

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
SPEC = """
[sweep]
name = "r"
[fixed]
task = "sinusoid-5x10"
meta_steps = 3
[axes]
aggregator = ["mean", "sum"]
seed = [0, 1, 2]
"""


@pytest.fixture(scope="module")
def local_ray(tmp_path_factory):
    marker = tmp_path_factory.mktemp("ray") / "marker.txt"
    env_vars = {
        "PYTHONPATH": os.pathsep.join([str(TESTS), str(REPO)]),
        "LBPBENCH_FAKE_MARKER": str(marker),
        "LBPBENCH_FAKE_FAIL": "2",
    }
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False,
             runtime_env={"env_vars": env_vars})
    try:
        yield marker
    finally:
        ray.shutdown()


def test_ray_executor(local_ray: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(spec_mod, "registry_names", fake_names)
    monkeypatch.setenv(RUNNER_ENV, "sweep_fakes:fake_runner")
    (tmp_path / "spec.toml").write_text(SPEC)
    result = CliRunner().invoke(sweep_group, ["run", "spec.toml", "--executor", "ray", "--out", "out",
                                              "--no-report"])
    assert result.exit_code == 1, result.output  # seed 2 fails (LBPBENCH_FAKE_FAIL in the Ray workers)
    runs = pd.read_parquet(tmp_path / "out" / "runs.parquet")
    assert runs.groupby("status").size().to_dict() == {"ok": 4, "failed": 2}
    lines = marker_lines(local_ray)
    assert os.getpid() not in {pid for _, _, pid in lines}  # the runs executed in Ray workers
    assert sorted(r for e, r, _ in lines if e == "end") == sorted(runs["run_id"])
    statuses = runs.set_index("run_id")["status"]
    assert all((tmp_path / "out" / "runs" / rid / "status.json").exists() for rid in statuses.index)

    # resume through Ray: only the failed runs, and only with --retry-failed
    again = CliRunner().invoke(sweep_group, ["run", "spec.toml", "--executor", "ray", "--out", "out",
                                             "--no-report"])
    assert again.exit_code == 1
    assert len([e for e, _, _ in marker_lines(local_ray) if e == "end"]) == 6
