"""Executors: run a sweep's pending runs sequentially, in local worker processes, or as Ray tasks.

The unit the executors know is a *runner*, ``runner(config, out_dir) -> RunResult-like`` (by default
``lbpbench.harness.run_config``, imported lazily so the sweep room loads without the harness). Each
run writes its own files from wherever it executes (worker process, Ray worker) through
``execute_run``; the parent only counts outcomes and, at the end, merges. So a parent killed at any
moment loses at most the runs in flight, and never leaves a half-written file.

Seed batching: a runner may declare ``supports_seed_batch = True`` and provide
``run_seed_batch(configs, out_dirs) -> list[RunResult]`` (the harness's seed-vectorised entry).
Then ``seed_groups`` puts runs that differ only in ``seed`` into one job, executed as one call;
results are still written per run, with the same run ids, so stores stay interchangeable.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import lbpbench
from lbpbench.harness.config import RunConfig
from lbpbench.sweep import store

#: Hidden, for tests: "module:function" of a runner to use instead of the harness.
RUNNER_ENV = "LBPBENCH_SWEEP_RUNNER"


@runtime_checkable
class RunResultLike(Protocol):
    """What a runner returns; `lbpbench.harness.RunResult` satisfies it."""

    status: str  # "ok" | "diverged" | "failed"
    curves: Any  # pandas DataFrame, long form: phase, step, metric, value
    final: dict[str, float]
    wall_time_s: float
    error: str | None


class Runner(Protocol):
    """Runs one configuration, may write extra files (learner.pt) into `out_dir`.

    Optional: a keyword `progress: bool` (per-run meta-step bar), and the seed-batch pair
    `supports_seed_batch: bool` + `run_seed_batch(configs, out_dirs) -> list[RunResultLike]`.
    """

    def __call__(self, config: RunConfig, out_dir: Path) -> RunResultLike: ...


def harness_runner(
    config: RunConfig, out_dir: Path, *, progress: bool = False, compile: bool | str = False
) -> RunResultLike:
    """The default runner: `lbpbench.harness.run_config`, imported on first use."""
    try:  # lazy: keeps `sweep status/ls` and workers light
        from lbpbench.harness import run_config
    except ImportError:  # the harness package does not re-export it (yet)
        from lbpbench.harness.run import run_config

    return run_config(config, out_dir, progress=progress, compile=compile)


def import_runner(ref: str) -> Runner:
    """Load a runner from "module:function"."""
    module_name, sep, attr = ref.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"runner must be 'module:function', got {ref!r}")
    return getattr(importlib.import_module(module_name), attr)


class HarnessRunner:
    """The harness runner with execution options that are not part of a run's identity:
    `seed_batch` meta-trains the seeds of one configuration as one vectorised job
    (`lbpbench.harness.run.run_seed_batch`, each run still written alone); `compile` runs the
    inner step (True, "inner") or the whole meta-loss ("graphs": CUDA graphs on a GPU) through
    torch.compile (single runs only: a seed batch is vmapped eagerly)."""

    def __init__(self, seed_batch: bool = False, compile: bool | str = False) -> None:
        self.supports_seed_batch = seed_batch
        self.compile = compile

    def __call__(self, config: RunConfig, out_dir: Path, *, progress: bool = False) -> RunResultLike:
        return harness_runner(config, out_dir, progress=progress, compile=self.compile)

    def run_seed_batch(self, configs: Sequence[RunConfig], out_dirs: Sequence[Path]) -> list[RunResultLike]:
        from lbpbench.harness.run import run_seed_batch

        return list(run_seed_batch(configs, out_dirs))


def resolve_runner(
    ref: str | None = None, *, seed_batch: bool = False, compile: bool | str = False
) -> Runner:
    """`ref`, else $LBPBENCH_SWEEP_RUNNER, else the harness (with the execution options asked for)."""
    ref = ref or os.environ.get(RUNNER_ENV)
    if ref:
        return import_runner(ref)
    return HarnessRunner(seed_batch, compile) if seed_batch or compile else harness_runner


# ------------------------------------------------------------------------------------------ run units

@dataclass(frozen=True)
class RunTask:
    """Everything a worker needs to execute and record one run (picklable, small)."""

    run_id: str
    config: dict[str, Any]
    run_dir: str
    identity: dict[str, Any]  # harness_version, plugins, hash (written to config.json)
    context: dict[str, Any] = field(default_factory=dict)  # git_commit, executor name
    progress: bool = False


@dataclass(frozen=True)
class RunOutcome:
    """What the parent learns about a finished run (the files hold the rest)."""

    run_id: str
    status: str
    error: str | None = None
    wall_time_s: float = 0.0
    recorded: bool = True  # False: the worker died before writing status.json (re-run next time)


#: RunOutcome.status of a run a pool worker did not start or finish because the sweep is stopping:
#: nothing was recorded, the run stays unfinished and resumes next time.
INTERRUPTED = "interrupted"


def git_commit() -> str | None:
    """HEAD of the lbpbench source checkout, or None outside a git checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(lbpbench.__file__).resolve().parent,
                             capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    commit = out.stdout.strip()
    return commit if out.returncode == 0 and commit else None


def _dist_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _device(config: RunConfig, result: Any) -> str:
    device = getattr(result, "device", None)
    if device:
        return str(device)
    if config.device == "cpu":
        return "cpu"
    try:
        import torch

        if torch.cuda.is_available():
            return f"cuda ({torch.cuda.get_device_name(0)})"
    except Exception:  # noqa: BLE001 - the device label must never fail a run
        pass
    return "cpu"


def _primary_metric(result: Any, final: dict[str, float]) -> tuple[str | None, bool]:
    metric = getattr(result, "metric", None) or None  # the harness uses "" for "unknown"
    if metric is None:
        metric = next((m for m in ("eval_accuracy", "eval_loss") if m in final), None)
        if metric is None and final:
            metric = next(iter(final))
    higher = getattr(result, "higher_is_better", None)
    if higher is None:
        higher = bool(metric and "accuracy" in metric)
    return metric, bool(higher)


def _accepts_progress(runner: Callable[..., Any]) -> bool:
    try:
        params = inspect.signature(runner).parameters
    except (TypeError, ValueError):
        return False
    return "progress" in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _start(task: RunTask) -> tuple[RunConfig, Path]:
    _check_parent()
    config = RunConfig.from_dict(task.config)
    run_dir = Path(task.run_dir)
    store.RunFiles(run_dir).start({"run_id": task.run_id, "config": task.config, **task.identity})
    return config, run_dir


def _record(task: RunTask, config: RunConfig, run_dir: Path, result: Any, error: str | None,
            started: str, t0: float) -> RunOutcome:
    """Write curves + status.json for one run; a result that cannot be recorded becomes `failed`."""
    elapsed = time.perf_counter() - t0
    status = "failed"
    final: dict[str, float] = {}
    curves = None
    if result is not None:
        try:
            status = str(result.status)
            if status not in store.STATUSES:
                raise ValueError(f"runner returned unknown status {status!r}")
            error = result.error
            final = {str(k): float(v) for k, v in dict(result.final or {}).items()}
            curves = store.curves_frame(task.run_id, result.curves)
        except Exception:  # noqa: BLE001 - a malformed result is a failed run, not a crashed sweep
            status, error, final, curves = "failed", traceback.format_exc(), {}, None
    if curves is None:
        curves = store.curves_frame(task.run_id, None)
    metric, higher = _primary_metric(result, final)
    wall = getattr(result, "wall_time_s", None) if result is not None else None
    wall = float(wall) if isinstance(wall, int | float) else elapsed
    status_doc = {
        "run_id": task.run_id,
        "status": status,
        "error": error,
        "started_at": started,
        "finished_at": _now(),
        "elapsed_s": round(elapsed, 4),
        "wall_time_s": wall,
        "metric": metric,
        "higher_is_better": higher,
        "final": final,
        "final_value": final.get(metric) if metric else None,
        "device": _device(config, result),
        "git_commit": task.context.get("git_commit"),
        "host": socket.gethostname(),
        "executor": task.context.get("executor"),
        "versions": {
            "python": platform.python_version(),
            "torch": _dist_version("torch"),
            "lbpbench": lbpbench.__version__,
            "plugins": task.identity.get("plugins", {}),
        },
    }
    _check_parent()  # a worker whose sweep died writes nothing more
    store.RunFiles(run_dir).write_result(curves, status_doc)
    return RunOutcome(task.run_id, status, error, wall)


def execute_run(task: RunTask, runner: Runner) -> RunOutcome:
    """Run one configuration and write its files. Runs wherever it is called (worker or parent)."""
    refused = _refuse_in_worker([task])
    if refused is not None:
        return refused[0]
    config, run_dir = _start(task)
    started, t0 = _now(), time.perf_counter()
    result, error = None, None
    try:
        _apply_worker_threads()
        with _running():
            if task.progress and _accepts_progress(runner):
                result = runner(config, run_dir, progress=True)  # type: ignore[call-arg]
            else:
                result = runner(config, run_dir)
    except Exception:  # noqa: BLE001 - any error in a run is that run's failure
        error = traceback.format_exc()
    # KeyboardInterrupt (Ctrl-C, or a pool worker told to stop) propagates: nothing is recorded, the
    # run stays unfinished (no status.json) and resumes from its checkpoint next time.
    return _record(task, config, run_dir, result, error, started, t0)


def execute_job(job: Sequence[RunTask], runner: Runner) -> list[RunOutcome]:
    """One job: a single run, or a seed group run as one vectorised call when the runner can."""
    refused = _refuse_in_worker(job)
    if refused is not None:
        return refused
    if len(job) == 1 or not getattr(runner, "supports_seed_batch", False):
        return [execute_run(t, runner) for t in job]
    starts = [_start(t) for t in job]
    started, t0 = _now(), time.perf_counter()
    try:
        _apply_worker_threads()
        with _running():
            results = list(runner.run_seed_batch([c for c, _ in starts], [d for _, d in starts]))  # type: ignore[attr-defined]
        if len(results) != len(job):
            raise ValueError(f"run_seed_batch returned {len(results)} results for {len(job)} configs")
    except Exception:  # noqa: BLE001
        err = traceback.format_exc()
        return [_record(t, c, d, None, err, started, t0) for t, (c, d) in zip(job, starts, strict=True)]
    return [_record(t, c, d, r, None, started, t0) for t, (c, d), r in zip(job, starts, results, strict=True)]


def seed_groups(tasks: Sequence[RunTask], runner: Runner) -> list[list[RunTask]]:
    """Jobs: one per run, or (for a seed-batching runner) one per config-without-seed."""
    if not getattr(runner, "supports_seed_batch", False):
        return [[t] for t in tasks]
    groups: dict[str, list[RunTask]] = {}
    for t in tasks:
        key = json.dumps({k: v for k, v in t.config.items() if k != "seed"}, sort_keys=True)
        groups.setdefault(key, []).append(t)
    return list(groups.values())


# ------------------------------------------------------------------------------------------- executors

OnDone = Callable[[RunOutcome], None]


class Executor:
    """Runs jobs, calling `on_done` in the parent for each finished run; returns False if stopped early."""

    name = "executor"

    def run(self, jobs: Sequence[Sequence[RunTask]], runner: Runner, on_done: OnDone, *,
            fail_fast: bool = False) -> bool:
        raise NotImplementedError

    @staticmethod
    def _report(outcomes: Sequence[RunOutcome], on_done: OnDone) -> bool:
        failed = False
        for o in outcomes:
            on_done(o)
            failed |= o.status == "failed"
        return failed


class LocalExecutor(Executor):
    """In-process, one run after another; the runner may draw its own per-run progress bar."""

    name = "local"

    def run(self, jobs: Sequence[Sequence[RunTask]], runner: Runner, on_done: OnDone, *,
            fail_fast: bool = False) -> bool:
        for job in jobs:
            if self._report(execute_job(job, runner), on_done) and fail_fast:
                return False
        return True


_worker_threads: int | None = None
_parent_pid: int | None = None  # set in pool workers: the sweep process that hands out their runs
_stopping = False  # a pool worker told to stop (SIGTERM from its sweep): start nothing more
_in_run = False  # a pool worker is inside a runner call (a stop request interrupts it)

#: Linux prctl option: a signal the kernel sends this process when its parent dies.
PR_SET_PDEATHSIG = 1
#: Seconds a stopping sweep gives its workers' interrupted runs to checkpoint before killing them.
STOP_GRACE_S = 15.0
#: Seconds the sweep sleeps at most between looks at its signals while its workers run.
SIGNAL_POLL_S = 0.25


def _init_worker(threads: int, parent_pid: int | None = None) -> None:
    """Set up a pool worker: die with the sweep, leave Ctrl-C to it, and divide the cores.

    - The kernel kills the worker when the sweep dies (Linux PR_SET_PDEATHSIG; elsewhere, and for a
      parent that died before the call, the parent-pid check before each run and each write): a
      `kill -9` of the sweep leaves no worker taking queued runs behind it, and so no second writer
      of a store whose lock died with the sweep.
    - SIGINT is ignored (Ctrl-C reaches the whole process group; the sweep decides, see
      `ProcessPoolExecutorBackend`); SIGTERM is the sweep's stop request: a run in progress is
      interrupted like a Ctrl-C (its checkpoint saved, nothing recorded) and nothing more starts.
    - Threads: the environment variables make a torch imported later start with `threads` intra-op
      threads; `_apply_worker_threads` also calls torch.set_num_threads once torch is loaded.
      Importing torch here just to set it would cost every worker seconds when the runner never
      needs torch.
    """
    global _worker_threads, _parent_pid
    if parent_pid is not None:
        _parent_pid = parent_pid
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, _on_stop_request)
        # the sweep blocked both while it started this process (see _spawn_blocked); a pending
        # Ctrl-C is dropped here, a pending stop request handled
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
        _die_with_parent()
    _worker_threads = threads
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    _apply_worker_threads()


def _die_with_parent() -> None:
    if sys.platform.startswith("linux"):
        with suppress(Exception):  # no libc / no prctl: the parent-pid checks remain
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    _check_parent()  # the parent may have died before prctl took effect


def _check_parent() -> None:
    """In a pool worker: exit at once when the sweep that started it is gone (reparented)."""
    if _parent_pid is not None and os.getppid() != _parent_pid:
        os._exit(0)


def _on_stop_request(signum: int, frame: Any) -> None:
    global _stopping
    _stopping = True
    if _in_run:
        raise KeyboardInterrupt  # the harness saves its checkpoint on the way out


@contextmanager
def _running() -> Iterator[None]:
    """Mark a runner call, so that a stop request interrupts it (and only it)."""
    global _in_run
    if _stopping:
        raise KeyboardInterrupt
    _in_run = True
    try:
        yield
    finally:
        _in_run = False


def _refuse_in_worker(job: Sequence[RunTask]) -> list[RunOutcome] | None:
    """In a pool worker, before a job writes anything: None to go on, else the job's outcomes.

    Only a run handed out by a live sweep that still holds the results folder's lock is written: a
    worker whose sweep died exits; a stopping worker and one whose folder's lock is not held
    (nobody guards the folder against a second sweep) start nothing.
    """
    if _parent_pid is None:
        return None
    _check_parent()
    if _stopping:
        return [RunOutcome(t.run_id, INTERRUPTED, "the sweep is stopping", recorded=False) for t in job]
    lock = job[0].context.get("lock") if job else None
    if lock and not store.lock_held(lock):
        return [RunOutcome(t.run_id, "failed", f"not started: nothing holds the lock {lock} of the results "
                           "folder", recorded=False) for t in job]
    return None


def _apply_worker_threads() -> None:
    torch = sys.modules.get("torch")
    if _worker_threads is not None and torch is not None and torch.get_num_threads() != _worker_threads:
        torch.set_num_threads(_worker_threads)


class ProcessPoolExecutorBackend(Executor):
    """N local worker processes ("spawn": no forked torch/OpenMP state), torch threads divided."""

    name = "local-pool"

    def __init__(self, workers: int, mp_context: str = "spawn") -> None:
        self.workers = workers
        self.mp_context = mp_context

    def run(self, jobs: Sequence[Sequence[RunTask]], runner: Runner, on_done: OnDone, *,
            fail_fast: bool = False) -> bool:
        """Run the jobs; Ctrl-C (KeyboardInterrupt in this process) stops the workers, whose runs in
        progress save their checkpoints and stay unfinished, and is re-raised."""
        import multiprocessing

        threads = max(1, (os.cpu_count() or 1) // self.workers)
        ctx = multiprocessing.get_context(self.mp_context)
        pool: ProcessPoolExecutor | None = None
        pending: dict[Future[list[RunOutcome]], Sequence[RunTask]] = {}
        try:
            # Workers start with SIGINT and SIGTERM blocked (a mask survives fork and exec) and set
            # their own handlers before unblocking them, so a Ctrl-C while they start up never kills
            # one half-way; a Ctrl-C that reached this process meanwhile is raised when unblocked.
            with _signals_blocked():
                pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx, initializer=_init_worker,
                                           initargs=(threads, os.getpid()))
                for job in jobs:  # (a spawn pool starts its workers here, in this thread)
                    pending[pool.submit(execute_job, job, runner)] = job
            finished = self._collect(pool, pending, on_done, fail_fast)
        except KeyboardInterrupt:
            _stop_pool(pool, pending)
            raise
        pool.shutdown(wait=True, cancel_futures=True)
        return finished

    def _collect(self, pool: ProcessPoolExecutor, pending: dict[Future[list[RunOutcome]], Sequence[RunTask]],
                 on_done: OnDone, fail_fast: bool) -> bool:
        while pending:
            # Wake up now and then: a Ctrl-C that the kernel delivered to another thread of this
            # process only trips a flag; the main thread raises it when it next runs Python code,
            # not while it sleeps in wait() (it could sleep until a run ends, hours later).
            done, _ = wait(pending, timeout=SIGNAL_POLL_S, return_when=FIRST_COMPLETED)
            stop = False
            for fut in done:
                job = pending.pop(fut)
                try:
                    outcomes = fut.result()
                except KeyboardInterrupt:  # a worker stopped from outside (SIGTERM): runs unfinished
                    outcomes = [RunOutcome(t.run_id, INTERRUPTED, "worker stopped", recorded=False)
                                for t in job]
                except Exception as exc:  # noqa: BLE001 - worker died: runs unrecorded, re-run later
                    outcomes = [RunOutcome(t.run_id, "failed", f"worker process died: {exc!r}",
                                           recorded=False) for t in job]
                stop |= self._report(outcomes, on_done) and fail_fast
            if stop:
                for fut in pending:
                    fut.cancel()
                pool.shutdown(wait=True, cancel_futures=True)
                return False
        return True


@contextmanager
def _signals_blocked() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back while worker processes start (POSIX; elsewhere a no-op).

    Children inherit the blocked mask of the thread that starts them, so a Ctrl-C cannot kill a
    worker before its initializer has set its own handlers. In this process a Ctrl-C meanwhile is
    only recorded (another thread, e.g. an OpenMP worker, may receive it even with this thread's mask
    set) and raised as KeyboardInterrupt when the block ends.
    """
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    from multiprocessing import resource_tracker

    # Started now, not inside the block: starting it unblocks both signals (it blocks them around
    # its own spawn and then unblocks, whatever the mask was), which would undo ours.
    resource_tracker.ensure_running()
    caught: list[int] = []
    deferred, previous_handler = False, None
    with suppress(ValueError):  # not the main thread: no Python handlers to defer
        previous_handler = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
        deferred = True
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
        if deferred:  # (None: a handler set outside Python; Python's own is the best stand-in)
            signal.signal(signal.SIGINT, previous_handler if previous_handler is not None
                          else signal.default_int_handler)
    if caught:
        raise KeyboardInterrupt


def _stop_pool(pool: ProcessPoolExecutor | None, pending: dict[Future[Any], Any]) -> None:
    """Stop a pool on Ctrl-C: queued jobs are dropped, runs in progress are interrupted (SIGTERM:
    they checkpoint and record nothing), then the workers exit; stragglers are killed after
    STOP_GRACE_S, at once on a second Ctrl-C."""
    if pool is None:
        return
    for fut in pending:
        fut.cancel()
    processes = list((getattr(pool, "_processes", None) or {}).values())
    for proc in processes:
        with suppress(OSError, ValueError, AttributeError):
            if proc.pid is not None:
                os.kill(proc.pid, signal.SIGTERM)
    from multiprocessing.connection import wait as wait_ready

    alive = {proc.sentinel: proc for proc in processes}  # ready once the process has exited
    try:
        deadline = time.monotonic() + STOP_GRACE_S
        wait(list(pending), timeout=STOP_GRACE_S)
        pool.shutdown(wait=False, cancel_futures=True)  # idle workers exit on their sentinel
        while alive and time.monotonic() < deadline:
            for ready in wait_ready(list(alive), timeout=max(0.0, deadline - time.monotonic())):
                alive.pop(ready, None)  # type: ignore[call-overload]
    except KeyboardInterrupt:
        pass  # a second Ctrl-C: no more waiting
    finally:
        for proc in alive.values():
            with suppress(Exception):
                proc.kill()
        with suppress(Exception):
            pool.shutdown(wait=False, cancel_futures=True)


def _ray_job(job: Sequence[RunTask], runner: Runner) -> list[RunOutcome]:
    return execute_job(job, runner)


class RayExecutor(Executor):
    """Each job one Ray task (num_cpus=1). Workers write the run files, so the results folder must be
    on storage every node sees (a shared filesystem) when running on a multi-node cluster.

    `address`: None starts (or reuses) a local Ray; "auto" or "HOST:PORT" connects to a cluster.
    A Ray already initialised by the caller is used as is.
    """

    name = "ray"

    def __init__(self, address: str | None = None) -> None:
        self.address = address

    def _init(self) -> bool:
        """Connect or start Ray; True when this executor started it (and so shuts it down)."""
        import ray

        if ray.is_initialized():
            return False
        env = {k: v for k, v in os.environ.items() if k.startswith("LBPBENCH_")}
        if self.address is None:
            # a local instance: workers must import what the driver imports (tests, plugin files)
            env["PYTHONPATH"] = os.pathsep.join([p for p in sys.path if p] +
                                                [os.environ.get("PYTHONPATH", "")]).strip(os.pathsep)
            ray.init(include_dashboard=False, runtime_env={"env_vars": env}, log_to_driver=False)
        else:
            ray.init(address=self.address, runtime_env={"env_vars": env} if env else None,
                     log_to_driver=False)
        return True

    def run(self, jobs: Sequence[Sequence[RunTask]], runner: Runner, on_done: OnDone, *,
            fail_fast: bool = False) -> bool:
        import ray

        started = self._init()
        try:
            return self._run(jobs, runner, on_done, fail_fast)
        finally:
            if started:
                ray.shutdown()

    def _run(self, jobs: Sequence[Sequence[RunTask]], runner: Runner, on_done: OnDone,
             fail_fast: bool) -> bool:
        import ray

        remote = ray.remote(num_cpus=1, max_retries=0)(_ray_job)
        runner_ref = ray.put(runner)
        pending = {remote.remote(list(job), runner_ref): job for job in jobs}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                job = pending.pop(ref)
                try:
                    outcomes = ray.get(ref)
                except Exception as exc:  # noqa: BLE001 - worker or node died: runs unrecorded
                    outcomes = [RunOutcome(t.run_id, "failed", f"ray task died: {exc!r}", recorded=False)
                                for t in job]
                if self._report(outcomes, on_done) and fail_fast:
                    for other in pending:
                        ray.cancel(other, force=False)
                    return False
        return True


def make_executor(kind: str, workers: int = 1, address: str | None = None) -> Executor:
    """`local` with workers=1: in-process; workers>1: a process pool; `ray`: Ray tasks."""
    if kind == "ray":
        return RayExecutor(address)
    if kind == "local":
        return LocalExecutor() if workers <= 1 else ProcessPoolExecutorBackend(workers)
    raise ValueError(f"unknown executor {kind!r}; use local or ray")
