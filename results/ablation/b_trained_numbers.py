"""Ablation (b), trained: do aggregators differ once protocols are trained, and what does the
calibration absorb? Each claim of b_trained_summary.md as a number.

Reads results/ablation/b_aggregator_learner_trained/ (runs.parquet, curves.parquet; an interrupted
sweep writes both for the runs that finished) and prints:
- every finished draw (learner, aggregator, calibration, seed): abandoned, escaped, final eval L2
  after 5 steps, meta-steps to 0.01 and to 0.003, centre arc (outer >= 2 x centre);
- per configuration: escapes k of n (exact 95 % interval) and the escaped draws' final (mean, 95 %
  bootstrap CI, how many reached 0.003);
- whether aggregators differ: the exact test of one escape rate for all aggregators (per learner,
  and pooled over learners), and each aggregator's escaped finals against mean's (difference of
  means, 95 % bootstrap CI, each side resampled on its own);
- stateful against stateless, pooled over aggregators;
- the calibration: per weightless aggregator, frozen input standardisation against none (Fisher's
  exact test of escapes; difference of escaped finals), and whether mean, sum and max differ
  without the standardisation; pooled over the three; the eval L2 at meta-step 750, which every
  draw has, abandoned or not;
- the baselines' finals: tuned Adam and the backprop learner (meta-trained learning rate).

Run from the repository root:
python results/ablation/b_trained_numbers.py > results/ablation/b_trained_numbers.txt
"""

import sys

import numpy as np

from lbpbench.report.load import load_results
from lbpbench.report.quality import SOURCE_OVERRIDE, Target
from lbpbench.report.restarts import draw_outcomes, escape_interval, escape_rates_exact_p, with_milestones
from lbpbench.report.stats import bootstrap_difference_ci, mean_ci_text

FOLDER = sys.argv[1] if len(sys.argv) > 1 else "results/ablation/b_aggregator_learner_trained"
CONVERGED, GOOD = 0.01, 0.003
LEARNED = ("stateful", "stateless")
WEIGHTLESS = ("mean", "sum", "max")
KEYS = ["learner", "aggregator", "calibration"]
RULE_AT = 750  # abandon_plateau_at of the spec

runs, curves = load_results(FOLDER)
target = Target("sinusoid-5x10", "eval_loss", GOOD, False, SOURCE_OVERRIDE, "the issue's 0.003")
draws = draw_outcomes(runs[runs["baseline"] == ""], curves, {"sinusoid-5x10": target})
draws = draws.set_index("run_id").join(runs.set_index("run_id")[KEYS])
draws = with_milestones(draws, runs, curves, "sinusoid-5x10", (CONVERGED, GOOD))
# every draw, abandoned or not, was evaluated at the meta-step the plateau rule first applies
at_rule = curves[(curves["phase"] == "meta_eval") & (curves["metric"] == "eval_loss")
                 & (curves["step"] == RULE_AT)]
draws[f"at_{RULE_AT}"] = at_rule.set_index("run_id")["value"].reindex(draws.index)


def escapes(group) -> tuple[int, int]:
    return int(group["escaped"].sum()), len(group)


def escaped_finals(group) -> np.ndarray:
    return group.loc[group["escaped"], "final"].to_numpy(float)


def describe(group) -> str:
    k, n = escapes(group)
    low, high = escape_interval(k, n)
    reached = int(np.isfinite(group.loc[group["escaped"], "steps_to_0.003"]).sum())
    return (f"escaped {k} of {n} [{low:.2f}, {high:.2f}]; escaped draws' final "
            f"{mean_ci_text(escaped_finals(group))}, reached {GOOD}: {reached} of {k}; "
            f"centre arcs {int(group['centre_arc'].sum())} of {n}")


def difference(a, b) -> str:
    diff, low, high = bootstrap_difference_ci(escaped_finals(a), escaped_finals(b))
    if np.isnan(diff):
        return (f"not enough escaped draws (n = {int(a['escaped'].sum())} and "
                f"{int(b['escaped'].sum())}; 2 each needed)")
    return f"{diff:.4g} [{low:.4g}, {high:.4g}]"


def same_rate(groups: dict) -> str:
    present = {name: escapes(g) for name, g in groups.items() if len(g)}
    if len(present) < 2:
        return "fewer than two configurations finished"
    counts = ", ".join(f"{name} {k}/{n}" for name, (k, n) in present.items())
    return f"{counts}: exact p = {escape_rates_exact_p(list(present.values())):.2f}"


print(f"{FOLDER}: {len(draws)} finished draws of the learned configurations")
print(draws.reset_index()[[*KEYS, "seed", "abandoned", "escaped", f"at_{RULE_AT}", "final", "steps_to_0.01",
                           "steps_to_0.003", "centre_arc", "wall_time_s"]]
      .sort_values([*KEYS, "seed"]).to_string(index=False))

print("\nper configuration:")
for (learner, aggregator, calibration), group in draws.groupby(KEYS, sort=False):
    print(f"  {learner}/{aggregator} ({calibration}): {describe(group)}")

frozen = draws[draws["calibration"] == "frozen"]
learned = frozen[frozen["learner"].isin(LEARNED)]
aggregators = list(dict.fromkeys(learned["aggregator"]))
print("\ndo aggregators differ once trained? (frozen standardisation; exact test of one escape rate)")
for learner in LEARNED:
    mine = learned[learned["learner"] == learner]
    print(f"  {learner}: {same_rate({a: mine[mine['aggregator'] == a] for a in aggregators})}")
print(f"  pooled over learners: {same_rate({a: learned[learned['aggregator'] == a] for a in aggregators})}")
for aggregator in aggregators:
    print(f"  pooled, {aggregator}: {describe(learned[learned['aggregator'] == aggregator])}")
mean_cell = learned[learned["aggregator"] == "mean"]
for aggregator in aggregators:
    if aggregator != "mean":
        print(f"  pooled, {aggregator} - mean, escaped finals: "
              f"{difference(learned[learned['aggregator'] == aggregator], mean_cell)}")

print("\nstateful against stateless, pooled over aggregators:")
stateful, stateless = (learned[learned["learner"] == name] for name in LEARNED)
print(f"  escapes: {same_rate({'stateful': stateful, 'stateless': stateless})}")
print(f"  stateful - stateless, escaped finals: {difference(stateful, stateless)}")

print("\nthe calibration: stateful, frozen standardisation against none")
stateful_all = draws[draws["learner"] == "stateful"]
for aggregator in WEIGHTLESS:
    cell = stateful_all[stateful_all["aggregator"] == aggregator]
    with_std = cell[cell["calibration"] == "frozen"]
    without = cell[cell["calibration"] == "no-standardisation"]
    if len(without):
        print(f"  {aggregator}: {same_rate({'frozen': with_std, 'none': without})}; "
              f"none - frozen, escaped finals: {difference(without, with_std)}")
    else:
        print(f"  {aggregator}: no unstandardised draw finished yet")
raw = stateful_all[stateful_all["calibration"] == "no-standardisation"]
print(f"  without standardisation, mean/sum/max: "
      f"{same_rate({a: raw[raw['aggregator'] == a] for a in WEIGHTLESS})}")
weightless = stateful_all[stateful_all["aggregator"].isin(WEIGHTLESS)]
by_calibration = {c: weightless[weightless["calibration"] == c] for c in ("frozen", "no-standardisation")}
print(f"  pooled over mean/sum/max: {same_rate(by_calibration)}")
column = f"at_{RULE_AT}"
print(f"  eval L2 at meta-step {RULE_AT} (every draw, escaped or not; mean, 95 % bootstrap CI):")
for aggregator in WEIGHTLESS:
    cell = weightless[weightless["aggregator"] == aggregator]
    with_std, without = (cell.loc[cell["calibration"] == c, column].to_numpy(float)
                         for c in ("frozen", "no-standardisation"))
    diff, low, high = bootstrap_difference_ci(without, with_std)
    print(f"    {aggregator}: frozen {mean_ci_text(with_std)}, none {mean_ci_text(without)}; "
          f"none - frozen {diff:.4g} [{low:.4g}, {high:.4g}]")

print("\nbaselines (final eval L2 after 5 steps; the backprop learner meta-trains its learning rate):")
for name, group in runs[runs["baseline"] != ""].groupby("baseline"):
    print(f"  {name}: {mean_ci_text(group['final'].to_numpy(float))}")
backprop = draws[draws["learner"] == "backprop"]
print(f"  backprop learner: {describe(backprop) if len(backprop) else 'not finished yet'}; "
      f"all finals {mean_ci_text(backprop['final'].to_numpy(float))}")
