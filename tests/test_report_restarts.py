"""The restarts section of a report: escapes out of n with an exact interval, the escaped draws'
quality, and what a learner that reaches X costs when stuck draws are stopped and drawn again."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from population_helpers import TINY
from scipy import stats

from lbpbench.harness.config import RunConfig
from lbpbench.report.load import normalise_runs
from lbpbench.report.quality import SOURCE_OVERRIDE, Target
from lbpbench.report.render import build_report, render_markdown
from lbpbench.report.restarts import (
    draw_outcomes,
    escape_interval,
    escape_rates_exact_p,
    restarts_table,
    with_milestones,
)
from lbpbench.sweep.commands import sweep_group

AVERAGE = 0.0185  # the task-average curve's loss; the plateau line is 0.9 x this = 0.01665
X = Target("sinusoid-5x10", "eval_loss", 0.0025, False, SOURCE_OVERRIDE, "test")

# (message_size, seed): (abandoned at, final, wall seconds, meta_eval curve {step: (loss, wall_s)})
DRAWS = {
    (8, 0): (750, 0.0190, 800.0, {750: (0.0190, 760.0)}),
    (8, 1): (None, 0.0020, 4000.0, {1000: (0.0100, 1000.0), 2000: (0.0028, 2000.0), 3000: (0.0024, 3000.0)}),
    (8, 2): (None, 0.0120, 4000.0, {1000: (0.0130, 1000.0), 4000: (0.0120, 3900.0)}),  # escaped, stalled
    (8, 3): (750, 0.0195, 820.0, {750: (0.0195, 780.0)}),
    (8, 4): (None, 0.0180, 4000.0, {4000: (0.0180, 3900.0)}),  # never abandoned, still on the plateau
    (1, 0): (750, 0.0200, 700.0, {750: (0.0200, 690.0)}),
    (1, 1): (750, 0.0201, 710.0, {750: (0.0201, 700.0)}),
}


def _meta_train_row(run_id: str) -> dict:
    return {"run_id": run_id, "phase": "meta_train", "step": 0, "metric": "meta_loss", "value": 0.02}


def _tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    rows, curves = [], []
    for (k, seed), (abandoned, final, wall, evals) in DRAWS.items():
        config = RunConfig(message_size=k, seed=seed, eval_every=250, abandon_plateau_at=750)
        run_id = f"k{k}s{seed}"
        rows.append({**config.to_dict(), "run_id": run_id, "method": config.method, "baseline": "",
                     "status": "ok", "final": final, "metric": "eval_loss", "wall_time_s": wall,
                     "abandoned_at": float("nan") if abandoned is None else float(abandoned)})
        curves += [{"run_id": run_id, "phase": "eval", "step": 5, "metric": m, "value": v}
                   for m, v in (("eval_loss", final), ("eval_loss_centre", final),
                                ("eval_loss_outer", final), ("eval_loss_task_average", AVERAGE))]
        curves.append(_meta_train_row(run_id))
        for step, (loss, seconds) in evals.items():
            curves += [{"run_id": run_id, "phase": "meta_eval", "step": step, "metric": m, "value": v}
                       for m, v in (("eval_loss", loss), ("wall_s", seconds))]
    # a tuned baseline given the same setting (it records no meta-training) and a learned run without
    # restarts are not draws; MAML meta-trains, so with restarts it is one
    adam = RunConfig(baseline="adam", abandon_plateau_at=750, eval_every=250)
    plain = RunConfig(message_size=4, eval_every=250)
    maml = RunConfig(baseline="maml", abandon_plateau_at=750, eval_every=250)
    for config, run_id, abandoned in ((adam, "adam", None), (plain, "plain", None), (maml, "maml", 750.0)):
        rows.append({**config.to_dict(), "run_id": run_id, "method": config.method,
                     "baseline": config.baseline or "", "status": "ok", "final": 0.02, "metric": "eval_loss",
                     "wall_time_s": 5.0, "abandoned_at": abandoned or float("nan")})
        if run_id != "adam":
            curves.append(_meta_train_row(run_id))
    return normalise_runs(pd.DataFrame(rows)), pd.DataFrame(curves)


def test_escape_interval_is_clopper_pearson() -> None:
    low, high = escape_interval(2, 5)
    assert low == pytest.approx(stats.beta.ppf(0.025, 2, 4))
    assert high == pytest.approx(stats.beta.ppf(0.975, 3, 3))
    assert escape_interval(0, 2) == (0.0, pytest.approx(1 - 0.025 ** 0.5))
    assert all(math.isnan(v) for v in escape_interval(0, 0))


def test_escape_rates_exact_p_is_fishers_test_for_two_and_exact_for_more() -> None:
    for a, b in (((3, 7), (0, 6)), ((1, 3), (0, 3)), ((4, 6), (3, 7)), ((5, 5), (0, 5))):
        fisher = stats.fisher_exact([[a[0], a[1] - a[0]], [b[0], b[1] - b[0]]]).pvalue
        assert escape_rates_exact_p([a, b]) == pytest.approx(fisher, rel=1e-9)
    assert escape_rates_exact_p([(1, 3)] * 5) == pytest.approx(1.0)  # equal rates: nothing rarer
    # 3 of 3, then 0 of 3 four times: 3 escapes among 15 draws all in one configuration. The tables
    # as improbable as that are the five that put all three in one configuration.
    assert escape_rates_exact_p([(3, 3)] + [(0, 3)] * 4) == pytest.approx(5 / math.comb(15, 3))
    with pytest.raises(ValueError, match="two configurations"):
        escape_rates_exact_p([(1, 3)])
    with pytest.raises(ValueError, match="0..draws"):
        escape_rates_exact_p([(4, 3), (0, 3)])


def test_restarts_table_counts_escapes_and_prices_them() -> None:
    runs, curves = _tables()
    table = restarts_table(runs, curves, ["task", "method", "message_size"], {"sinusoid-5x10": X})
    assert list(table["configuration"]) == ["maml", "stateful/mean message_size=1",
                                            "stateful/mean message_size=8"]
    maml, k1, k8 = (table.iloc[i] for i in range(3))
    assert (maml["draws"], maml["abandoned"], maml["escaped"]) == (1, 1, "0 of 1")
    # k = 8: two abandoned, one never abandoned but still on the plateau, two escaped (one stalled)
    assert (k8["draws"], k8["abandoned"], k8["escaped"]) == (5, 2, "2 of 5")
    assert k8["escape rate CI"] == f"[{stats.beta.ppf(0.025, 2, 4):.2f}, {stats.beta.ppf(0.975, 3, 3):.2f}]"
    assert k8["escaped: final"] == pytest.approx((0.0020 + 0.0120) / 2)
    assert k8["escaped: reached X"] == "1 of 2"
    assert k8["seconds per escape"] == pytest.approx((800 + 4000 + 4000 + 820 + 4000) / 2)
    # seed 0 (800 s, abandoned) is paid for, then seed 1 reaches X after 3,000 s of its own
    assert k8["seconds to X with restarts"] == pytest.approx(800 + 3000)
    assert (k1["draws"], k1["abandoned"], k1["escaped"]) == (2, 2, "0 of 2")
    assert math.isnan(k1["escaped: final"]) and k1["escaped: final CI"] == "n/a"
    assert math.isnan(k1["seconds per escape"]) and math.isnan(k1["seconds to X with restarts"])


def test_milestones_are_the_first_evaluation_at_or_below_each_level_and_arcs_outer_over_centre() -> None:
    runs, curves = _tables()
    # k = 8 seed 1 ends with its outer error at exactly the signature's 2 x centre; seed 2 just under it
    outer = (curves["phase"] == "eval") & (curves["metric"] == "eval_loss_outer")
    curves.loc[outer & (curves["run_id"] == "k8s1"), "value"] = 2.0 * 0.0020
    curves.loc[outer & (curves["run_id"] == "k8s2"), "value"] = 1.99 * 0.0120
    draws = draw_outcomes(runs, curves, {"sinusoid-5x10": X}).set_index("run_id")
    out = with_milestones(draws, runs, curves, "sinusoid-5x10", (0.01, 0.003))
    assert list(out.index) == list(draws.index) and "steps_to_0.01" not in draws.columns
    # 0.0100 at 1,000 counts as reaching 0.01; 0.0028 at 2,000 is the first at or below 0.003
    assert (out.at["k8s1", "steps_to_0.01"], out.at["k8s1", "steps_to_0.003"]) == (1000.0, 2000.0)
    assert all(math.isnan(out.at[rid, "steps_to_0.01"]) for rid in ("k8s2", "k8s4", "k1s0", "maml"))
    assert out["centre_arc"].to_dict() == {rid: rid == "k8s1" for rid in out.index}


def test_reports_without_restarts_have_no_restarts_section(tmp_path: Path) -> None:
    runs, curves = _tables()
    plain = runs[runs["abandon_plateau_at"] == 0]
    assert restarts_table(plain, curves, ["task", "method"], {"sinusoid-5x10": X}).empty


def test_a_sweep_records_abandoned_draws_and_reports_them(tmp_path: Path) -> None:
    """End to end: an untrained learner is abandoned at its first evaluation (ratio ~1.3 to the
    task-average line), runs.parquet records where, and the report's restarts section counts it."""
    spec = tmp_path / "restarts.toml"
    tiny = "\n".join(f"{k} = {v!r}".replace("'", '"') for k, v in TINY.items())
    spec.write_text(f'[sweep]\nname = "restarts"\n[fixed]\n{tiny}\nmeta_steps = 3\neval_every = 1\n'
                    "abandon_plateau_at = 1\n[axes]\nseed = [0, 1]\n")
    out = tmp_path / "results"
    result = CliRunner().invoke(sweep_group, ["run", str(spec), "--out", str(out), "--workers", "1",
                                              "--no-report"])
    assert result.exit_code == 0, result.output
    runs = pd.read_parquet(out / "runs.parquet")
    assert list(runs["abandoned_at"]) == [1.0, 1.0]
    report = render_markdown(build_report(out))
    assert "## Restarts" in report and "0 of 2" in report
