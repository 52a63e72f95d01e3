"""Named recipes: `paper` is the defaults (same run, same id), `fast` fills in what it names and
nothing given explicitly is overridden, in `train` and in sweep specs alike."""

from __future__ import annotations

import json
import textwrap

import pytest
from click.testing import CliRunner

from lbpbench.cli import main
from lbpbench.harness.config import RunConfig
from lbpbench.harness.presets import PRESETS, apply_preset, preset_settings
from lbpbench.sweep.identity import run_id
from lbpbench.sweep.spec import SpecError, parse_spec


def test_paper_preset_is_the_defaults_so_the_run_and_its_id_are_unchanged() -> None:
    plain = RunConfig(task="sinusoid-5x10", meta_steps=50)
    paper = RunConfig.from_dict(apply_preset({"preset": "paper", "task": "sinusoid-5x10", "meta_steps": 50}))
    assert paper == plain and run_id(paper) == run_id(plain)


@pytest.mark.parametrize("task, meta_batch",
                         [("sinusoid-5x10", 16), ("sinusoid-2x10", 16), ("mnist-20x8", 4)])
def test_fast_preset_scales_the_tasks_meta_batch_and_warmup(task: str, meta_batch: int) -> None:
    got = preset_settings("fast", {"task": task, "meta_steps": 4000})
    assert got == {"meta_lr": 1e-3, "lr_schedule": "cosine", "grad_norm": "unit", "warmup_steps": 200,
                   "meta_batch": meta_batch}


def test_explicit_settings_win_over_the_preset() -> None:
    point = apply_preset({"preset": "fast", "meta_lr": 3e-3, "warmup_steps": 0, "meta_steps": 100})
    assert point["meta_lr"] == 3e-3 and point["warmup_steps"] == 0 and point["lr_schedule"] == "cosine"
    assert "preset" not in point


def test_unknown_preset_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown preset 'quick'; known: paper, fast"):
        preset_settings("quick", {})


SPEC = """
[sweep]
name = "recipes"
[fixed]
task = "sinusoid-5x10"
meta_steps = 400
{fixed}
[axes]
seed = [0, 1]
{axes}
baselines = ["adam"]
"""


def spec(fixed: str = "", axes: str = "") -> str:
    return textwrap.dedent(SPEC.format(fixed=fixed, axes=axes))


def test_preset_axis_crosses_learned_and_baseline_runs() -> None:
    runs = parse_spec(spec(axes='preset = ["paper", "fast"]')).expand()
    learned = [r for r in runs if r.baseline is None]
    baselines = [r for r in runs if r.baseline]
    assert len(learned) == 4 and len(baselines) == 4
    assert sorted(r.meta_lr or 0 for r in learned) == [0, 0, 1e-3, 1e-3]
    fast = [r for r in runs if r.meta_lr == 1e-3]
    assert all(r.warmup_steps == 20 and r.meta_batch == 16 and r.lr_schedule == "cosine" for r in fast)


def test_fixed_value_beats_a_fixed_preset() -> None:
    runs = parse_spec(spec(fixed='preset = "fast"\nmeta_batch = 8')).expand()
    assert {(r.meta_batch, r.meta_lr) for r in runs} == {(8, 1e-3)}


def test_bad_preset_in_a_spec_names_key_and_line() -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(spec(axes='preset = ["paper", "quick"]'), source="s.toml")
    assert info.value.key == "preset" and info.value.line == 10 and "known: paper, fast" in str(info.value)


def test_train_preset_with_an_explicit_override(tmp_path) -> None:
    out = tmp_path / "run"
    args = ["train", "--preset", "fast", "--meta-lr", "3e-3", "--steps", "2", "--meta-batch", "2",
            "--message-size", "2", "--hidden-size", "2", "--mlp-widths", "8", "--eval-tasks", "3",
            "--out", str(out), "--quiet"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())["config"]
    assert (config["meta_lr"], config["lr_schedule"], config["grad_norm"], config["meta_batch"]) == \
        (3e-3, "cosine", "unit", 2)


def test_presets_say_why() -> None:
    assert all(p.why for p in PRESETS.values())
