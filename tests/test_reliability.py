"""Nothing lost, nothing wrong (issue 15): kills, Ctrl-C, damaged files, bad input, exit codes.

Subprocess tests use the fake runner (tests/sweep_fakes.py) or tiny real configurations; each
finishes in seconds. The exit-code contract under test (README "Exit codes"): 0 ok, 1 runs failed,
2 bad input, 3 folder in use, 130 interrupted; never a traceback for a user error.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from importlib.util import find_spec
from pathlib import Path

import click
import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from sweep_fakes import marker_lines

from lbpbench import cli
from lbpbench import registry as registry_mod
from lbpbench.harness.config import MEMORY_LIMIT_GIB, RunConfig, validate_fields
from lbpbench.sweep import executors
from lbpbench.sweep.commands import sweep_group
from lbpbench.sweep.executors import RUNNER_ENV, RunTask
from lbpbench.sweep.spec import SpecError, parse_spec
from lbpbench.sweep.store import ResultsStore, RunFiles, lock_held
from lbpbench.tasks.idx import read_idx, write_idx

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
GOLDEN = Path(os.environ.get("LBPBENCH_REFERENCE_DIR", REPO.parent / "shared" / "reference"))
SPEC = """
[sweep]
name = "rel"
[fixed]
task = "sinusoid-5x10"
meta_steps = 3
[axes]
seed = [0, 1, 2, 3, 4, 5]
"""
N_RUNS = 6
RUN_LONGER_THAN_ANY_DELAY = 60.0  # seconds a fake run sleeps where a test must act while it runs
TINY = ["--message-size", "2", "--hidden-size", "2", "--mlp-widths", "8", "--eval-tasks", "3", "--quiet"]


# ------------------------------------------------------------------------------------------- helpers

def subprocess_env(marker: Path | None = None, sleep: float = 0.0) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "PYTHONPATH": os.pathsep.join([str(TESTS), str(REPO), env.get("PYTHONPATH", "")]).strip(os.pathsep),
        RUNNER_ENV: "sweep_fakes:fake_runner",
        "LBPBENCH_FAKE_SLEEP": str(sleep),
        "OMP_NUM_THREADS": "1",
    })
    if marker is not None:
        env["LBPBENCH_FAKE_MARKER"] = str(marker)
    for var in ("LBPBENCH_FAKE_FAIL", "LBPBENCH_FAKE_DIVERGE", "LBPBENCH_DEBUG"):
        env.pop(var, None)
    return env


def start_pool_sweep(cwd: Path, marker: Path, sleep: float) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "lbpbench", "sweep", "run", "spec.toml", "--out", "out", "--workers", "2",
         "--no-report", "--no-progress"],
        cwd=cwd, env=subprocess_env(marker, sleep), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True)


def exited_interrupted(proc: subprocess.Popen, timeout: float) -> str:
    """The output of a subprocess told to stop, which must exit 130 within `timeout` (killed if not)."""
    try:
        output = proc.communicate(timeout=timeout)[0].decode()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, output
    return output


def children(pid: int) -> list[int]:
    """Processes whose parent is `pid` (Linux /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_until(predicate, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"exited early ({proc.returncode}): {proc.stdout.read().decode()}")
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            raise AssertionError("timed out waiting for the subprocess")
        time.sleep(0.01)


def starts(marker: Path) -> list[tuple[str, int]]:
    return [(r, pid) for e, r, pid in marker_lines(marker) if e == "start"]


def ends(marker: Path) -> list[str]:
    return [r for e, r, _ in marker_lines(marker) if e == "end"]


def statuses(out: Path) -> dict[str, str]:
    return {p.parent.name: json.loads(p.read_text())["status"] for p in (out / "runs").glob("*/status.json")}


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "spec.toml").write_text(SPEC)
    monkeypatch.setenv(RUNNER_ENV, "sweep_fakes:fake_runner")
    monkeypatch.setenv("LBPBENCH_FAKE_MARKER", str(tmp_path / "marker.txt"))
    for var in ("LBPBENCH_FAKE_FAIL", "LBPBENCH_FAKE_DIVERGE", "LBPBENCH_FAKE_SLEEP"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


def invoke(*args: str, **kwargs) -> click.testing.Result:
    return CliRunner().invoke(cli.main, list(args), prog_name="lbpbench", **kwargs)


def no_traceback(result: click.testing.Result | str) -> None:
    text = result if isinstance(result, str) else result.output
    assert "Traceback" not in text, text
    if not isinstance(result, str):
        assert result.exception is None or isinstance(result.exception, SystemExit), result.exception


# ---------------------------------------------------------------------------------- 1. kill -9 orphans

@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_kill_9_of_a_pool_sweep_leaves_no_worker_behind(workdir: Path) -> None:
    marker = workdir / "marker.txt"
    # Runs outlast any scheduling delay: the first worker cannot finish a run before the second
    # starts one, however loaded the machine, and an orphan would still be running 5 s after the kill.
    proc = start_pool_sweep(workdir, marker, sleep=RUN_LONGER_THAN_ANY_DELAY)
    try:
        wait_until(lambda: len({pid for _, pid in starts(marker)}) >= 2, proc)  # both workers in a run
        helpers = children(proc.pid)  # the two workers and multiprocessing's resource tracker
        assert len(helpers) >= 2
    finally:
        os.kill(proc.pid, signal.SIGKILL)  # the sweep alone, not its process group
        proc.wait(timeout=30)
    killed_at = time.monotonic()
    while any(alive(p) for p in helpers) and time.monotonic() - killed_at < 5:
        time.sleep(0.02)
    survivors = [p for p in helpers if alive(p)]
    for p in survivors:
        os.kill(p, signal.SIGKILL)
    assert not survivors, "processes of a killed sweep kept running"
    assert len(starts(marker)) == 2 and not ends(marker), marker.read_text()
    assert statuses(workdir / "out") == {}
    assert not lock_held(workdir / "out" / ".lock")

    result = CliRunner().invoke(sweep_group, ["run", "spec.toml", "--out", "out", "--no-report"])
    assert result.exit_code == 0, result.output
    assert sorted(ends(marker)) == sorted(set(ends(marker))) and len(ends(marker)) == N_RUNS


def test_a_worker_writes_only_for_a_live_sweep_that_holds_the_lock(tmp_path, monkeypatch) -> None:
    store = ResultsStore(tmp_path / "out")
    task = RunTask("r0", RunConfig(meta_steps=3).to_dict(), str(store.run_dir("r0")), {},
                   {"lock": str(store.lock_path)})
    monkeypatch.setattr(executors, "_parent_pid", os.getppid())  # as if in a pool worker of this parent
    store.root.mkdir()
    store.lock_path.touch()
    refused = executors.execute_job([task], lambda config, out_dir: None)
    assert [o.status for o in refused] == ["failed"] and not refused[0].recorded
    assert "lock" in refused[0].error and not store.run_dir("r0").exists()
    with store.lock():
        assert executors._refuse_in_worker([task]) is None
    monkeypatch.setattr(executors, "_stopping", True)
    assert executors._refuse_in_worker([task])[0].status == executors.INTERRUPTED


def test_an_orphaned_worker_exits_before_writing(tmp_path) -> None:
    code = (
        "import os, sys\n"
        "from lbpbench.sweep import executors\n"
        "from lbpbench.sweep.executors import RunTask\n"
        "executors._parent_pid = os.getppid() + 1  # not our parent: the sweep is gone\n"
        f"task = RunTask('r0', {{'meta_steps': 3}}, {str(tmp_path / 'r0')!r}, {{}}, {{}})\n"
        "executors.execute_job([task], lambda c, d: None)\n"
        "print('still here')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env=subprocess_env())
    assert out.returncode == 0 and "still here" not in out.stdout, out.stderr
    assert not (tmp_path / "r0").exists()


# -------------------------------------------------------------------------------------- 2. interrupts

@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("when", ["workers starting", "runs in flight"])
def test_ctrl_c_of_a_pool_sweep_fails_no_run_and_exits_130(workdir: Path, when: str) -> None:
    marker = workdir / "marker.txt"
    # Runs far longer than any scheduling delay: the sweep cannot finish, nor record a run, before
    # the signal arrives, however loaded the machine; a sweep that ignores Ctrl-C times out below.
    proc = start_pool_sweep(workdir, marker, sleep=RUN_LONGER_THAN_ANY_DELAY)
    if when == "workers starting":  # the resource tracker and a first worker exist, nothing runs yet
        wait_until(lambda: len(children(proc.pid)) >= 2, proc)
    else:
        wait_until(lambda: len({pid for _, pid in starts(marker)}) >= 2, proc)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole process group
    output = exited_interrupted(proc, timeout=20)
    no_traceback(output)
    assert "failed" not in output and "interrupted" in output, output
    assert statuses(workdir / "out") == {}  # nothing recorded: no run failed, none half-written
    in_flight = {r for r, _ in starts(marker)}
    store = ResultsStore(workdir / "out")
    assert all(store.read_run(r).state == "incomplete" for r in in_flight)  # unfinished, resumable

    result = CliRunner().invoke(sweep_group, ["run", "spec.toml", "--out", "out", "--no-report"])
    assert result.exit_code == 0, result.output
    assert set(statuses(workdir / "out").values()) == {"ok"} and len(statuses(workdir / "out")) == N_RUNS


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="pthread_kill of a thread")
@pytest.mark.parametrize("executor", [
    ["--workers", "2"],
    pytest.param(["--executor", "ray"], marks=pytest.mark.skipif(find_spec("ray") is None, reason="no ray")),
], ids=["pool", "ray"])
def test_ctrl_c_taken_by_another_thread_of_the_sweep_still_stops_it(
    workdir: Path, executor: list[str]
) -> None:
    """The kernel hands a process-wide SIGINT to any thread that does not block it; a helper thread
    of the sweep takes it here, while the main thread waits on runs that take longer than the test
    waits (RUN_LONGER_THAN_ANY_DELAY, from the second run's start). The pool waits in bounded
    slices for this (SIGNAL_POLL_S); `ray.wait` checks signals itself."""
    code = (
        "import signal, sys, threading, time\n"
        "from pathlib import Path\n"
        "from lbpbench.cli import main\n"
        "def interrupt():\n"
        "    marker = Path('marker.txt')\n"
        "    while not marker.exists() or marker.read_text().count('start') < 2:\n"
        "        time.sleep(0.01)\n"
        "    signal.pthread_kill(threading.get_ident(), signal.SIGINT)  # this thread, not main\n"
        "threading.Thread(target=interrupt, daemon=True).start()\n"
        f"sys.argv = ['lbpbench', 'sweep', 'run', 'spec.toml', '--out', 'out', *{executor!r},\n"
        "            '--no-report', '--no-progress']\n"
        "main()\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=workdir, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True,
                            env=subprocess_env(workdir / "marker.txt", sleep=RUN_LONGER_THAN_ANY_DELAY))
    wait_until(lambda: len(starts(workdir / "marker.txt")) >= 2, proc, timeout=120)  # Ray starts slowly
    output = exited_interrupted(proc, timeout=40)  # a lost signal waits for a run: 60 s
    assert "interrupted" in output and statuses(workdir / "out") == {}, output


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])  # Ctrl-C; `kill`, a scheduler
def test_ctrl_c_of_train_saves_a_checkpoint_and_exits_130(tmp_path: Path, signum: int) -> None:
    args = [sys.executable, "-m", "lbpbench", "train", *[a for a in TINY if a != "--quiet"],
            "--meta-steps", "1000000", "--out", "run"]
    proc = subprocess.Popen(args, cwd=tmp_path, env=subprocess_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    seen = bytearray()

    def read() -> None:  # the progress bar (stderr): its meta_loss shows once meta-steps run
        while proc.stdout is not None:
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                return
            seen.extend(chunk)

    import threading

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    wait_until(lambda: b"meta_loss=" in seen, proc)
    os.killpg(proc.pid, signum)
    proc.wait(timeout=60)
    reader.join(timeout=10)
    output = seen.decode(errors="replace")
    assert proc.returncode == 130, output
    no_traceback(output)
    assert "interrupted" in output
    files = {p.name for p in (tmp_path / "run").iterdir()}
    assert "checkpoint.pt" in files and "status.json" not in files  # unfinished, resumable


# ------------------------------------------------------------------------------- 3. report locations

def test_report_goes_beside_out_and_default_stays(workdir: Path, monkeypatch) -> None:
    import lbpbench.report

    written = []
    monkeypatch.setattr(lbpbench.report, "make_report",
                        lambda results, out: written.append(Path(out)) or Path(out).mkdir(parents=True),
                        raising=False)
    for out in ("a", "b"):
        result = CliRunner().invoke(sweep_group, ["run", "spec.toml", "--out", out])
        assert result.exit_code == 0, result.output
    assert written == [Path("a") / "report", Path("b") / "report"]
    assert not (workdir / "reports").exists()
    assert CliRunner().invoke(sweep_group, ["run", "spec.toml"]).exit_code == 0
    assert written[-1] == Path("reports") / "rel" and (workdir / "results" / "rel" / "runs.parquet").exists()


# ------------------------------------------------------------------------------------- 4. bad input

BAD_TRAIN_VALUES = [
    ("--meta-lr", "nan", "meta_lr"),
    ("--meta-lr", "0", "meta_lr must be > 0"),
    ("--meta-lr", "-1e-3", "meta_lr must be > 0"),
    ("--meta-lr", "inf", "meta_lr must be a finite number"),
    ("--hint-weight", "1.5", "hint_weight must be in [0, 1]"),
    ("--hint-weight", "-0.1", "hint_weight must be in [0, 1]"),
    ("--divergence-threshold", "0", "divergence_threshold must be > 0"),
    ("--divergence-threshold", "inf", "divergence_threshold must be a finite number"),
    ("--eval-every", "-1", "eval_every must be >= 0"),
    ("--truncation", "-1", "truncation must be >= 0"),
    ("--mlp-widths", "", "mlp_widths must be a non-empty list"),
    ("--mlp-widths", "8,0", "mlp_widths must be a non-empty list of widths >= 1"),
    ("--seed", "-1", "seed must be in [0, 2**63 - 1]"),
    ("--seed", str(2**64), "seed must be in [0, 2**63 - 1]"),
    ("--meta-steps", str(10**30), "meta_steps must be at most 1e+09"),
    ("--eval-every", str(10**30), "eval_every must be at most 1e+09"),
    ("--eval-tasks", str(10**30), "eval_tasks must be at most 1e+09"),
    ("--message-size", str(10**30), "message_size must be at most 1e+09"),
    ("--baseline-lrs", "nan", "baseline_lrs must be a finite number"),
    ("--meta-batch", "1000000", "more than the 64 GiB limit"),
]


@pytest.mark.parametrize(("option", "value", "message"), BAD_TRAIN_VALUES)
def test_train_refuses_bad_values_before_anything_runs(tmp_path, option, value, message) -> None:
    args = ["train", "--out", str(tmp_path / "run"), option, value]
    if option == "--meta-batch":
        args += ["--message-size", "100000"]
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    assert message in result.output, result.output
    no_traceback(result)
    assert not (tmp_path / "run").exists()


def test_validate_fields_bounds() -> None:
    assert validate_fields(RunConfig().to_dict()) == []
    assert validate_fields({"seed": 2**63 - 1}) == [] and validate_fields({"seed": 0}) == []
    assert validate_fields({"hint_weight": 0.0}) == validate_fields({"hint_weight": 1.0}) == []
    assert validate_fields({"eval_every": 0, "truncation": 0, "meta_lr": None}) == []
    huge = validate_fields({"seed": 10**5000})  # beyond int-to-str limits: still a message
    assert huge and "digit number" in huge[0]
    assert validate_fields({"baseline_lrs": [0.1, float("inf")]})
    assert validate_fields({"meta_batch": 10**6, "message_size": 10**5})[0].endswith(
        f"more than the {MEMORY_LIMIT_GIB} GiB limit")
    with pytest.raises(ValueError, match="seed"):
        RunConfig(seed=2**64)


def write_spec(folder: Path, body: str, name: str = "bad.toml") -> Path:
    path = folder / name
    path.write_text('[sweep]\nname = "bad"\n' + body)
    return path


@pytest.mark.parametrize(("body", "message"), [
    ('[fixed]\ntask = "fashion-mnist-20x8"\n', "needs data_dir"),
    ('[axes]\ntransfer_tasks = [["mnist-784-100"], ["no-such-task"]]\n', "unknown task 'no-such-task'"),
    ('[fixed]\nactivation = "no-such-node"\n', "unknown node_type 'no-such-node'"),
    ('[axes]\nactivation = ["relu", "nope"]\n', "unknown node_type 'nope'"),
    ('[fixed]\nmessage_size = 100000\nmeta_batch = 1000\n', "GiB limit"),
    ('[fixed]\neval_tasks = 1000000000\n', "GiB limit"),
    ("[fixed]\nseed = 18446744073709551616\n", "seed must be in [0, 2**63 - 1]"),
    ("[fixed]\nmeta_lr = nan\n", "meta_lr must be a finite number"),
    ("[fixed]\nhint_weight = 2.0\n", "hint_weight must be in [0, 1]"),
])
def test_sweep_spec_refuses_bad_input_and_writes_nothing(tmp_path, monkeypatch, body, message) -> None:
    monkeypatch.chdir(tmp_path)
    spec = write_spec(tmp_path, body)
    result = invoke("sweep", "run", str(spec), "--out", "out", "--no-report")
    assert result.exit_code == 2, result.output
    assert message in result.output and "bad.toml" in result.output, result.output
    no_traceback(result)
    assert not (tmp_path / "out").exists()


def test_spec_check_names_the_key_line() -> None:
    with pytest.raises(SpecError) as info:
        parse_spec('[sweep]\nname = "x"\n[fixed]\nmeta_steps = 3\ntask = "fashion-mnist-20x8"\n',
                   source="s.toml")
    assert info.value.line == 5 and info.value.key == "task"


def test_spec_that_is_not_utf8_names_the_file(tmp_path) -> None:
    spec = tmp_path / "latin1.toml"
    spec.write_bytes('[sweep]\nname = "caf\xe9"\n'.encode("latin-1"))
    result = invoke("sweep", "run", str(spec), "--no-report")
    assert result.exit_code == 2 and "latin1.toml" in result.output and "UTF-8" in result.output
    no_traceback(result)


def idx_folder(folder: Path) -> Path:
    from lbpbench.tasks.mnist import IDX_STEMS

    folder.mkdir()
    rng = np.random.default_rng(0)
    for key, stem in IDX_STEMS.items():
        shape = (400, 28, 28) if "images" in key else (400,)
        write_idx(folder / stem, rng.integers(0, 10, shape, dtype=np.uint8))
    return folder


@pytest.mark.parametrize("damage", ["truncated", "bad magic"])
def test_damaged_idx_data_dir_is_refused_naming_the_file(tmp_path, monkeypatch, damage) -> None:
    monkeypatch.chdir(tmp_path)
    data = idx_folder(tmp_path / f"idx-{damage.replace(' ', '-')}")
    victim = data / "train-images-idx3-ubyte"
    raw = victim.read_bytes()
    victim.write_bytes(raw[:-100] if damage == "truncated" else b"\x01\x02" + raw[2:])
    spec = write_spec(tmp_path, f'[fixed]\ntask = "fashion-mnist-20x8"\ndata_dir = "{data}"\n')
    result = invoke("sweep", "run", str(spec), "--out", "out", "--no-report")
    assert result.exit_code == 2, result.output
    assert str(victim) in result.output and ("truncated" in result.output or "magic" in result.output)
    no_traceback(result)
    assert not (tmp_path / "out").exists()


def test_forged_idx_header_is_an_error_not_an_overflow(tmp_path) -> None:
    path = tmp_path / "forged-idx3-ubyte"
    path.write_bytes(bytes([0, 0, 8, 4]) + b"\xff\xff\xff\xff" * 4 + b"\x00" * 16)
    with pytest.raises(ValueError, match="truncated IDX data"):
        read_idx(path)


def test_merge_survives_a_run_row_it_cannot_store(workdir: Path) -> None:
    """A seed beyond 64 bits written by an older version: reported and left out, never a crash
    that blocks every later resume."""
    assert CliRunner().invoke(sweep_group, ["run", "spec.toml", "--out", "out", "--no-report"]).exit_code == 0
    store = ResultsStore(workdir / "out")
    victim = store.run_folders()[0]
    config_path = store.run_dir(victim) / "config.json"
    payload = json.loads(config_path.read_text())
    payload["config"]["seed"] = 2**70
    config_path.write_text(json.dumps(payload))
    with pytest.warns(UserWarning, match=f"run {victim}: left out of runs.parquet"):
        runs, _ = store.merge("rel", store.run_folders())
    assert victim not in set(runs["run_id"]) and len(runs) == N_RUNS - 1
    assert len(pd.read_parquet(workdir / "out" / "runs.parquet")) == N_RUNS - 1
    result = CliRunner().invoke(sweep_group, ["run", "spec.toml", "--out", "out", "--no-report"])
    assert result.exit_code == 1, result.output  # said, not hidden; and the merge still happened
    assert f"run {victim}: left out of runs.parquet" in result.output
    assert "1 left out of runs.parquet" in result.output
    assert len(pd.read_parquet(workdir / "out" / "runs.parquet")) == N_RUNS - 1


# ----------------------------------------------------------------------------------- 5. damaged input

def test_out_under_a_file_is_one_line_exit_2(workdir: Path) -> None:
    (workdir / "afile").write_text("x")
    for out in ("afile", "afile/sub"):
        result = invoke("sweep", "run", "spec.toml", "--out", out, "--no-report")
        assert result.exit_code == 2, result.output
        assert "afile" in result.output
        no_traceback(result)
    result = invoke("train", *TINY, "--out", "afile/sub")
    assert result.exit_code == 2 and "afile" in result.output, result.output
    no_traceback(result)


def test_out_in_an_unwritable_folder_is_one_line_exit_2(workdir: Path) -> None:
    locked = workdir / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        target = locked / "sub" if os.geteuid() != 0 else Path("/proc/lbpbench-cannot-write-here")
        result = invoke("sweep", "run", "spec.toml", "--out", str(target), "--no-report")
        assert result.exit_code == 2, result.output
        assert str(target) in result.output
        no_traceback(result)
    finally:
        locked.chmod(0o700)


def learner_file(folder: Path, kind: str) -> Path:
    folder.mkdir()
    path = folder / "learner.pt"
    if kind == "garbage":
        path.write_bytes(b"\x00not a torch file at all" * 10)
    elif kind == "empty":
        path.write_bytes(b"")
    else:
        torch.save({"config": RunConfig(meta_steps=1).to_dict(), "net": {"w": torch.zeros(3)}}, path)
        if kind == "truncated":
            path.write_bytes(path.read_bytes()[:-40])
    return path


@pytest.mark.parametrize("kind", ["garbage", "empty", "truncated", "foreign weights"])
def test_eval_of_a_damaged_learner_names_the_file(tmp_path, kind) -> None:
    path = learner_file(tmp_path / "run", kind)
    result = invoke("eval", str(tmp_path / "run"), "--eval-tasks", "2")
    assert result.exit_code == 2, result.output
    assert str(path) in result.output
    no_traceback(result)


def golden_variant(tmp_path: Path, kind: str) -> Path:
    source = GOLDEN / "golden_sinusoid_stateful_5x10.npz"
    folder = tmp_path / "golden"
    folder.mkdir()
    (folder / "checkpoints").symlink_to(GOLDEN / "checkpoints")
    path = folder / f"{kind}.npz"
    raw = source.read_bytes()
    if kind == "truncated":
        path.write_bytes(raw[: len(raw) // 2])
    elif kind == "bit-flipped":
        flipped = bytearray(raw)
        flipped[len(raw) // 3] ^= 0x10
        path.write_bytes(bytes(flipped))
    elif kind == "empty":
        path.write_bytes(b"")
    else:
        arrays = dict(np.load(source))
        del arrays["b2"]
        np.savez(path, **arrays)
    return path


@pytest.mark.skipif(not (GOLDEN / "golden_sinusoid_stateful_5x10.npz").is_file(), reason="no golden files")
@pytest.mark.parametrize("kind", ["truncated", "bit-flipped", "empty", "incomplete"])
def test_reference_verify_of_a_damaged_golden_names_the_file(tmp_path, kind) -> None:
    path = golden_variant(tmp_path, kind)
    result = invoke("reference", "verify", str(path))
    assert result.exit_code == 2, result.output
    assert str(path) in result.output
    no_traceback(result)
    if kind == "incomplete":
        assert "missing array(s) b2" in result.output


def test_unknown_component_in_train_creates_no_folder(tmp_path) -> None:
    result = invoke("train", "--aggregator", "no-such-agg", "--out", str(tmp_path / "run"))
    assert result.exit_code == 2 and "no-such-agg" in result.output
    assert not (tmp_path / "run").exists()


# --------------------------------------------------------------------------- 6. damaged merged table

def test_sweep_status_says_the_merged_table_is_damaged(workdir: Path) -> None:
    assert CliRunner().invoke(sweep_group, ["run", "spec.toml", "--out", "out", "--no-report"]).exit_code == 0
    healthy = invoke("sweep", "status", "out")
    assert healthy.exit_code == 0 and "damaged" not in healthy.output
    runs = workdir / "out" / "runs.parquet"
    runs.write_bytes(runs.read_bytes()[:-50])
    result = invoke("sweep", "status", "out")
    assert result.exit_code == 2, result.output
    assert "damaged" in result.output and "out/runs.parquet" in result.output
    assert "ok       6" in result.output  # the run counts are still shown
    no_traceback(result)


# ------------------------------------------------------------------------------ 7. ./plugins loading

def test_only_commands_that_build_components_load_cwd_plugins(isolated_plugins: Path, tmp_path) -> None:
    loaded = tmp_path / "imported.txt"
    plugins = isolated_plugins / "plugins"
    plugins.mkdir()
    (plugins / "spy.py").write_text(f"open({str(loaded)!r}, 'a').write('x')\n")
    for args in (["plugins"], ["plugins", "--json"], ["report", str(tmp_path / "no-results")]):
        invoke(*args)
        assert not loaded.exists(), f"`lbpbench {' '.join(args)}` imported ./plugins"
    assert registry_mod.cwd_plugins_enabled()  # the CLI restores the library default afterwards
    spec = write_spec(isolated_plugins, '[fixed]\naggregator = "from-nowhere"\n')
    result = invoke("sweep", "run", str(spec), "--no-report")  # builds components: loads ./plugins
    assert result.exit_code == 2 and loaded.read_text() == "x", result.output
    registry_mod.clear_cache()
    invoke("--plugins-dir", "plugins", "plugins")  # named: loaded
    assert loaded.read_text() == "xx"


# ------------------------------------------------------------------------------ 8. exit-code contract

@pytest.mark.parametrize(("raised", "code", "text"), [
    (RuntimeError("internal boom"), 1, "error: internal boom (RuntimeError; `lbpbench --debug"),
    (ValueError("bad value x"), 2, "error: bad value x"),
    (FileNotFoundError(2, "No such file or directory", "missing.bin"), 2, "error: missing.bin: No such file"),
    (KeyboardInterrupt(), 130, "interrupted"),
])
def test_exit_code_contract(raised, code, text, monkeypatch) -> None:
    from lbpbench.sweep.store import SweepLocked

    @click.command("boom")
    def boom() -> None:
        raise raised

    @click.command("locked")
    def locked() -> None:
        raise SweepLocked("results/x is in use")

    monkeypatch.setitem(cli.main.commands, "boom", boom)
    monkeypatch.setitem(cli.main.commands, "locked", locked)
    result = invoke("boom")
    assert result.exit_code == code, result.output
    assert text in result.output
    no_traceback(result)
    assert invoke("locked").exit_code == 3
    if code in (1, 2):  # --debug lets the exception (and its traceback) through
        debug = invoke("--debug", "boom")
        assert debug.exception is raised


def test_subprocess_user_error_prints_no_traceback(tmp_path) -> None:
    out = subprocess.run([sys.executable, "-m", "lbpbench", "eval", str(tmp_path / "nothing")],
                         capture_output=True, text=True, timeout=120, env=subprocess_env())
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr and "learner.pt" in out.stderr


def test_run_files_writer_is_unchanged_for_resume(tmp_path) -> None:
    """An interrupted run (config.json, no status.json) reads as unfinished: it will be re-run."""
    files = RunFiles(tmp_path / "runs" / "r0")
    files.start({"run_id": "r0", "config": RunConfig().to_dict()})
    assert ResultsStore(tmp_path).read_run("r0").state == "incomplete"
