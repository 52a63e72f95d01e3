"""Report room: tables against closed forms, reproducible figures, bad input, and the two commands."""

from __future__ import annotations

import base64
import math
import re
import traceback
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from report_fixtures import (
    ACC_TASK,
    ADAM_FINAL,
    EVAL_STEPS,
    LOSS_TASK,
    adam_curve,
    build_results,
    learned_final,
    meta_eval_wall,
)

from lbpbench.errors import exception_line
from lbpbench.report.commands import compare_command, report_command
from lbpbench.report.compare import compare_frames, format_comparison, min_p_value
from lbpbench.report.figures import all_figures, choose_heatmap_axes, on_wall_grid
from lbpbench.report.load import ReportError, group_keys, load_results, normalise_runs, varying_axes
from lbpbench.report.quality import (
    DEFAULT_TARGETS,
    SOURCE_ADAM,
    SOURCE_DEFAULT,
    SOURCE_OVERRIDE,
    Target,
    choose_targets,
    first_reach,
    parse_targets,
)
from lbpbench.report.render import build_report, render_html, render_markdown
from lbpbench.report.settings import settings_table
from lbpbench.report.stats import bootstrap_ci, bootstrap_difference_ci, iqm, mean_ci_text
from lbpbench.report.tables import (
    NO_RECORD,
    REACHED_X,
    STEPS_TO_X,
    WALL_TO_X,
    display_table,
    summarise,
    write_tables,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FIGURE_NAMES = [
    "meta_train",
    "eval_curves",
    "quality_vs_step",
    "quality_vs_wall",
    "final_metric",
    "heatmap_final",
    "heatmap_diverged",
]
FIGURE_TITLES = [
    "Meta-training curves",
    "Inner-loop evaluation curves",
    "Quality against meta-step",
    "Quality against meta-training wall time",
    "Final metric per configuration",
    "Heatmap: mean final metric",
    "Heatmap: diverged fraction",
]


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("results") / "synthetic"
    build_results(path)
    return path


@pytest.fixture(scope="module")
def loaded(results_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    return load_results(results_dir)


@pytest.fixture(scope="module")
def summary(loaded):
    runs, curves = loaded
    return summarise(runs, curves)


@pytest.fixture(scope="module")
def figures(loaded):
    runs, curves = loaded
    return all_figures(runs, curves)


def row(summary, task: str, method: str, message_size: int | None = None) -> pd.Series:
    t = summary.table
    sel = (t["task"] == task) & (t["method"] == method)
    if message_size is not None:
        sel &= t["message_size"] == message_size
    rows = t[sel]
    assert len(rows) == 1, rows
    return rows.iloc[0]


def adam_mean_curve(task: str) -> np.ndarray:
    return np.array(
        [np.mean([adam_curve(task, s, seed) for seed in (0, 1, 2)]) for s in range(EVAL_STEPS + 1)]
    )


# --- loading -------------------------------------------------------------------------------------


def test_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="does not exist"):
        load_results(tmp_path / "nope")


def test_empty_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="empty"):
        load_results(tmp_path)


def test_missing_curves_file_is_named(tmp_path: Path, results_dir: Path) -> None:
    (tmp_path / "runs.parquet").write_bytes((results_dir / "runs.parquet").read_bytes())
    with pytest.raises(ReportError, match="curves.parquet"):
        load_results(tmp_path)


def test_runs_table_without_rows_is_an_error(tmp_path: Path, loaded) -> None:
    runs, curves = loaded
    runs.iloc[:0].to_parquet(tmp_path / "runs.parquet")
    curves.iloc[:0].to_parquet(tmp_path / "curves.parquet")
    with pytest.raises(ReportError, match="no runs"):
        load_results(tmp_path)


def test_default_group_by_is_the_varying_axes(loaded) -> None:
    runs, _ = loaded
    assert set(varying_axes(runs)) == {"task", "aggregator", "message_size", "baseline"}
    assert group_keys(runs) == ["task", "method", "message_size"]
    assert group_keys(runs, ["aggregator"]) == ["task", "method"]
    with pytest.raises(ReportError, match="unknown group-by axis"):
        group_keys(runs, ["colour"])


# --- statistics and tables ----------------------------------------------------------------------


def test_iqm_and_bootstrap_closed_forms() -> None:
    assert iqm([1.0, 2.0, 3.0, 100.0]) == pytest.approx(2.5)  # middle two of four
    assert iqm([4.0, 1.0, 7.0]) == pytest.approx(4.0)  # trimming 25 % of 3 drops nothing
    low, high = bootstrap_ci([1.0, 2.0, 3.0, 4.0])
    assert 1.0 <= low < 2.5 < high <= 4.0
    assert bootstrap_ci([1.0, 2.0, 3.0, 4.0]) == (low, high)  # fixed seed
    assert all(math.isnan(v) for v in bootstrap_ci([1.0]))


def test_bootstrap_difference_ci_closed_forms() -> None:
    a, b = [1.0, 2.0, 3.0, 4.0], [10.0, 10.5, 11.0]
    diff, low, high = bootstrap_difference_ci(a, b)
    assert diff == pytest.approx(2.5 - 10.5)
    assert 1.0 - 11.0 <= low < diff < high <= 4.0 - 10.0  # inside the extreme resamples' range
    shifted = bootstrap_difference_ci([v + 3.0 for v in a], b)  # a shift moves every resample
    assert shifted == pytest.approx((diff + 3.0, low + 3.0, high + 3.0))
    assert bootstrap_difference_ci([2.0, 2.0], [0.5, 0.5]) == pytest.approx((1.5, 1.5, 1.5))
    assert bootstrap_difference_ci(a, b) == (diff, low, high)  # fixed seed
    assert all(math.isnan(v) for v in bootstrap_difference_ci(a, [1.0, float("nan")]))
    low, high = bootstrap_ci(a)
    assert mean_ci_text(a + [float("nan")]) == f"2.5 [{low:.4g}, {high:.4g}] (n=4)"
    assert mean_ci_text([0.001234567]) == "0.001235 (n=1)" and mean_ci_text([]) == "none"


def test_summary_matches_closed_forms(summary) -> None:
    r = row(summary, LOSS_TASK, "stateful/mean", 4)
    finals = [learned_final(LOSS_TASK, "mean", 4, s) for s in (0, 1, 2)]
    assert r["n_seeds"] == 3 and r["n_runs"] == 3
    assert r["mean"] == pytest.approx(np.mean(finals))
    assert r["iqm"] == pytest.approx(np.mean(finals))
    assert min(finals) <= r["ci_low"] <= r["mean"] <= r["ci_high"] <= max(finals)
    assert r["wall_time_s_mean"] == pytest.approx(11.0)
    adam_mean = ADAM_FINAL[LOSS_TASK] + 0.01
    assert r["loss_ratio_vs_adam"] == pytest.approx(np.mean(finals) / adam_mean)
    assert math.isnan(r["accuracy_ratio_vs_adam"])
    # Adam's best mean eval loss (step 10) is 2.01 - 1.38 = 0.63 > 0.51: never matched.
    assert math.isnan(r["adam_steps_to_match"]) and r["adam_eval_steps"] == EVAL_STEPS


def test_steps_adam_needs_to_match(summary) -> None:
    loss_curve = adam_mean_curve(LOSS_TASK)
    r = row(summary, LOSS_TASK, "stateful/rnn", 4)  # mean 0.71
    expected = int(np.argmax(loss_curve <= r["mean"]))
    assert expected == math.ceil((2.01 - 0.71) / 0.138) == 10
    assert r["adam_steps_to_match"] == expected
    acc = row(summary, ACC_TASK, "stateful/mean", 4)  # mean accuracy 0.61
    assert acc["mean"] == pytest.approx(0.61)
    assert acc["adam_steps_to_match"] == math.ceil((0.61 - 0.11) / 0.08) == 7
    assert acc["accuracy_ratio_vs_adam"] == pytest.approx(0.61 / 0.81)
    shown = display_table(summary)
    loss_mean4 = shown[
        (shown["task"] == LOSS_TASK) & (shown["method"] == "stateful/mean") & (shown["message_size"] == "4")
    ]
    assert loss_mean4["adam_steps_to_match"].item() == f">{EVAL_STEPS}"


def test_diverged_failed_and_single_seed_rows(summary) -> None:
    div = row(summary, LOSS_TASK, "stateful/rnn", 8)  # seed 2 diverged with final 1e6
    assert div["n_seeds"] == 2 and div["n_diverged"] == 1
    assert div["diverged_frac"] == pytest.approx(1 / 3)
    assert div["mean"] == pytest.approx(np.mean([learned_final(LOSS_TASK, "rnn", 8, s) for s in (0, 1)]))
    failed = row(summary, ACC_TASK, "stateful/sum", 4)  # seed 1 failed
    assert failed["n_failed"] == 1 and failed["n_seeds"] == 2 and failed["diverged_frac"] == 0.0
    single = row(summary, ACC_TASK, "stateful/rnn", 8)  # seeds 0 and 1 failed
    assert single["n_seeds"] == 1 and math.isnan(single["ci_low"]) and math.isnan(single["ci_high"])
    assert single["mean"] == pytest.approx(learned_final(ACC_TASK, "rnn", 8, 2))
    shown = display_table(summary)
    assert "n/a (1 seed)" in set(shown["95% CI"])
    assert any("one successful seed" in n for n in summary.notes)
    assert any("Diverged runs are excluded" in n for n in summary.notes)
    adam = row(summary, LOSS_TASK, "adam")
    assert math.isnan(adam["loss_ratio_vs_adam"])


def test_tables_written_in_three_formats(tmp_path: Path, summary) -> None:
    paths = write_tables({"summary": summary.table}, tmp_path, display={"summary": display_table(summary)})
    assert sorted(p.name for p in paths) == ["summary.csv", "summary.md", "summary.parquet"]
    back = pd.read_parquet(tmp_path / "summary.parquet")
    assert back["mean"].tolist() == pytest.approx(summary.table["mean"].tolist(), nan_ok=True)
    assert len(pd.read_csv(tmp_path / "summary.csv")) == len(summary.table)
    md = (tmp_path / "summary.md").read_text()
    assert md.count("\n") == len(summary.table) + 2 and "n/a (1 seed)" in md


# --- figures -------------------------------------------------------------------------------------


def test_figures_are_pngs_and_byte_identical(loaded, figures) -> None:
    runs, curves = loaded
    again = all_figures(runs, curves)
    assert [f.name for f in figures] == FIGURE_NAMES
    for first, second in zip(figures, again, strict=True):
        assert first.png is not None and first.png.startswith(PNG_MAGIC), first.note
        assert first.png == second.png, f"{first.name} differs between two renders"
        assert b"Software" not in first.png


def test_heatmap_axes_default_fallback_and_skip(loaded) -> None:
    runs, _ = loaded
    axes, note = choose_heatmap_axes(runs)  # sharing does not vary here
    assert axes == ("aggregator", "message_size") and "do not both vary" in note
    varied = runs.copy()
    varied["sharing"] = np.where(varied["seed"] % 2 == 0, "layer", "all")
    assert choose_heatmap_axes(varied) == (("message_size", "sharing"), None)
    single = runs[(runs["aggregator"] == "mean")]
    axes, note = choose_heatmap_axes(single)
    assert axes is None and "fewer than two" in note


# --- bad input: everything failed ----------------------------------------------------------------


def test_all_failed_sweep_still_renders(tmp_path: Path) -> None:
    build_results(tmp_path / "broken", all_failed=True, tasks=(LOSS_TASK,))
    report = build_report(tmp_path / "broken")
    assert report.alerts and "No run succeeded" in report.alerts[0]
    assert all(f.png is None and f.note for f in report.figures)
    assert (report.summary.table["n_seeds"] == 0).all()
    page = render_html(report)
    assert "No run succeeded" in page and "synthetic failure in r001" in page
    assert "Not drawn" in render_markdown(report)


def _traceback_text() -> str:
    """A real chained traceback ("During handling of the above exception ..."), as the executors
    store it (traceback.format_exc()): its head is the first exception, its last line the final one."""

    def lookup(name: str) -> None:
        raise ValueError(f"unknown task {name!r}")

    try:
        try:
            raise ZeroDivisionError("division by zero")
        except ZeroDivisionError:
            lookup("x")
    except ValueError:
        return traceback.format_exc()
    raise AssertionError("unreachable")


def test_failed_run_shows_the_exception_line_not_the_traceback_head(tmp_path: Path) -> None:
    path = tmp_path / "tb"
    runs, _ = build_results(path, tasks=(ACC_TASK,))
    tb = _traceback_text()
    assert tb.startswith("Traceback (most recent call last)") and "ZeroDivisionError" in tb
    failed = runs.index[runs["status"] == "failed"][0]
    runs.loc[failed, "error"] = tb
    runs.to_parquet(path / "runs.parquet", index=False)

    report = build_report(path)
    assert tb in set(report.failures["error"])  # the table data keeps the full text
    md = render_markdown(report)
    section = md[md.index("## Failed and diverged runs") : md.index("## Figures")]
    assert "ValueError: unknown task 'x'" in section
    assert "Traceback" not in section and "ZeroDivisionError" not in section
    page = render_html(report)
    table = re.search(r'<table[^>]*id="failures".*?</table>', page, re.S).group(0)
    assert "ValueError: unknown task &#x27;x&#x27;" in table or "ValueError: unknown task 'x'" in table
    assert "Traceback" not in table
    # The other failed runs keep their one-line errors.
    assert "RuntimeError: synthetic failure in" in section


def test_exception_line() -> None:
    assert exception_line("loss exceeded 1e3") == "loss exceeded 1e3"
    assert exception_line("") == ""
    assert exception_line("first\nsecond\n\n") == "second"
    tb = 'Traceback (most recent call last):\n  File "x.py", line 1, in <module>\n    f()\nKeyError: \'a\'\n'
    assert exception_line(tb) == "KeyError: 'a'"
    assert exception_line(_traceback_text()) == "ValueError: unknown task 'x'"
    multi = tb.replace("KeyError: 'a'", "ValueError: bad spec\nline 2 of the message")
    assert exception_line(multi) == "ValueError: bad spec line 2 of the message"


# --- commands ------------------------------------------------------------------------------------


def test_report_command_end_to_end(tmp_path: Path, results_dir: Path) -> None:
    out = tmp_path / "report"
    result = CliRunner().invoke(report_command, [str(results_dir), "-o", str(out)])
    assert result.exit_code == 0, result.output
    page = (out / "index.html").read_text()
    images = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,([^"]*)"', page)
    assert [alt for alt, _ in images] == FIGURE_TITLES
    for _, data in images:
        png = base64.b64decode(data)
        assert len(png) > 1000 and png.startswith(PNG_MAGIC)
    for table_id in ("summary", "targets", "failures", "environment"):
        match = re.search(rf'<table[^>]*id="{table_id}".*?</table>', page, re.S)
        assert match and match.group(0).count("<tr>") > 1, table_id
    assert "abc1234" in page and "seaborn" in page  # git commit from runs.parquet, package versions
    md = (out / "report.md").read_text()
    for name in FIGURE_NAMES:
        assert f"figures/{name}.png" in md and (out / "figures" / f"{name}.png").stat().st_size > 1000
    for name in ("summary", "failures", "targets", "time_to_target"):
        for ext in ("parquet", "csv", "md"):
            assert (out / "tables" / f"{name}.{ext}").stat().st_size > 0


def test_report_command_on_missing_folder(tmp_path: Path) -> None:
    result = CliRunner().invoke(report_command, [str(tmp_path / "missing")])
    assert result.exit_code == 2 and "does not exist" in result.output and "Traceback" not in result.output


def test_compare_marks_only_significant_large_differences(tmp_path: Path) -> None:
    seeds = (0, 1, 2, 3, 4)
    runs_a, _ = build_results(tmp_path / "a", seeds=seeds)
    runs_b, _ = build_results(tmp_path / "b", seeds=seeds, shift=0.2, tasks=(LOSS_TASK,))
    cmp = compare_frames(runs_a, runs_b, factor=1.1)
    t = cmp.table
    mean4 = t[(t["task"] == LOSS_TASK) & (t["method"] == "stateful/mean") & (t["message_size"] == "4")].iloc[
        0
    ]
    assert mean4["ratio_b_over_a"] == pytest.approx((0.52 + 0.2) / 0.52)
    assert mean4["p_value"] < 0.05 and mean4["verdict"] == "worse"  # higher loss in B
    adam = t[(t["task"] == LOSS_TASK) & (t["method"] == "adam")].iloc[0]
    assert adam["ratio_b_over_a"] == pytest.approx(1.0) and adam["verdict"] == ""
    assert set(t.loc[t["task"] == ACC_TASK, "only_in"]) == {"A"}
    # A large factor leaves the same shift unmarked.
    assert (compare_frames(runs_a, runs_b, factor=2.0).table["verdict"] == "").all()
    text = format_comparison(cmp)
    assert "** worse **" in text and "only in A" in text

    result = CliRunner().invoke(
        compare_command, [str(tmp_path / "a"), str(tmp_path / "b"), "--factor", "1.1"]
    )
    assert result.exit_code == 0, result.output
    assert "** worse **" in result.output and "only in A" in result.output


def test_compare_with_three_seeds_explains_why_nothing_is_marked(loaded) -> None:
    runs, _ = loaded
    shifted = runs.copy()
    shifted["final"] = shifted["final"] * 2
    cmp = compare_frames(runs, shifted)
    assert (cmp.table["verdict"] == "").all()
    assert min_p_value(3, 3) == pytest.approx(0.1) and min_p_value(4, 4) < 0.05
    assert "too few seeds" in format_comparison(cmp)


def test_report_summary_file_is_shown_first(tmp_path: Path, results_dir: Path) -> None:
    findings = tmp_path / "findings.md"
    findings.write_text(
        "## Findings\n\n- message size 8 beats 1 (0.012 vs 0.020)\n- <script> is escaped\n\nPlain text.\n"
    )
    out = tmp_path / "report"
    result = CliRunner().invoke(
        report_command, [str(results_dir), "-o", str(out), "--summary", str(findings)]
    )
    assert result.exit_code == 0, result.output
    page = (out / "index.html").read_text()
    assert "<h3>Findings</h3>" in page and "<li>message size 8 beats 1 (0.012 vs 0.020)</li>" in page
    assert "&lt;script&gt;" in page and "<p>Plain text.</p>" in page
    assert page.index("Findings") < page.index("Summary per configuration")
    md = (out / "report.md").read_text()
    assert md.index("## Findings") < md.index("## Summary per configuration")


# --- time to quality (meta_eval rows) ------------------------------------------------------------


def _meta_eval(values: list[float], walls: list[float | None], metric: str = "eval_loss") -> pd.DataFrame:
    rows = []
    for i, (v, w) in enumerate(zip(values, walls, strict=True)):
        step = 100 * (i + 1)
        rows += [("r", "meta_eval", step, metric, v), ("r", "meta_eval", step, "train_loss", 9.0)]
        if w is not None:
            rows.append(("r", "meta_eval", step, "wall_s", w))
    rows.append(("r", "eval", 300, metric, -1.0))  # another phase at the same step: never read
    return pd.DataFrame(rows, columns=["run_id", "phase", "step", "metric", "value"])


def _target(value: float, higher_is_better: bool = False, metric: str = "eval_loss") -> Target:
    return Target("t", metric, value, higher_is_better, SOURCE_OVERRIDE, "test")


def test_first_reach_on_a_hand_built_curve() -> None:
    curve = _meta_eval([1.0, 0.5, 0.2, 0.1], [10.0, 20.5, 31.5, 40.0])
    assert first_reach(curve, _target(0.25)) == (300.0, 31.5)
    assert first_reach(curve, _target(0.2)) == (300.0, 31.5)  # value <= X reaches it
    assert first_reach(curve, _target(1.0)) == (100.0, 10.0)
    step, wall = first_reach(curve, _target(0.05))  # never reached
    assert math.isnan(step) and math.isnan(wall)
    step, wall = first_reach(_meta_eval([1.0, 0.5, 0.2], [10.0, None, 30.0]), _target(0.6))
    assert step == 200.0 and math.isnan(wall)  # reached, but no wall_s recorded at that step


def test_first_reach_higher_is_better() -> None:
    curve = _meta_eval([0.1, 0.3, 0.5, 0.4], [5.0, 10.0, 15.0, 20.0], metric="eval_accuracy")
    assert first_reach(curve, _target(0.45, True, "eval_accuracy")) == (300.0, 15.0)
    assert first_reach(curve, _target(0.5, True, "eval_accuracy")) == (300.0, 15.0)  # value >= X
    assert first_reach(curve, _target(0.05, True, "eval_accuracy")) == (100.0, 5.0)
    assert math.isnan(first_reach(curve, _target(0.6, True, "eval_accuracy"))[0])
    # The same curve read as a loss reaches 0.45 at once: the direction matters.
    assert first_reach(_meta_eval([0.1, 0.3, 0.5, 0.4], [5.0] * 4), _target(0.45)) == (100.0, 5.0)


def test_parse_targets() -> None:
    parsed = parse_targets(["sinusoid-5x10=0.002", " mnist-* = 0.5 "])
    assert parsed == {"sinusoid-5x10": 0.002, "mnist-*": 0.5}
    assert parse_targets([]) == {}
    for bad in ("sinusoid-5x10", "=0.1", "sinusoid-5x10=", "sinusoid-5x10=abc", "t=nan"):
        with pytest.raises(ValueError):
            parse_targets([bad])


def test_adam_derived_target_and_time_to_it(summary) -> None:
    loss, acc = summary.targets[LOSS_TASK], summary.targets[ACC_TASK]
    assert loss.source == acc.source == SOURCE_ADAM
    assert loss.metric == "eval_loss" and not loss.higher_is_better
    assert loss.value == pytest.approx(np.mean([ADAM_FINAL[LOSS_TASK] + 0.01 * s for s in (0, 1, 2)]))
    assert acc.metric == "eval_accuracy" and acc.higher_is_better and acc.value == pytest.approx(0.81)
    # stateful/mean k=4 on the loss task: finals 0.50, 0.51, 0.52, meta_eval value 0.005 + final +
    # 0.1 * (10 - step / 100) first <= 0.91 at steps 600, 700, 700.
    r = row(summary, LOSS_TASK, "stateful/mean", 4)
    assert r["target"] == pytest.approx(0.91) and r["target_metric"] == "eval_loss"
    assert (r["n_meta_eval"], r["n_reached"], r["reached_frac"]) == (3, 3, 1.0)
    assert r["steps_to_target_mean"] == pytest.approx(2000 / 3)
    assert 600 <= r["steps_to_target_ci_low"] < r["steps_to_target_ci_high"] <= 700
    walls = [meta_eval_wall(600, 0), meta_eval_wall(700, 1), meta_eval_wall(700, 2)]
    assert walls == [12.0, 17.5, 21.0]
    assert r["wall_s_to_target_mean"] == pytest.approx(np.mean(walls))
    per_run = summary.time_to_target.set_index(["task", "seed"])
    mean4 = per_run[per_run["run_id"].isin(["r001", "r002", "r003"])]
    assert mean4["steps_to_target"].tolist() == [600.0, 700.0, 700.0]
    assert mean4["wall_s_to_target"].tolist() == walls
    # rnn k=8: seed 2 diverged (its meta_eval rows are left out, as its final is from the mean).
    div = row(summary, LOSS_TASK, "stateful/rnn", 8)
    assert (div["n_meta_eval"], div["n_reached"]) == (2, 2)
    assert div["steps_to_target_mean"] == 900.0
    assert div["wall_s_to_target_mean"] == pytest.approx((18.0 + 22.5) / 2)
    shown = display_table(summary)
    shown4 = shown[(shown["task"] == LOSS_TASK) & (shown["method"] == "stateful/mean")]
    shown4 = shown4[shown4["message_size"] == "4"].iloc[0]
    assert shown4[REACHED_X] == "3/3" and shown4[STEPS_TO_X].startswith("666.7 [")
    assert shown4[WALL_TO_X].startswith("16.83 [")


def test_seeds_that_never_reach_are_counted_not_averaged(summary) -> None:
    # Accuracy task (higher is better), X = 0.81. rnn k=4: finals 0.80, 0.81, 0.82; the last meta_eval
    # value is final + 0.005, so seed 0 (0.805) never reaches X and seeds 1, 2 reach it at step 1000.
    r = row(summary, ACC_TASK, "stateful/rnn", 4)
    assert (r["n_meta_eval"], r["n_reached"]) == (3, 2)
    assert r["reached_frac"] == pytest.approx(2 / 3)
    assert r["steps_to_target_mean"] == 1000.0  # over the two that reached X only
    reachers = [meta_eval_wall(1000, 1), meta_eval_wall(1000, 2)]
    assert reachers == [25.0, 30.0] and r["wall_s_to_target_mean"] == pytest.approx(27.5)
    assert 25.0 <= r["wall_s_to_target_ci_low"] <= r["wall_s_to_target_ci_high"] <= 30.0
    never = row(summary, ACC_TASK, "stateful/mean", 4)  # best 0.625 < 0.81: 0 of 3
    assert (never["n_meta_eval"], never["n_reached"]) == (3, 0)
    assert math.isnan(never["steps_to_target_mean"]) and math.isnan(never["wall_s_to_target_mean"])
    single = row(summary, ACC_TASK, "stateful/rnn", 8)  # seeds 0, 1 failed: 1 of 1, at step 800
    assert (single["n_meta_eval"], single["n_reached"], single["steps_to_target_mean"]) == (1, 1, 800.0)
    shown = display_table(summary).set_index(["task", "method", "message_size"])
    assert shown.loc[(ACC_TASK, "stateful/rnn", "4"), REACHED_X] == "2/3"
    assert shown.loc[(ACC_TASK, "stateful/mean", "4"), REACHED_X] == "0/3"
    assert shown.loc[(ACC_TASK, "stateful/mean", "4"), STEPS_TO_X] == "not reached"
    assert shown.loc[(ACC_TASK, "stateful/rnn", "8"), STEPS_TO_X] == "800 (1 seed)"
    assert shown.loc[(ACC_TASK, "stateful/rnn", "8"), WALL_TO_X] == "24 (1 seed)"
    # Configurations without meta_eval rows (sum, Adam) show a dash, and a note names them.
    for key in ((ACC_TASK, "stateful/sum", "4"), (LOSS_TASK, "stateful/sum", "8"), (LOSS_TASK, "adam", "-")):
        assert [shown.loc[key, c] for c in (STEPS_TO_X, WALL_TO_X, REACHED_X)] == [NO_RECORD] * 3
    assert row(summary, LOSS_TASK, "stateful/sum", 8)["n_meta_eval"] == 0
    assert any("No meta_eval records" in n and "stateful/sum message_size=8" in n for n in summary.notes)
    assert any("seeds that reached X only" in n for n in summary.notes)


def test_default_targets_when_the_sweep_has_no_adam(tmp_path: Path) -> None:
    assert DEFAULT_TARGETS == {
        "sinusoid-5x10": ("eval_loss", 0.0025),
        "sinusoid-2x10": ("eval_loss", 0.0020),
        "mnist-*": ("eval_accuracy", 0.45),
    }
    build_results(tmp_path / "no_adam", adam=False)
    runs, curves = load_results(tmp_path / "no_adam")
    s = summarise(runs, curves)
    loss, acc = s.targets[LOSS_TASK], s.targets[ACC_TASK]
    assert loss.source == acc.source == SOURCE_DEFAULT
    assert (loss.metric, loss.value, loss.higher_is_better) == ("eval_loss", 0.0025, False)
    assert (acc.metric, acc.value, acc.higher_is_better) == ("eval_accuracy", 0.45, True)
    assert "mnist-*" in acc.detail and "no successful Adam run" in acc.detail
    # Accuracy 0.605 - 0.03 * (10 - step / 100) (seed 0) first >= 0.45 at step 500; so for seeds 1, 2.
    r = row(s, ACC_TASK, "stateful/mean", 4)
    assert (r["n_reached"], r["steps_to_target_mean"]) == (3, 500.0)
    assert row(s, LOSS_TASK, "stateful/mean", 4)["n_reached"] == 0  # eval_loss >= 0.505 > 0.0025
    # No Adam and no default: no X, a note says how to give one.
    other = runs.copy()
    other["task"] = other["task"].replace({LOSS_TASK: "sinusoid-3x3"})
    targets, notes = choose_targets(other)
    assert "sinusoid-3x3" not in targets and any("--target sinusoid-3x3=VALUE" in n for n in notes)
    with pytest.raises(ReportError, match="matches no task"):
        choose_targets(runs, {"nosuch": 1.0})
    # An override beats Adam; a glob names every matching task.
    build_results(tmp_path / "adam", tasks=(ACC_TASK,))
    runs_adam, _ = load_results(tmp_path / "adam")
    targets, _ = choose_targets(runs_adam, {"mnist-*": 0.5})
    assert targets[ACC_TASK].value == 0.5 and targets[ACC_TASK].source == SOURCE_OVERRIDE


def test_target_override_through_the_command(tmp_path: Path, results_dir: Path) -> None:
    out = tmp_path / "report"
    args = [str(results_dir), "-o", str(out), "--target", f"{LOSS_TASK}=0.51", "--target", "mnist-*=0.5"]
    result = CliRunner().invoke(report_command, args)
    assert result.exit_code == 0, result.output
    table = pd.read_parquet(out / "tables" / "summary.parquet")
    t = table.set_index(["task", "method", "message_size"])
    # loss, mean k=4: only seed 0 gets to 0.505 <= 0.51, at its last evaluation (step 1000).
    loss = t.loc[(LOSS_TASK, "stateful/mean", 4)]
    assert (loss["target"], loss["n_meta_eval"], loss["n_reached"]) == (0.51, 3, 1)
    assert loss["steps_to_target_mean"] == 1000.0 and loss["wall_s_to_target_mean"] == meta_eval_wall(1000, 0)
    # accuracy, mean k=4, X = 0.5 (glob): 0.605, 0.615, 0.625 - 0.03 * (10 - k) first >= 0.5 at 700, 700, 600.
    acc = t.loc[(ACC_TASK, "stateful/mean", 4)]
    assert acc["target"] == 0.5 and acc["n_reached"] == 3
    assert acc["steps_to_target_mean"] == pytest.approx(2000 / 3)
    targets = pd.read_csv(out / "tables" / "targets.csv").set_index("task")
    assert targets.loc[LOSS_TASK, "X"] == 0.51 and targets.loc[LOSS_TASK, "source"] == "set by --target"
    assert targets.loc[ACC_TASK, "source"] == "set by --target mnist-*"
    md = (out / "report.md").read_text()
    assert "Time-to-quality targets X" in md and "set by --target mnist-*" in md
    assert md.index("Time-to-quality targets X") < md.index("## Failed and diverged runs")
    page = (out / "index.html").read_text()
    assert re.search(r'<table[^>]*id="targets".*?0\.51.*?</table>', page, re.S)
    per_run = pd.read_parquet(out / "tables" / "time_to_target.parquet")
    assert per_run["reached"].dtype == bool and set(per_run["target"]) == {0.51, 0.5}

    bad = CliRunner().invoke(report_command, [str(results_dir), "-o", str(out), "--target", "0.5"])
    assert bad.exit_code == 2 and "TASK=VALUE" in bad.output
    unknown = CliRunner().invoke(report_command, [str(results_dir), "-o", str(out), "--target", "nosuch=1"])
    assert unknown.exit_code == 2 and "matches no task" in unknown.output
    assert "Traceback" not in unknown.output


def test_old_sweep_without_meta_eval_still_renders(tmp_path: Path) -> None:
    build_results(tmp_path / "old", meta_eval=False, tasks=(LOSS_TASK,))
    report = build_report(tmp_path / "old")
    assert (report.summary.table["n_meta_eval"] == 0).all()
    assert report.summary.time_to_target.empty
    assert report.summary.targets[LOSS_TASK].source == SOURCE_ADAM  # X is still stated
    shown = display_table(report.summary)
    for column in (STEPS_TO_X, WALL_TO_X, REACHED_X):
        assert set(shown[column]) == {NO_RECORD}
    assert any("no run recorded evaluations during meta-training" in n for n in report.summary.notes)
    figures = {f.name: f for f in report.figures}
    for name in ("quality_vs_step", "quality_vs_wall"):
        assert figures[name].png is None and "eval_every" in figures[name].note
    assert all(figures[n].png is not None for n in ("meta_train", "eval_curves", "final_metric"))
    md = render_markdown(report)
    assert "### Quality against meta-step\n\n_Not drawn:" in md
    page = render_html(report)
    assert 'id="fig-quality_vs_wall"' in page and "Not drawn: no successful run recorded" in page


def test_wall_time_grid_is_shared_per_configuration() -> None:
    rows = [
        ("a", "t", "c", "eval_loss", 100, 3.0, 1.0),
        ("a", "t", "c", "eval_loss", 200, 2.0, 2.0),
        ("a", "t", "c", "eval_loss", 300, 1.0, 3.0),
        ("b", "t", "c", "eval_loss", 100, 4.0, 2.0),
        ("b", "t", "c", "eval_loss", 200, 2.0, 4.0),
        ("z", "t", "other", "eval_loss", 100, 5.0, 7.0),
    ]
    data = pd.DataFrame(rows, columns=["run_id", "task", "label", "metric", "step", "value", "wall_s"])
    grid = on_wall_grid(data, points=4)
    a, b = (grid[grid["run_id"] == r] for r in ("a", "b"))
    assert a["wall_s"].tolist() == b["wall_s"].tolist() == [1.0, 2.0, 3.0, 4.0]
    assert a["value"].tolist() == [3.0, 2.0, 1.0, 1.0]  # keeps its last value after its last evaluation
    assert np.isnan(b["value"].iloc[0])  # no value before its first evaluation
    assert b["value"].tolist()[1:] == [4.0, 3.0, 2.0]
    other = grid[grid["label"] == "other"]
    assert other["wall_s"].tolist() == [7.0] and other["value"].tolist() == [5.0]


def test_settings_table_says_how_each_configuration_was_trained(loaded) -> None:
    runs, _ = loaded
    table = settings_table(runs).set_index(["task", "method"])
    assert table.loc[(LOSS_TASK, "stateful/mean"), "settings"] == "message_size=4 | 8"
    assert table.loc[(LOSS_TASK, "adam"), "settings"] == "(defaults)"


def test_settings_table_shows_a_recipe_and_a_zoo_start(tmp_path: Path) -> None:
    from lbpbench.harness.config import RunConfig

    configs = [RunConfig(meta_lr=1e-3, meta_batch=16, lr_schedule="cosine", init_from="zoo/a", seed=s)
               for s in (0, 1)] + [RunConfig(baseline="adam")]
    rows = [{**c.to_dict(), "method": c.method, "baseline": c.baseline or "", "run_id": str(i),
             "status": "ok", "final": 0.1, "metric": "eval_loss"} for i, c in enumerate(configs)]
    table = settings_table(normalise_runs(pd.DataFrame(rows))).set_index("method")["settings"]
    assert table["stateful/mean"] == "meta_batch=16; meta_lr=0.001; lr_schedule=cosine; init_from=zoo/a"
    assert table["adam"] == "(defaults)"
    # a sweep-wide recipe reaches the Adam runs too; a tuned baseline (no meta_train curve) ignores it
    rows[-1].update(meta_lr=1e-3, init_from="zoo/a")
    curves = pd.DataFrame({"run_id": ["0", "2"], "phase": ["meta_train", "eval"], "step": [1, 0],
                           "metric": ["meta_loss", "eval_loss"], "value": [0.1, 0.1]})
    shown = settings_table(normalise_runs(pd.DataFrame(rows)), curves).set_index("method")["settings"]
    assert shown["adam"] == "(defaults)"
    assert settings_table(normalise_runs(pd.DataFrame(rows))).set_index("method")["settings"]["adam"] == \
        "meta_lr=0.001; init_from=zoo/a"
    report = render_markdown(build_report(results_dir_of(tmp_path, rows)))
    assert "## How each configuration was trained" in report and "init_from=zoo/a" in report


def results_dir_of(tmp_path: Path, rows: list[dict]) -> Path:
    pd.DataFrame(rows).to_parquet(tmp_path / "runs.parquet")
    pd.DataFrame({"run_id": ["0"], "phase": ["eval"], "step": [0], "metric": ["eval_loss"],
                  "value": [0.1]}).to_parquet(tmp_path / "curves.parquet")
    return tmp_path


def test_regions_table_counts_centre_arc_runs(tmp_path: Path) -> None:
    """Final-step centre/outer losses per configuration; the signature is outer >= 2 x centre."""
    from lbpbench.harness.config import RunConfig
    from lbpbench.report.regions import ARC_COLUMN, AVERAGE_COLUMN, regions_table

    configs = [RunConfig(message_size=k, seed=s) for k in (1, 8) for s in (0, 1, 2)]
    rows = [{**c.to_dict(), "method": c.method, "baseline": "", "run_id": f"k{c.message_size}s{c.seed}",
             "status": "ok", "final": 0.1, "metric": "eval_loss"} for c in configs]
    # k=1: outer/centre = 3, 1.5, 2 (two arcs, 2.0 counts); k=8: 1.0 everywhere. Step 5 is the last
    # step; step 4's values (all arcs) must be ignored.
    ratios = {"k1s0": 3.0, "k1s1": 1.5, "k1s2": 2.0, "k8s0": 1.0, "k8s1": 1.0, "k8s2": 1.0}
    # final eval loss against the task-average curve's 0.02 (0.9x = 0.018): k1s0 0.019 and k1s1
    # 0.0181 are no better, the rest (0.005, 0.0179) are; step 4 (all no better) must be ignored
    finals = {"k1s0": 0.019, "k1s1": 0.0181, "k1s2": 0.005, "k8s0": 0.0179, "k8s1": 0.005, "k8s2": 0.005}
    curve_rows = []
    for run_id, ratio in ratios.items():
        for step, r, final in ((4, 10.0, 0.05), (5, ratio, finals[run_id])):
            curve_rows += [{"run_id": run_id, "phase": "eval", "step": step, "metric": metric, "value": value}
                           for metric, value in (("eval_loss_centre", 0.01), ("eval_loss_outer", 0.01 * r),
                                                 ("eval_loss", final), ("eval_loss_task_average", 0.02))]
    runs, curves = normalise_runs(pd.DataFrame(rows)), pd.DataFrame(curve_rows)
    table = regions_table(runs, curves, ["task", "method", "message_size"]).set_index("configuration")
    k1, k8 = table.loc["stateful/mean message_size=1"], table.loc["stateful/mean message_size=8"]
    assert k1[ARC_COLUMN] == "2 of 3" and k8[ARC_COLUMN] == "0 of 3"
    assert k1[AVERAGE_COLUMN] == "2 of 3" and k8[AVERAGE_COLUMN] == "0 of 3"
    assert k1["outer / centre"] == pytest.approx((3.0 + 1.5 + 2.0) / 3)
    assert k1["outer loss"] == pytest.approx(0.01 * (3.0 + 1.5 + 2.0) / 3) and k1["centre loss"] == 0.01
    pd.DataFrame(rows).to_parquet(tmp_path / "runs.parquet")
    curves.to_parquet(tmp_path / "curves.parquet")
    report = render_markdown(build_report(tmp_path))
    assert "## Where the error sits" in report and "2 of 3" in report
    assert regions_table(runs, curves[curves["metric"] == "eval_loss_centre"], ["task", "method"]).empty
    older = curves[curves["metric"] != "eval_loss_task_average"]  # runs from before it was recorded
    assert set(regions_table(runs, older, ["task", "method"])[AVERAGE_COLUMN]) == {"not recorded"}


def test_reports_without_regions_have_no_regions_section(results_dir: Path) -> None:
    assert "Where the error sits" not in render_markdown(build_report(results_dir))
