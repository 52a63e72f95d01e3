"""Synthetic sweep results for the report tests: known numbers in the exact runs/curves schema.

Layout: 2 tasks (a loss task and an accuracy task) x 3 aggregators x 2 message sizes x 3 seeds of
the stateful learner, plus 3 Adam baseline seeds per task. Finals follow closed forms so tests can
check the tables by hand:

- learned final (both tasks) = BASE[task] + 0.1 * agg_index + 0.05 * k_index + 0.01 * seed
- Adam final = ADAM_FINAL[task] + 0.01 * seed
- Adam eval curve at inner step s (loss task) = 2.0 - 0.138 * s + 0.01 * seed  (s = 0..10)
  (accuracy task) = 0.1 + 0.08 * s + 0.01 * seed
Special runs: (loss task, rnn, k=8, seed 2) diverged; (accuracy task, sum, k=4, seed 1) failed;
(accuracy task, rnn, k=8, seeds 0 and 1) failed, leaving that configuration one seed.

Evaluations during meta-training (phase meta_eval, `meta_eval=True`): learned runs of the mean and
rnn aggregators (not sum, as if run without eval_every; baselines never have them) at meta-steps
100, 200, ..., 1000 (k = step / 100):
- metric (loss task) = final + 0.005 + 0.1 * (10 - k), (accuracy task) = final + 0.005 - 0.03 * (10 - k)
- wall_s = k * (2.0 + 0.5 * seed), so every seed has its own wall-time grid
The diverged run has meta_eval rows up to step 300 only. The 0.005 offset keeps every value at least
0.005 away from the Adam-derived targets (0.91 loss, 0.81 accuracy), so no comparison is a float tie.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from lbpbench.harness.config import RunConfig

LOSS_TASK = "sinusoid-5x10"
ACC_TASK = "mnist-20x8"
TASKS = {LOSS_TASK: ("eval_loss", False), ACC_TASK: ("eval_accuracy", True)}
BASE = {LOSS_TASK: 0.5, ACC_TASK: 0.6}
ADAM_FINAL = {LOSS_TASK: 0.9, ACC_TASK: 0.8}
AGGREGATORS = ("mean", "sum", "rnn")
MESSAGE_SIZES = (4, 8)
SEEDS = (0, 1, 2)
EVAL_STEPS = 10
META_STEPS = 5
META_EVAL_EVERY = 100
META_EVAL_COUNT = 10
NO_META_EVAL = ("sum",)  # aggregators whose runs record no meta_eval rows
DIVERGED = {(LOSS_TASK, "rnn", 8, 2)}
FAILED = {(ACC_TASK, "sum", 4, 1), (ACC_TASK, "rnn", 8, 0), (ACC_TASK, "rnn", 8, 1)}


def learned_final(task: str, aggregator: str, message_size: int, seed: int) -> float:
    """The closed-form final metric of a learned run (see the module docstring)."""
    return (
        BASE[task]
        + 0.1 * AGGREGATORS.index(aggregator)
        + 0.05 * MESSAGE_SIZES.index(message_size)
        + (0.01 * seed)
    )


def adam_curve(task: str, step: int, seed: int) -> float:
    """Adam's eval metric at an inner step."""
    if TASKS[task][1]:
        return 0.1 + 0.08 * step + 0.01 * seed
    return 2.0 - 0.138 * step + 0.01 * seed


def meta_eval_value(task: str, final: float, step: int) -> float:
    """A learned run's primary metric at a meta-step during meta-training (see the module docstring)."""
    left = META_EVAL_COUNT - step // META_EVAL_EVERY
    if TASKS[task][1]:
        return final + 0.005 - 0.03 * left
    return final + 0.005 + 0.1 * left


def meta_eval_wall(step: int, seed: int) -> float:
    """Meta-training wall seconds a run had spent at a meta-step."""
    return (step // META_EVAL_EVERY) * (2.0 + 0.5 * seed)


def _row(cfg: RunConfig, run_id: str, status: str, final: float, error: str | None, sweep: str) -> dict:
    metric, hib = TASKS[cfg.task]
    row = cfg.to_dict()
    row["baseline"] = row["baseline"] or ""
    row.update(
        run_id=run_id,
        sweep=sweep,
        method=cfg.method,
        status=status,
        error=error,
        wall_time_s=10.0 + cfg.seed,
        metric=metric,
        higher_is_better=hib,
        final=final,
        device="cpu",
        torch_version="2.4.0",
        lbpbench_version="0.1.0",
        git_commit="abc1234",
    )
    return row


def build_results(
    out_dir: str | Path,
    *,
    sweep: str = "synthetic",
    shift: float = 0.0,
    all_failed: bool = False,
    seeds: tuple[int, ...] = SEEDS,
    tasks: tuple[str, ...] = (LOSS_TASK, ACC_TASK),
    meta_eval: bool = True,
    adam: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Write runs.parquet and curves.parquet into out_dir and return them.

    `shift` is added to every learned final (to fabricate a second sweep for compare);
    `all_failed` marks every run failed with no curves; `meta_eval=False` writes no meta_eval rows
    (results from before runs recorded them); `adam=False` leaves out the Adam baseline runs.
    """
    runs, curves = [], []
    n = 0
    for task in tasks:
        metric, hib = TASKS[task]
        configs = [
            (RunConfig(task=task, aggregator=a, message_size=k, seed=s), a, k, s)
            for a in AGGREGATORS
            for k in MESSAGE_SIZES
            for s in seeds
        ]
        if adam:
            configs += [(RunConfig(task=task, baseline="adam", seed=s), None, None, s) for s in seeds]
        for cfg, agg, k, seed in configs:
            n += 1
            run_id = f"r{n:03d}"
            key = (task, agg, k, seed)
            if cfg.baseline:
                final = ADAM_FINAL[task] + 0.01 * seed
            else:
                final = learned_final(task, agg, k, seed) + shift
            status, error = "ok", None
            if all_failed or key in FAILED:
                status, error, final = "failed", f"RuntimeError: synthetic failure in {run_id}", float("nan")
            elif key in DIVERGED:
                status, error, final = "diverged", "loss exceeded 1e3", 1e6
            runs.append(_row(cfg, run_id, status, final, error, sweep))
            if status == "failed":
                continue
            for t in range(META_STEPS):
                v = (final if status == "ok" else 1.0) * (1.0 + 1.0 / (1.0 + t))
                curves.append((run_id, "meta_train", t, "meta_loss", v))
            for s in range(EVAL_STEPS + 1):
                if cfg.baseline:
                    v = adam_curve(task, s, seed)
                else:
                    v = final + (EVAL_STEPS - s) * (-0.03 if hib else 0.05)
                curves.append((run_id, "eval", s, metric, v))
                curves.append((run_id, "eval", s, "train_loss", 1.0 / (1 + s)))
            if meta_eval and not cfg.baseline and agg not in NO_META_EVAL:
                learned = learned_final(task, agg, k, seed) + shift
                count = 3 if status == "diverged" else META_EVAL_COUNT
                for step in range(META_EVAL_EVERY, META_EVAL_EVERY * count + 1, META_EVAL_EVERY):
                    curves.append((run_id, "meta_eval", step, metric, meta_eval_value(task, learned, step)))
                    curves.append((run_id, "meta_eval", step, "train_loss", 0.5 / step))
                    curves.append((run_id, "meta_eval", step, "wall_s", meta_eval_wall(step, seed)))
    runs_df = pd.DataFrame(runs)
    # The sweep store writes nullable dtypes and "" for a missing error; mimic it.
    runs_df["error"] = runs_df["error"].fillna("")
    runs_df = runs_df.astype(
        {
            "message_size": "Int64",
            "seed": "Int64",
            "task": "string",
            "method": "string",
            "status": "string",
            "baseline": "string",
            "error": "string",
            "metric": "string",
            "meta_batch": "Int64",
        }
    )
    curves_df = pd.DataFrame(curves, columns=["run_id", "phase", "step", "metric", "value"])
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    runs_df.to_parquet(out / "runs.parquet", index=False)
    curves_df.to_parquet(out / "curves.parquet", index=False)
    return runs_df, curves_df
