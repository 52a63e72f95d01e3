"""Move a results folder's runs to the ids the current identity rule gives them.

Why: a run's id is a hash of its settings (`lbpbench.sweep.identity`). When the rule for that hash
changes (not the run: its settings, harness version and plugin versions stay as recorded), a sweep
re-run would no longer find its finished runs and would train them again. Reindexing renames each
run folder to its id under the current rule, keeping the harness and plugin versions it recorded,
so only the naming changes and a changed harness still re-runs what it touches.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from lbpbench.harness.config import RunConfig
from lbpbench.sweep.identity import full_hash, readable_prefix
from lbpbench.sweep.store import ResultsStore, atomic_write_json, read_json


@dataclass
class Move:
    old: str
    new: str
    problem: str | None = None  # why it was left in place


def recorded_id(data: dict) -> tuple[str, str]:
    """(run id, hash) of a run folder's config.json under the current rule, its own versions kept."""
    config = RunConfig.from_dict(data["config"])
    digest = full_hash(config, data.get("harness_version"), data.get("plugins") or {})
    return f"{readable_prefix(config)}_{digest[:12]}", digest


def reindex(store: ResultsStore) -> list[Move]:
    """Rename every run folder whose id changed; update config.json, index.json and the merged
    tables. Call with the store's lock held. Folders that cannot be read or whose new name is taken
    are left where they are (their Move names the problem)."""
    moves: list[Move] = []
    for rid in store.run_folders():
        path = store.run_dir(rid)
        try:
            data = read_json(path / "config.json")
            new, digest = recorded_id(data)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            moves.append(Move(rid, rid, f"config.json unreadable ({type(exc).__name__}: {exc})"))
            continue
        if new == rid:
            continue
        if store.run_dir(new).exists():
            moves.append(Move(rid, new, f"{new} exists already"))
            continue
        os.replace(path, store.run_dir(new))
        atomic_write_json(store.run_dir(new) / "config.json", {**data, "run_id": new, "hash": digest})
        moves.append(Move(rid, new))
    renamed = {m.old: m.new for m in moves if m.problem is None}
    index = store.read_index()
    if index is not None and renamed:
        run_ids = [renamed.get(r, r) for r in index["run_ids"]]
        store.write_index(index["sweep"], run_ids)
        if (store.root / "runs.parquet").exists():
            store.merge(index["sweep"], run_ids)
    return moves
