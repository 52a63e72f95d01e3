"""Rounds 12-13: time to quality for the sweep as a whole, restarts included.

A run's own `wall_s` counts only its meta-training; a restart recipe also pays for the draws it
abandoned before. Per sweep folder: the finished runs in the order they ran (status.json:
`elapsed_s`, calibration and evaluations included), then the run in progress (its checkpoint).
The sweep's time to X is the elapsed seconds of the runs before the first run that reaches X, plus
that run's meta-training seconds at its first evaluation at or below X (its mid-training
evaluations, a few seconds each, are not in that last term).

Run from the repository root:
python results/search/restart_times.py 0.0025 results/search/fast_recipe_9/a \
    results/search/fast_recipe_9/b > results/search/restart_times.txt
python results/search/restart_times.py 0.0020 results/search/fast_recipe_10 \
    > results/search/restart_times_maml.txt
"""

import json
import sys
from pathlib import Path

import torch

target = float(sys.argv[1])
for folder in map(Path, sys.argv[2:]):
    runs = []
    for run in sorted((folder / "runs").iterdir()):
        status = run / "status.json"
        state = torch.load(run / "checkpoint.pt", weights_only=False)
        evals = {r["step"]: r["value"] for r in state["meta_evals"] if r["metric"] == "eval_loss"}
        walls = {r["step"]: r["value"] for r in state["meta_evals"] if r["metric"] == "wall_s"}
        done = json.loads(status.read_text()) if status.exists() else None
        runs.append((done["started_at"] if done else "~", state, evals, walls, done))
    print(f"{folder}: target eval L2 at the trained horizon (eval_loss) <= {target}")
    before = 0.0
    reached = None
    for _, state, evals, walls, done in sorted(runs, key=lambda r: r[0]):
        line = ", ".join(f"{s}: {v:.4f}" for s, v in sorted(evals.items()))
        end = (f"abandoned at {state['abandoned_at']}" if state.get("abandoned_at") is not None
               else "finished" if done else f"in progress at meta-step {state['step']}")
        print(f"  seed {state['config']['seed']} ({end}): {line}")
        hit = next((s for s, v in sorted(evals.items()) if v <= target), None)
        if reached is None and hit is not None:
            reached = (state["config"]["seed"], hit, before + walls[hit])
        before += done["elapsed_s"] if done else float("nan")
    if reached is None:
        print("  not reached yet")
    else:
        seed, step, seconds = reached
        print(f"  reached by seed {seed} at meta-step {step}: {seconds:.0f} s of the sweep "
              f"({seconds / 60:.1f} min)")
