"""The progress of an unfinished run, read from its checkpoint, as long-form CSV.

Why: a long meta-training run writes its curves only when it finishes, but its checkpoint holds
everything so far (history and mid-training evaluations), so a run that spans sessions can commit
its curve at every stop. `python -m lbpbench.harness.progress RUN_DIR [--every N] > progress.csv`.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import pandas as pd
import torch

from lbpbench.harness.run import CURVE_COLUMNS

META_TRAIN = ("meta_loss", "hint_loss", "heldout_loss")


def progress_frame(run_dir: Path, every: int = 100) -> pd.DataFrame:
    """meta_eval rows as recorded, and the meta-training losses averaged over blocks of `every`
    meta-steps (step = the block's last meta-step)."""
    state = torch.load(Path(run_dir) / "checkpoint.pt", weights_only=True, map_location="cpu")
    history = pd.DataFrame(state["history"], columns=["step", *META_TRAIN])
    rows = []
    if len(history):
        history["block"] = (history["step"] - 1) // every
        blocks = history.groupby("block").agg({"step": "max", **{m: "mean" for m in META_TRAIN}})
        rows += [
            {"phase": "meta_train", "step": int(r.step), "metric": m, "value": float(getattr(r, m))}
            for r in blocks.itertuples()
            for m in META_TRAIN
        ]
    rows += state.get("meta_evals", [])
    return pd.DataFrame(rows, columns=CURVE_COLUMNS)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--every", type=int, default=100, help="meta-steps per averaged block")
    args = parser.parse_args(argv)
    if not (args.run_dir / "checkpoint.pt").is_file():
        parser.exit(2, f"error: {args.run_dir} holds no checkpoint.pt (not a run folder, or a run that "
                       "has not reached its first checkpoint)\n")
    frame = progress_frame(args.run_dir, args.every)
    try:
        sys.stdout.write(f"# python -m lbpbench.harness.progress {args.run_dir} --every {args.every}\n")
        frame.to_csv(sys.stdout, index=False)
        sys.stdout.flush()
    except BrokenPipeError:  # `... | head` or `| grep -m1` closed the pipe: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit flush stays quiet


if __name__ == "__main__":
    main()
