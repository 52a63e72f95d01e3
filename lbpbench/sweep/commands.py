"""`lbpbench sweep run | status | ls`: the commands users run all day.

Exit codes of `sweep run` (the CLI's contract, README "Exit codes"): 0 every run of the sweep
finished (ok or diverged); 1 some run failed, or did not run (or --fail-fast stopped the sweep);
2 invalid spec or options (nothing written); 3 the results folder is locked by another running
sweep; 130 interrupted (Ctrl-C: runs in progress keep their checkpoints and resume next time).
`sweep status` exits 2 when the folder is not a sweep's or its merged tables are damaged.

Reports: `sweep run` writes its report to reports/<sweep>/ of the current directory, or, with
--out DIR, to DIR/report/ (so two sweeps of one name into different folders keep their reports).
"""

from __future__ import annotations

import importlib.util
import os
import sys
import tempfile
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import click

from lbpbench.errors import exception_line
from lbpbench.harness.compiling import compile_mode_option
from lbpbench.harness.threads import apply_fair_threads, fair_threads
from lbpbench.sweep import store as store_mod
from lbpbench.sweep.executors import (
    RunOutcome,
    RunTask,
    git_commit,
    make_executor,
    resolve_runner,
    seed_groups,
)
from lbpbench.sweep.identity import full_hash, plugin_versions, readable_prefix
from lbpbench.sweep.progress import SweepProgress
from lbpbench.sweep.spec import SpecError, SweepSpec, load_spec

EXIT_FAILED, EXIT_USAGE, EXIT_LOCKED, EXIT_INTERRUPTED = 1, 2, 3, 130
REPORT_SUBDIR = "report"  # `sweep run --out DIR` writes its report to DIR/report/


@click.group("sweep", context_settings={"help_option_names": ["-h", "--help"]})
def sweep_group() -> None:
    """Run comparative sweeps (spec TOML -> results/<sweep>/), resumably."""


# ------------------------------------------------------------------------------------------------ run

def plan_runs(spec: SweepSpec) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(run_id, config dict, identity) for every run of the spec, in expansion order."""
    import lbpbench

    planned = []
    for config in spec.expand():
        plugins = plugin_versions(config)
        digest = full_hash(config, lbpbench.__version__, plugins)
        identity = {"harness_version": lbpbench.__version__, "plugins": plugins, "hash": digest}
        planned.append((f"{readable_prefix(config)}_{digest[:12]}", config.to_dict(), identity))
    return planned


def report_dir(sweep: str, out_dir: str | Path | None) -> Path:
    """Where `sweep run` writes its report: DIR/report/ for --out DIR, else reports/<sweep>/."""
    return Path(out_dir) / REPORT_SUBDIR if out_dir is not None else Path("reports") / sweep


def _write_report(results_dir: Path, sweep: str, echo: Any = click.echo,
                  out: Path | None = None) -> Path | None:
    """Hook: write the report (default reports/<sweep>/) with the report room's `make_report`."""
    make_report = None
    for module_name in ("lbpbench.report", "lbpbench.report.render"):
        try:
            module = __import__(module_name, fromlist=["make_report"])
        except ImportError:
            continue
        make_report = getattr(module, "make_report", None)
        if make_report is not None:
            break
    if make_report is None:
        echo("report: lbpbench.report.make_report is not available; skipped", err=True)
        return None
    out = out if out is not None else Path("reports") / sweep
    try:
        files = make_report(results_dir, out)
    except Exception as exc:  # noqa: BLE001 - a report failure must not lose the sweep's exit status
        echo(f"report: failed ({type(exc).__name__}: {exc}); results are in {results_dir}", err=True)
        return None
    path = Path(getattr(files, "index_html", out))
    echo(f"report: {path}", err=True)
    return path


class WorkersType(click.ParamType):
    """A positive number of worker processes, or `auto` (None: decided from the free cores)."""

    name = "N|auto"

    def convert(self, value: Any, param: Any, ctx: Any) -> int | None:
        if value is None or value == "auto":
            return None
        try:
            number = int(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is neither a number of workers nor 'auto'", param, ctx)
        if number < 1:
            self.fail(f"{number} is not a positive number of workers (or 'auto')", param, ctx)
        return number


@sweep_group.command("run")
@click.argument("spec_path", metavar="[SPEC]", required=False, type=click.Path(dir_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="AXIS=V1,V2",
              help="Replace an axis, or with one value a [fixed] setting (baselines get it too); values "
                   "in TOML syntax, bare words are strings.")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True)
@click.option("--workers", type=WorkersType(), default="auto", show_default=True, envvar="LBPBENCH_WORKERS",
              help="Local worker processes, one torch thread each when they fill the cores (threads are "
                   "divided between them); auto: the cores the load average leaves free, so runs go side "
                   "by side on an idle machine and one thread runs alone on a busy one. Environment: "
                   "LBPBENCH_WORKERS.")
@click.option("--fail-fast", is_flag=True, help="Stop at the first failed run.")
@click.option("--retry-failed", is_flag=True, help="Re-run runs that failed before (default: keep them).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Results folder [default: results/<sweep name>]; its report goes to OUT/report/.")
@click.option("--address", default=None, metavar="auto|HOST:PORT",
              help="Ray cluster to connect to (default: start a local Ray).")
@click.option("--no-report", is_flag=True,
              help="Do not write the report (reports/<sweep>/, or OUT/report/ with --out) afterwards.")
@click.option("--seed-batch", is_flag=True,
              help="Meta-train the seeds of each configuration as one vectorised job (pays on a GPU: "
                   "the default sweep on an H100 took 57 s against 72.5 s run by run; not on a CPU: 8 "
                   "seeds cost 5.6-7.4x one seed there, about a loop's 8x). The same results up to float "
                   "rounding (final metrics within 2.8e-4 relative in the default sweep on CUDA, see "
                   "results/benchmarks/gpu_h100/).")
@click.option("--compile", "compile_", is_flag=True,
              help="torch.compile each run's inner step (minutes to compile, faster meta-steps on a CPU; "
                   "pays for long runs). Results match eager.")
@compile_mode_option
@click.option("--no-progress", is_flag=True, hidden=True)
def run_command(spec_path: str | None, overrides: tuple[str, ...], executor: str, workers: int | None,
                fail_fast: bool, retry_failed: bool, out_dir: str | None, address: str | None,
                no_report: bool, seed_batch: bool, compile_: bool, compile_mode: str | None,
                no_progress: bool) -> None:
    """Run SPEC (default: the embedded default sweep), skipping runs already finished."""
    try:
        spec = load_spec(spec_path, overrides)
        planned = plan_runs(spec)
    except SpecError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    if address is not None and executor != "ray":
        click.echo("error: --address needs --executor ray", err=True)
        sys.exit(EXIT_USAGE)
    if executor == "ray" and importlib.util.find_spec("ray") is None:
        click.echo("error: the ray executor needs Ray: pip install 'lbpbench[ray]'", err=True)
        sys.exit(EXIT_USAGE)
    try:
        runner = resolve_runner(seed_batch=seed_batch, compile=compile_mode or compile_)
    except (ImportError, AttributeError, ValueError) as exc:
        click.echo(f"error: cannot load the runner: {exc}", err=True)
        sys.exit(EXIT_USAGE)

    if workers is None:  # auto
        workers = fair_threads()
    if workers == 1 and executor == "local":
        apply_fair_threads()  # in this process: only the free cores (unless OMP_NUM_THREADS says)
    results = store_mod.ResultsStore(Path(out_dir) if out_dir else Path("results") / spec.name)
    problem = _unusable_folder(results.root)
    if problem:
        click.echo(f"error: --out {results.root}: {problem}", err=True)
        sys.exit(EXIT_USAGE)
    try:
        with results.lock():
            code = _run_locked(spec, planned, results, runner, executor, workers, address, fail_fast,
                               retry_failed, progress=not no_progress)
    except store_mod.SweepLocked as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_LOCKED)
    except KeyboardInterrupt:
        click.echo(f"\ninterrupted: finished runs are kept in {results.root} (runs.parquet lists them, "
                   "for `lbpbench report`); runs in progress saved their checkpoints and resume on the "
                   "next `lbpbench sweep run` of this spec", err=True)
        sys.exit(EXIT_INTERRUPTED)
    if not no_report:
        _write_report(results.root, spec.name, out=report_dir(spec.name, out_dir))
    sys.exit(code)


def _unusable_folder(root: Path) -> str | None:
    """Why a results folder cannot be created or written, or None (checked once the spec is valid)."""
    existing = next((p for p in [root, *root.parents] if p.exists()), Path("."))
    if not existing.is_dir():
        return f"{existing} is a file, not a folder"
    try:  # permission bits can lie (root, read-only mounts, ACLs): try it
        root.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=".write-test.", dir=root)
        os.close(fd)
        os.unlink(name)
    except OSError as exc:
        return f"cannot create or write the folder ({exc.strerror or exc})"
    return None


def _run_locked(spec: SweepSpec, planned: list[tuple[str, dict[str, Any], dict[str, Any]]],
                results: store_mod.ResultsStore, runner: Any, executor: str, workers: int,
                address: str | None, fail_fast: bool, retry_failed: bool, *, progress: bool) -> int:
    previous = results.read_index()
    results.write_spec(spec.to_toml())
    run_ids = [rid for rid, _, _ in planned]
    results.write_index(spec.name, run_ids)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", store_mod.CorruptRunWarning)
        states = {s.run_id: s for s in results.scan(run_ids)}
    for w in caught:
        click.echo(f"warning: {w.message}", err=True)

    to_run: list[RunTask] = []
    skipped = 0
    context = {"git_commit": git_commit(), "executor": executor if executor == "ray" else
               ("local" if workers == 1 else f"local x{workers}"),
               # pool workers write a run only while the sweep holds this lock (see executors)
               "lock": str(results.lock_path.absolute())}
    per_run_bars = executor == "local" and workers == 1 and progress
    for rid, config, identity in planned:
        state = states[rid]
        if state.finished or (state.state == "failed" and not retry_failed):
            skipped += 1
            continue
        # absolute: Ray workers (and some pool setups) do not share the parent's working directory
        to_run.append(RunTask(rid, config, str(results.run_dir(rid).absolute()), identity, context,
                              per_run_bars))

    counts: Counter[str] = Counter()
    stopped_early = False
    with SweepProgress(len(planned), enabled=progress, desc=spec.name) as bar:
        bar.skip(skipped)

        def on_done(outcome: RunOutcome) -> None:
            counts[outcome.status] += 1
            bar.record(outcome.status)
            if outcome.status == "failed":
                bar.write(f"failed: {outcome.run_id}: {exception_line(outcome.error) or 'no error text'}")

        if to_run:
            jobs = seed_groups(to_run, runner)
            executor_ = make_executor(executor, min(workers, len(jobs)), address)
            try:
                stopped_early = not executor_.run(jobs, runner, on_done, fail_fast=fail_fast)
            except KeyboardInterrupt:  # a study that spans sessions stays reportable between them
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", store_mod.CorruptRunWarning)
                    results.merge(spec.name, run_ids)
                raise
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", store_mod.CorruptRunWarning)
        runs_df, _ = results.merge(spec.name, run_ids)
    for message in dict.fromkeys(str(w.message) for w in caught if "left out of" in str(w.message)):
        click.echo(f"warning: {message}", err=True)
    _note_runs_of_the_previous_spec(results, previous, run_ids)
    final = Counter(runs_df["status"]) if len(runs_df) else Counter()
    left_out = len(results.left_out)
    not_done = len(planned) - len(runs_df) - left_out
    summary = (f"{spec.name}: {len(planned)} runs — {final.get('ok', 0)} ok, "
               f"{final.get('diverged', 0)} diverged, {final.get('failed', 0)} failed")
    summary += f", {not_done} not run" if not_done else ""
    summary += f", {left_out} left out of runs.parquet (see the warnings)" if left_out else ""
    summary += f" (this session: ran {sum(counts.values())}, skipped {skipped}) -> {results.root}"
    click.echo(summary, err=True)
    if stopped_early:
        click.echo("stopped at the first failure (--fail-fast)", err=True)
    if final.get("failed", 0) and not retry_failed:
        click.echo("failed runs are kept; re-run them with --retry-failed", err=True)
    return EXIT_FAILED if (stopped_early or final.get("failed", 0) or not_done or left_out) else 0


def _note_runs_of_the_previous_spec(results: store_mod.ResultsStore, previous: dict[str, Any] | None,
                                    run_ids: list[str]) -> None:
    """Say so when runs.parquet no longer lists finished runs that the folder's previous spec planned.

    A narrower re-run (`--set seed=5` on a study's folder) merges only its own runs, by design; a
    user who re-ran one seed should learn that the others left the table, not find it out in a report.
    """
    planned = set(run_ids)
    dropped = [rid for rid in (previous or {}).get("run_ids", [])
               if rid not in planned and results.read_run(rid, check_curves=False).finished]
    if dropped:
        click.echo(f"note: {len(dropped)} finished run(s) planned by this folder's previous spec are not "
                   "in this one, so runs.parquet no longer lists them (their folders are kept; "
                   "`lbpbench sweep run` of that spec lists them again, without re-running them)",
                   err=True)


# --------------------------------------------------------------------------------------------- status

def _summarise(results: store_mod.ResultsStore) -> tuple[dict[str, Any] | None, list[store_mod.RunState]]:
    index = results.read_index()
    on_disk = results.run_folders()
    ids = list(index["run_ids"]) if index else []
    ids += [r for r in on_disk if r not in set(ids)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", store_mod.CorruptRunWarning)
        return index, results.scan(ids)


@sweep_group.command("status")
@click.argument("results_dir", metavar="DIR", type=click.Path(exists=True, file_okay=False))
def status_command(results_dir: str) -> None:
    """Counts and problem runs of one results folder (failed, corrupt, pending)."""
    results = store_mod.ResultsStore(results_dir)
    index, states = _summarise(results)
    if index is None and not states:
        click.echo(f"error: {results_dir} is not a sweep results folder", err=True)
        sys.exit(EXIT_USAGE)
    expected = set(index["run_ids"]) if index else {s.run_id for s in states}
    counts = Counter(s.state if s.state not in ("missing", "incomplete") else "pending"
                     for s in states if s.run_id in expected)
    stale = [s for s in states if s.run_id not in expected]
    name = index["sweep"] if index else Path(results_dir).name
    running = " (running)" if results.is_locked() else ""
    click.echo(f"sweep {name}{running}: {len(expected)} runs")
    for key in ("ok", "diverged", "failed", "corrupt", "pending"):
        click.echo(f"  {key:9s}{counts.get(key, 0)}")
    if stale:
        click.echo(f"  {'other':9s}{len(stale)} (run folders not in the current spec)")
    for s in states:
        if s.run_id not in expected:
            continue
        if s.state == "failed":
            err = ((s.status or {}).get("error") or "").strip().splitlines()
            click.echo(f"failed   {s.run_id}: {err[-1] if err else ''}")
        elif s.state == "corrupt":
            click.echo(f"corrupt  {s.run_id}: {s.problem}")
        elif s.state == "incomplete":
            click.echo(f"pending  {s.run_id} (interrupted)")
    damaged = merged_table_problems(results)
    for problem in damaged:
        click.echo(f"damaged  {problem}")
    if damaged:
        sys.exit(EXIT_USAGE)


def merged_table_problems(results: store_mod.ResultsStore) -> list[str]:
    """One line per merged table (runs.parquet, curves.parquet) of the folder that cannot be read."""
    import pyarrow.parquet as pq

    problems = []
    for name in ("runs.parquet", "curves.parquet"):
        path = results.root / name
        if not path.exists():
            continue
        try:
            if name == "runs.parquet":
                pq.read_table(path)  # small: read it all
            else:
                pq.read_metadata(path)  # large: its footer says whether it is a whole parquet file
        except Exception as exc:  # noqa: BLE001 - whatever the reader says, the file is unusable
            detail = " ".join(str(exc).split())[:200] or type(exc).__name__
            problems.append(f"{path}: cannot be read ({detail}); reports of this folder fail until the next "
                            "`lbpbench sweep run` of its spec rewrites it")
    return problems


# -------------------------------------------------------------------------------------------- reindex

@sweep_group.command("reindex")
@click.argument("results_dir", metavar="DIR", type=click.Path(exists=True, file_okay=False))
def reindex_command(results_dir: str) -> None:
    """Rename DIR's run folders to the ids this lbpbench gives them (results named by an older id
    rule), keeping each run's recorded harness and plugin versions; so `sweep run` finds them."""
    from lbpbench.sweep.reindex import reindex

    results = store_mod.ResultsStore(results_dir)
    try:
        with results.lock():
            moves = reindex(results)
    except store_mod.SweepLocked as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_LOCKED)
    for move in moves:
        click.echo(f"{move.old} -> {move.new}" + (f": left in place, {move.problem}" if move.problem else ""))
    done = sum(m.problem is None for m in moves)
    click.echo(f"{results_dir}: {done} run folder(s) renamed, {len(moves) - done} left in place", err=True)
    if done < len(moves):
        sys.exit(EXIT_FAILED)


# ------------------------------------------------------------------------------------------------- ls

@sweep_group.command("ls")
@click.argument("results_root", metavar="[RESULTS_ROOT]", default="results",
                type=click.Path(file_okay=False))
def ls_command(results_root: str) -> None:
    """One line per sweep folder under RESULTS_ROOT (default: results/)."""
    root = Path(results_root)
    folders = sorted(p for p in root.iterdir() if p.is_dir() and
                     ((p / "index.json").exists() or (p / "sweep.toml").exists())) if root.is_dir() else []
    if not folders:
        click.echo(f"(no sweeps under {root})", err=True)
        return
    header = ("sweep", "runs", "ok", "diverged", "failed", "corrupt", "pending", "state")
    rows = []
    for folder in folders:
        results = store_mod.ResultsStore(folder)
        index, states = _summarise(results)
        expected = set(index["run_ids"]) if index else {s.run_id for s in states}
        c = Counter(s.state for s in states if s.run_id in expected)
        rows.append((folder.name, str(len(expected)), str(c["ok"]), str(c["diverged"]), str(c["failed"]),
                     str(c["corrupt"]), str(c["missing"] + c["incomplete"]),
                     "running" if results.is_locked() else "idle"))
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
