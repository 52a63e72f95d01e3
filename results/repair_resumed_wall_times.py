"""Repair the wall time of runs resumed across sessions before the harness counted every session.

Until the commit that added `wall_seconds` to checkpoints, a run's `wall_time_s` (status.json, and
from it runs.parquet, the tables' "wall time (s)" and the restarts table's seconds per escape) was
the wall time of its last session only: a run meta-trained over three sessions reported the third.
The checkpoint of such a run still holds `train_seconds`, its meta-training seconds summed over
every session (the time-to-quality columns' clock). This sets `wall_time_s` to that where it is
larger: a lower bound of the true figure (earlier sessions' evaluations are not in it). Seed
batches keep their per-member share (both numbers are shares there). Then it re-merges
runs.parquet of every sweep folder not being run now, with the same runs it held.

Run from the repository root (prints one line per repaired run):
python results/repair_resumed_wall_times.py results > results/repair_resumed_wall_times.txt
"""

import json
import sys
from pathlib import Path

import pandas as pd
import torch

from lbpbench.sweep.store import ResultsStore, atomic_write_json


def repair(status_path: Path) -> str | None:
    checkpoint = status_path.parent / "checkpoint.pt"
    if not checkpoint.exists():
        return None
    status = json.loads(status_path.read_text())
    state = torch.load(checkpoint, weights_only=False, map_location="cpu")
    trained = float(state.get("train_seconds", 0.0))
    recorded = float(status.get("wall_time_s") or 0.0)
    if trained <= recorded:
        return None
    atomic_write_json(status_path, {**status, "wall_time_s": trained})
    return f"{status_path.parent}: wall_time_s {recorded:.1f} -> {trained:.1f}"


def remerge(root: Path) -> str | None:
    store = ResultsStore(root)
    index, runs = store.read_index(), root / "runs.parquet"
    if index is None or not runs.exists() or store.is_locked():
        return None
    held = pd.read_parquet(runs)["run_id"].tolist()
    store.merge(index["sweep"], held)
    return f"{root}: runs.parquet re-merged ({len(held)} runs)"


def main(top: str) -> None:
    roots = set()
    for status_path in sorted(Path(top).rglob("status.json")):
        line = repair(status_path)
        if line:
            print(line)
            if status_path.parent.parent.name == "runs":
                roots.add(status_path.parent.parent.parent)
    for root in sorted(roots):
        line = remerge(root)
        print(line or f"{root}: runs.parquet not re-merged (no index or runs.parquet, or a sweep runs there)")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "results")
