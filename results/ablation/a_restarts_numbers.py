"""Appendix B's anecdotes, each as a number, from ablation (a) with restarts.

Reads results/ablation/a_message_sharing_restarts/ (runs.parquet, curves.parquet; an interrupted
sweep writes both for the runs that finished) and prints, pooled over the other axis:
- per message size and per sharing level: draws, escapes k of n (exact 95 % interval), the escaped
  draws' final eval L2 (mean, 95 % bootstrap CI), their meta-steps to 0.01 and to 0.003 (mean, CI,
  how many reached), and centre-arc runs (outer >= 2 x centre after the last step);
- the differences the anecdotes claim (k = 8 against k = 1; per-layer against all-shared), as a
  difference of means over escaped draws with a 95 % bootstrap CI (resampled within each side).
Anecdotes: larger k converges faster and ends better; no sharing converges faster; all sharing
levels end comparable; weak learners get stuck fitting a centre arc.

Run from the repository root:
python results/ablation/a_restarts_numbers.py > results/ablation/a_restarts_numbers.txt
"""

import sys

import numpy as np
from scipy.stats import fisher_exact

from lbpbench.report.load import load_results
from lbpbench.report.quality import SOURCE_OVERRIDE, Target
from lbpbench.report.restarts import draw_outcomes, escape_interval, with_milestones
from lbpbench.report.stats import bootstrap_difference_ci, mean_ci_text

FOLDER = sys.argv[1] if len(sys.argv) > 1 else "results/ablation/a_message_sharing_restarts"
CONVERGED, GOOD = 0.01, 0.003  # "converges": first below 0.01; the quality bar: 0.003

runs, curves = load_results(FOLDER)
learned = runs[runs["baseline"] == ""]
target = Target("sinusoid-5x10", "eval_loss", GOOD, False, SOURCE_OVERRIDE, "the issue's 0.003")
draws = draw_outcomes(learned, curves, {"sinusoid-5x10": target}).set_index("run_id")
draws = draws.join(learned.set_index("run_id")[["message_size", "sharing"]])
draws = with_milestones(draws, learned, curves, "sinusoid-5x10", (CONVERGED, GOOD))


def difference(a: np.ndarray, b: np.ndarray) -> str:
    """mean(a) - mean(b) with a 95 % bootstrap CI, each side resampled on its own."""
    diff, low, high = bootstrap_difference_ci(a, b)
    if np.isnan(diff):
        n_a, n_b = int(np.isfinite(a).sum()), int(np.isfinite(b).sum())
        return f"not enough escaped draws (n = {n_a} and {n_b}; 2 each needed)"
    return f"{diff:.4g} [{low:.4g}, {high:.4g}]"


def escapes_compared(da, db) -> tuple[int, int, float]:
    """Escapes of two groups of draws and Fisher's exact two-sided p of their rates."""
    ka, kb = int(da["escaped"].sum()), int(db["escaped"].sum())
    return ka, kb, fisher_exact([[ka, len(da) - ka], [kb, len(db) - kb]]).pvalue


print(f"{FOLDER}: {len(draws)} finished draws of {len(learned)} learned runs in runs.parquet")
print(draws.reset_index()[["message_size", "sharing", "seed", "abandoned", "escaped", "final",
                           "steps_to_0.01", "steps_to_0.003", "centre_arc", "wall_time_s"]]
      .sort_values(["sharing", "message_size", "seed"]).to_string(index=False))
for axis in ("message_size", "sharing"):
    print(f"\npooled by {axis}:")
    for value, group in draws.groupby(axis, sort=False):
        k, n = int(group["escaped"].sum()), len(group)
        low, high = escape_interval(k, n)
        esc = group[group["escaped"]]
        print(f"  {axis} = {value}: escaped {k} of {n} [{low:.2f}, {high:.2f}]; escaped draws: "
              f"final {mean_ci_text(esc['final'].to_numpy(float))}, "
              f"steps to {CONVERGED} {mean_ci_text(esc['steps_to_0.01'].to_numpy(float))}, "
              f"reached {GOOD}: {int(np.isfinite(esc['steps_to_0.003']).sum())} of {k}; "
              f"centre arcs {int(group['centre_arc'].sum())} of {n}")

print("\nthe anecdotes' differences (escape rates: Fisher's exact test; the rest over escaped draws, "
      "negative: the first side lower):")
escaped = draws[draws["escaped"]]
for axis, a, b in (("message_size", 8, 1), ("message_size", 8, 4), ("sharing", "layer", "all"),
                   ("sharing", "layer", "kind")):
    da, db = draws[draws[axis] == a], draws[draws[axis] == b]
    if len(da) and len(db):
        ka, kb, p = escapes_compared(da, db)
        print(f"  {axis} {a} - {b}, escapes: {ka} of {len(da)} against {kb} of {len(db)}, p = {p:.2f}")
    sa, sb = escaped[escaped[axis] == a], escaped[escaped[axis] == b]
    for column in ("steps_to_0.01", "final"):
        print(f"  {axis} {a} - {b}, {column}: "
              f"{difference(sa[column].to_numpy(float), sb[column].to_numpy(float))}")

print("\nsharing at one message size (pooling over k confounds sharing with k where a level has not run "
      "every k):")
for k in sorted(draws["message_size"].unique(), reverse=True):
    at_k = draws[draws["message_size"] == k]
    for a, b in (("layer", "all"), ("layer", "kind"), ("kind", "all")):
        da, db = at_k[at_k["sharing"] == a], at_k[at_k["sharing"] == b]
        if len(da) and len(db):
            ka, kb, p = escapes_compared(da, db)
            sa, sb = da[da["escaped"]], db[db["escaped"]]
            print(f"  k = {k}, {a} - {b}: escapes {ka} of {len(da)} against {kb} of {len(db)}, p = {p:.2f}; "
                  f"final {difference(sa['final'].to_numpy(float), sb['final'].to_numpy(float))}; "
                  f"steps to {CONVERGED} "
                  f"{difference(sa['steps_to_0.01'].to_numpy(float), sb['steps_to_0.01'].to_numpy(float))}")
