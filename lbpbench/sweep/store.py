"""The results store: ``results/<sweep>/`` on disk, written so that a crash never corrupts it.

Layout::

    results/<sweep>/
      .lock              fcntl lock held by the running sweep (a second one refuses to start)
      sweep.toml         the resolved spec
      index.json         run ids of the current spec, in order (status/ls use it for "pending")
      runs/<run_id>/     one run folder, written only through `RunFiles`
        config.json      resolved RunConfig + what the run id hashes (+ schema)
        checkpoint.pt    meta-training state for resume (per-member, schema in harness/members.py)
        learner.pt       the trained learner, for `lbpbench eval`
        curves.parquet   run_id, phase, step, metric, value
        status.json      written LAST: its presence marks the run finished (ok | diverged | failed);
                         strict JSON (non-finite numbers as the strings "NaN", "Infinity", "-Infinity")
      runs.parquet       one row per run (schema: docs/ARCHITECTURE.md)
      curves.parquet     every run's curves, concatenated

Every file is written to a temporary name in the same folder and ``os.replace``d into place (model:
asv's results files), so a reader sees the old file or the new one, never half of one. A run folder
whose status.json is missing was interrupted and is simply re-run; one whose files cannot be read
is reported as corrupt and re-run, never silently dropped.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import math
import os
import tempfile
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from lbpbench.harness.config import RunConfig, field_types

RUN_SCHEMA = 2  # of config.json and status.json; 1 had no schema key and allowed bare NaN
FINISHED = ("ok", "diverged")
STATUSES = ("ok", "diverged", "failed")
CURVE_COLUMNS = ("run_id", "phase", "step", "metric", "value")
RUN_COLUMNS_AFTER_CONFIG = ("method", "status", "error", "wall_time_s", "metric", "higher_is_better",
                            "final", "abandoned_at", "device", "torch_version", "lbpbench_version",
                            "git_commit")


class SweepLocked(RuntimeError):
    """Another process holds the sweep folder's lock."""


class CorruptRunWarning(UserWarning):
    """A run's files could not be read; the run will be re-run."""


def lock_held(lock_path: str | os.PathLike[str]) -> bool:
    """True while some process holds the exclusive flock on `lock_path` (a sweep's .lock)."""
    try:
        fh = open(lock_path)  # noqa: SIM115 - closed below
    except OSError:
        return False
    with fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
    return False


# ----------------------------------------------------------------------------------------- atomic writes

def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def _atomic_target(path: Path) -> Iterator[Path]:
    """Yield a temp path next to `path`; on success fsync it and rename it over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def atomic_write_text(path: Path, text: str) -> None:
    """Write text atomically (temp file + os.replace)."""
    with _atomic_target(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def strict_json(data: Any) -> Any:
    """Non-finite floats as the strings "NaN", "Infinity", "-Infinity": strict JSON that any reader
    parses, and `float()` of each string gives the number back."""
    if isinstance(data, float) and not math.isfinite(data):
        return "NaN" if math.isnan(data) else ("Infinity" if data > 0 else "-Infinity")
    if isinstance(data, dict):
        return {k: strict_json(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [strict_json(v) for v in data]
    return data


def atomic_write_json(path: Path, data: Any) -> None:
    """Write strict JSON atomically (a diverged run's final loss may be inf: see `strict_json`)."""
    text = json.dumps(strict_json(data), indent=2, sort_keys=False, default=str, allow_nan=False)
    atomic_write_text(path, text + "\n")


def atomic_write_torch(path: Path, payload: Any) -> None:
    """torch.save atomically (a crash mid-write leaves the previous file intact)."""
    import torch

    with _atomic_target(path) as tmp:
        torch.save(payload, tmp)


def atomic_write_parquet(path: Path, df: pd.DataFrame) -> None:
    """Write a DataFrame as parquet atomically."""
    with _atomic_target(path) as tmp:
        df.to_parquet(tmp, index=False)


def read_json(path: Path) -> Any:
    """Read JSON; raises ValueError/OSError on unreadable content."""
    return json.loads(path.read_text(encoding="utf-8"))


def clean_temp_files(folder: Path) -> None:
    """Remove temp files left by a writer that was killed mid-write."""
    if folder.is_dir():
        for tmp in folder.glob(".*.tmp"):
            with contextlib.suppress(OSError):
                tmp.unlink()


# ------------------------------------------------------------------------------------------- run files

def curves_frame(run_id: str, curves: pd.DataFrame | None) -> pd.DataFrame:
    """The harness's long-form curves with a run_id column and fixed dtypes (so merges concatenate)."""
    if curves is None or len(curves) == 0:
        dtypes = ("string", "string", "int64", "string", "float64")
        df = pd.DataFrame({c: pd.Series(dtype=t) for c, t in zip(CURVE_COLUMNS, dtypes, strict=True)})
    else:
        df = pd.DataFrame(curves).loc[:, ["phase", "step", "metric", "value"]].copy()
        df.insert(0, "run_id", run_id)
    return df.astype({"run_id": "string", "phase": "string", "step": "int64", "metric": "string",
                      "value": "float64"}).reset_index(drop=True)


class DamagedCheckpointWarning(UserWarning):
    """A checkpoint could not be read; it was set aside and the run restarts."""


class RunFiles:
    """The one writer of a run folder: sweeps, `lbpbench train --out` and the harness (for its
    checkpoints and learner) all go through it. Every write is atomic under a unique temp name."""

    SCHEMA = RUN_SCHEMA

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    @property
    def checkpoint(self) -> Path:
        return self.folder / "checkpoint.pt"

    def start(self, config_payload: dict[str, Any]) -> None:
        """Mark a run as started: drop any previous status (an interrupted re-run reads as unfinished)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        clean_temp_files(self.folder)
        with contextlib.suppress(FileNotFoundError):
            (self.folder / "status.json").unlink()
        atomic_write_json(self.folder / "config.json", {"schema": RUN_SCHEMA, **config_payload})

    def read_checkpoint(self) -> dict[str, Any] | None:
        """The saved meta-training state, or None. A damaged file is set aside (renamed
        `checkpoint.damaged-<n>.pt`, with a warning naming it) and the run starts over."""
        if not self.checkpoint.exists():
            return None
        import torch

        try:
            state = torch.load(self.checkpoint, weights_only=True, map_location="cpu")
            if not isinstance(state, dict) or "step" not in state:
                raise ValueError("not a meta-training checkpoint")
            return state
        except Exception as exc:  # noqa: BLE001 - any unreadable content means the same thing
            n = sum(1 for _ in self.folder.glob("checkpoint.damaged-*.pt"))
            aside = self.folder / f"checkpoint.damaged-{n}.pt"
            os.replace(self.checkpoint, aside)
            warnings.warn(f"{self.checkpoint} is damaged ({type(exc).__name__}: {exc}); set aside as "
                          f"{aside.name}, the run starts over", DamagedCheckpointWarning, stacklevel=2)
            return None

    def write_checkpoint(self, state: dict[str, Any]) -> None:
        atomic_write_torch(self.checkpoint, state)

    def write_learner(self, payload: dict[str, Any]) -> None:
        atomic_write_torch(self.folder / "learner.pt", payload)

    def read_status(self) -> dict[str, Any]:
        return read_json(self.folder / "status.json")

    def write_result(self, curves: pd.DataFrame, status: dict[str, Any]) -> None:
        """Curves, then status.json (the commit marker: a run is finished iff status.json exists)."""
        atomic_write_parquet(self.folder / "curves.parquet", curves)
        atomic_write_json(self.folder / "status.json", {"schema": RUN_SCHEMA, **status})


@dataclass
class RunState:
    """What the store knows about one run folder."""

    run_id: str
    state: str  # missing | incomplete | corrupt | ok | diverged | failed
    status: dict[str, Any] | None = None
    config: dict[str, Any] | None = None
    problem: str | None = None

    @property
    def finished(self) -> bool:
        return self.state in FINISHED


# ---------------------------------------------------------------------------------------------- store

class ResultsStore:
    """One sweep's folder. Cheap to construct; touches the disk only when asked."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.left_out: list[str] = []  # run ids the last merge could not store (warned about)

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    @property
    def lock_path(self) -> Path:
        return self.root / ".lock"

    def run_dir(self, run_id: str) -> Path:
        return self.runs_dir / run_id

    # --- locking ---
    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold an exclusive, non-blocking flock on .lock for the sweep's lifetime.

        The kernel releases it when the process dies (even by kill -9), so there is no stale lock.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        fh = open(self.lock_path, "a+")  # noqa: SIM115 - held for the context's lifetime
        try:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    raise
                fh.seek(0)
                holder = fh.read().strip() or "another process"
                raise SweepLocked(f"{self.root} is in use by another sweep ({holder}); wait for it to "
                                  "finish or stop it first") from None
            fh.seek(0)
            fh.truncate()
            fh.write(f"pid {os.getpid()} on {os.uname().nodename}\n")
            fh.flush()
            yield
        finally:
            fh.close()

    def is_locked(self) -> bool:
        """True while a sweep holds the lock (used by `sweep ls` / `sweep status`, and by workers
        before they write a run: only a run handed out by a live sweep holding the lock is written)."""
        return lock_held(self.lock_path)

    # --- sweep-level files ---
    def write_spec(self, toml_text: str) -> None:
        atomic_write_text(self.root / "sweep.toml", toml_text)

    def write_index(self, sweep: str, run_ids: list[str]) -> None:
        atomic_write_json(self.root / "index.json", {"sweep": sweep, "run_ids": run_ids})

    def read_index(self) -> dict[str, Any] | None:
        try:
            return read_json(self.root / "index.json")
        except (OSError, ValueError):
            return None

    # --- reading runs ---
    def run_folders(self) -> list[str]:
        """Names of every run folder on disk, sorted."""
        return sorted(p.name for p in self.runs_dir.iterdir() if p.is_dir()) if self.runs_dir.is_dir() else []

    def read_run(self, run_id: str, *, check_curves: bool = True) -> RunState:
        """Classify a run folder; never raises for bad content (that is `corrupt`)."""
        folder = self.run_dir(run_id)
        if not folder.is_dir():
            return RunState(run_id, "missing")
        status_path = folder / "status.json"
        config_path = folder / "config.json"
        if not status_path.exists():
            return RunState(run_id, "incomplete")
        try:
            status = read_json(status_path)
            if not isinstance(status, dict) or status.get("status") not in STATUSES:
                raise ValueError(f"no valid status in {status!r:.80}")
        except (OSError, ValueError) as exc:
            return RunState(run_id, "corrupt", problem=f"status.json unreadable: {exc}")
        try:
            config = read_json(config_path)
            if not isinstance(config, dict) or not isinstance(config.get("config"), dict):
                raise ValueError("no config table")
        except (OSError, ValueError) as exc:
            return RunState(run_id, "corrupt", status=status, problem=f"config.json unreadable: {exc}")
        if check_curves and status["status"] in FINISHED:
            try:
                pd.read_parquet(folder / "curves.parquet")
            except Exception as exc:  # noqa: BLE001 - any reader error means the file is unusable
                return RunState(run_id, "corrupt", status=status, config=config,
                                problem=f"curves.parquet unreadable: {type(exc).__name__}: {exc}")
        return RunState(run_id, status["status"], status=status, config=config)

    def scan(self, run_ids: Iterable[str] | None = None) -> list[RunState]:
        """States of the given runs (default: every folder under runs/), warning about corrupt ones."""
        if run_ids is None:
            run_ids = self.run_folders()
        states = [self.read_run(r) for r in run_ids]
        for s in states:
            if s.state == "corrupt":
                warnings.warn(f"run {s.run_id}: {s.problem}; it will be re-run", CorruptRunWarning,
                              stacklevel=2)
        return states

    # --- merging ---
    def merge(self, sweep: str, run_ids: Iterable[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Build and atomically write runs.parquet and curves.parquet from the finished run folders.

        Only the given runs (the current spec's) are merged, so results of an older version of the
        spec that are still on disk do not leak into the report. Unreadable runs are skipped here
        with a warning; the next `sweep run` re-runs them. A finished run whose row cannot be stored
        (a value no column type holds) is left out with a warning and listed in `self.left_out`:
        the merge always writes runs.parquet for the rest.
        """
        rows: list[dict[str, Any]] = []
        curves: list[pd.DataFrame] = []
        self.left_out = []
        for state in self.scan(list(run_ids)):
            if state.status is None or state.config is None or state.state == "corrupt":
                continue
            try:
                rows.append(_run_row(sweep, state))
            except Exception as exc:  # noqa: BLE001 - one bad run must not block every later merge
                warnings.warn(f"run {state.run_id}: left out of runs.parquet: its files cannot be read "
                              f"as a row ({type(exc).__name__}: {exc})", CorruptRunWarning, stacklevel=2)
                self.left_out.append(state.run_id)
                continue
            if state.state in FINISHED or (self.run_dir(state.run_id) / "curves.parquet").exists():
                try:
                    curves.append(curves_frame(state.run_id,
                                               pd.read_parquet(self.run_dir(state.run_id) / "curves.parquet")
                                               .drop(columns=["run_id"], errors="ignore")))
                except Exception as exc:  # noqa: BLE001
                    warnings.warn(f"run {state.run_id}: curves.parquet unreadable ({exc})", CorruptRunWarning,
                                  stacklevel=2)
        runs_df, left_out = _writable_runs_frame(rows)
        for run_id, exc in left_out:
            self.left_out.append(run_id)
            warnings.warn(f"run {run_id}: left out of runs.parquet: its row cannot be stored "
                          f"({type(exc).__name__}: {exc})", CorruptRunWarning, stacklevel=2)
            curves = [c for c in curves if not (len(c) and c["run_id"].iloc[0] == run_id)]
        curves_df = pd.concat(curves, ignore_index=True) if curves else curves_frame("", None)
        atomic_write_parquet(self.root / "runs.parquet", runs_df)
        atomic_write_parquet(self.root / "curves.parquet", curves_df)
        return runs_df, curves_df


def _run_row(sweep: str, state: RunState) -> dict[str, Any]:
    assert state.status is not None and state.config is not None
    cfg = dict(RunConfig().to_dict())
    cfg.update(state.config["config"])
    status = state.status
    versions = status.get("versions") or {}
    row: dict[str, Any] = {"run_id": state.run_id, "sweep": sweep}
    row.update(cfg)
    row["baseline"] = cfg.get("baseline") or ""
    row["method"] = cfg["baseline"] if cfg.get("baseline") else f"{cfg['learner']}/{cfg['aggregator']}"
    row.update({
        "status": status.get("status"),
        "error": status.get("error") or "",
        "wall_time_s": float(status.get("wall_time_s") or 0.0),
        "metric": status.get("metric") or "",
        "higher_is_better": bool(status.get("higher_is_better", False)),
        "final": _float_or_nan(status.get("final_value")),
        # the meta-step a run stopped on the plateau at (abandon_plateau_at); nan: it did not stop
        "abandoned_at": _float_or_nan((status.get("final") or {}).get("abandoned_at")),
        "device": status.get("device") or cfg.get("device") or "",
        "torch_version": versions.get("torch") or "",
        "lbpbench_version": versions.get("lbpbench") or "",
        "git_commit": status.get("git_commit") or "",
    })
    return row


def _writable_runs_frame(rows: list[dict[str, Any]]) -> tuple[pd.DataFrame, list[tuple[str, Exception]]]:
    """runs.parquet's frame, checked to convert to Arrow; rows that cannot (a value no column type
    holds, e.g. an integer beyond 64 bits in an old config.json) are left out and returned."""
    import pyarrow as pa

    def convert(part: list[dict[str, Any]]) -> pd.DataFrame:
        df = _runs_frame(part)
        pa.Table.from_pandas(df, preserve_index=False)
        return df

    try:
        return convert(rows), []
    except Exception:  # noqa: BLE001 - find the offending rows, keep the rest
        pass
    good, bad = [], []
    for row in rows:
        try:
            convert([row])
            good.append(row)
        except Exception as exc:  # noqa: BLE001
            bad.append((str(row.get("run_id")), exc))
    try:
        return convert(good), bad
    except Exception:  # noqa: BLE001 - rows fine alone, not together (mixed types): add one by one
        pass
    kept: list[dict[str, Any]] = []
    for row in good:
        try:
            convert([*kept, row])
            kept.append(row)
        except Exception as exc:  # noqa: BLE001
            bad.append((str(row.get("run_id")), exc))
    return convert(kept), bad


def _float_or_nan(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _runs_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """runs.parquet with stable dtypes, so a sweep's table has the same schema whatever its runs."""
    types = field_types()
    # `device` is both a RunConfig field (requested: cpu|cuda|auto) and a runs.parquet column (the
    # device the run actually used); the table keeps one column, holding the device actually used.
    columns = ["run_id", "sweep", *types, *(c for c in RUN_COLUMNS_AFTER_CONFIG if c not in types)]
    df = pd.DataFrame(rows, columns=columns)
    # a failed run has no metric: take its task's metric from the other runs of that task
    if len(df):
        known = df[df["metric"] != ""].groupby("task")[["metric", "higher_is_better"]].first()
        missing = df["metric"] == ""
        for idx in df.index[missing]:
            task = df.at[idx, "task"]
            if task in known.index:
                df.at[idx, "metric"] = known.at[task, "metric"]
                df.at[idx, "higher_is_better"] = bool(known.at[task, "higher_is_better"])
    dtypes: dict[str, Any] = {}
    for name, annotation in types.items():
        base = annotation.replace(" | None", "")
        if base == "int":
            dtypes[name] = "Int64"
        elif base == "float":
            dtypes[name] = "Float64" if "None" in annotation else "float64"
        elif base == "bool":
            dtypes[name] = "boolean"
        elif base == "str":
            dtypes[name] = "string"
    dtypes.update({"run_id": "string", "sweep": "string", "baseline": "string", "method": "string",
                   "status": "string", "error": "string", "wall_time_s": "float64", "metric": "string",
                   "higher_is_better": "bool", "final": "float64", "abandoned_at": "float64",
                   "device": "string", "torch_version": "string", "lbpbench_version": "string",
                   "git_commit": "string"})
    return df.astype(dtypes)
