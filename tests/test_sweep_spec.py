"""Sweep specs: expansion, include/exclude, --set parsing, and every validation error (exit 2, key + line,
nothing written)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner
from sweep_fakes import fake_names

from lbpbench.sweep import spec as spec_mod
from lbpbench.sweep.commands import sweep_group
from lbpbench.sweep.spec import SpecError, load_spec, parse_set, parse_spec


def parse(text: str, overrides: tuple[str, ...] = ()) -> spec_mod.SweepSpec:
    return parse_spec(textwrap.dedent(text), source="s.toml", overrides=overrides, names=fake_names)


BASE = """
[sweep]
name = "t"
[fixed]
task = "sinusoid-5x10"
meta_steps = 10
[axes]
learner = ["stateless", "stateful"]
aggregator = ["mean", "sum", "rnn"]
seed = [0, 1]
"""


def test_product_expansion() -> None:
    configs = parse(BASE).expand()
    assert len(configs) == 2 * 3 * 2
    assert {(c.learner, c.aggregator, c.seed) for c in configs} == {
        (learner, agg, s)
        for learner in ("stateless", "stateful")
        for agg in ("mean", "sum", "rnn")
        for s in (0, 1)
    }
    assert all(c.meta_steps == 10 and c.task == "sinusoid-5x10" and c.baseline is None for c in configs)


def test_baselines_cross_task_and_seed_only() -> None:
    spec = parse(
        BASE.replace("seed = [0, 1]", 'seed = [0, 1]\ntask = ["sinusoid-5x10", "sinusoid-2x10"]').replace(
            'task = "sinusoid-5x10"\n', ""
        )
        + 'baselines = ["adam", "sgd"]\n'
    )
    configs = spec.expand()
    baselines = [c for c in configs if c.baseline]
    assert len(configs) - len(baselines) == 2 * 3 * 2 * 2
    assert sorted((c.baseline, c.task, c.seed) for c in baselines) == sorted(
        (b, t, s) for b in ("adam", "sgd") for t in ("sinusoid-5x10", "sinusoid-2x10") for s in (0, 1)
    )
    assert {c.method for c in baselines} == {"adam", "sgd"}


def test_exclude_and_include() -> None:
    spec = parse(
        BASE
        + """
        baselines = ["adam"]
        [[exclude]]
        learner = "stateless"
        aggregator = ["rnn", "sum"]
        [[exclude]]
        learner = "stateful"          # must not remove the adam baseline that carries the default learner
        seed = 1
        [[include]]
        learner = "stateful"
        aggregator = "rnn"
        message_size = [16, 32]
        seed = 5
    """
    )
    configs = spec.expand()
    learned = [(c.learner, c.aggregator, c.seed, c.message_size) for c in configs if not c.baseline]
    assert ("stateless", "rnn", 0, 8) not in learned and ("stateless", "sum", 1, 8) not in learned
    assert ("stateless", "mean", 0, 8) in learned
    assert not any(lrn == "stateful" and s == 1 for lrn, _, s, _ in learned)
    assert ("stateful", "rnn", 5, 16) in learned and ("stateful", "rnn", 5, 32) in learned
    assert sorted(c.seed for c in configs if c.baseline == "adam") == [0, 1]
    # 12 product points - 4 (stateless x rnn/sum x 2 seeds) - 3 (stateful, seed 1) + 2 includes + 2 adam
    assert len(configs) == 12 - 4 - 3 + 2 + 2


def test_exclude_on_task_also_drops_baselines() -> None:
    spec = parse(BASE + 'baselines = ["adam"]\n[[exclude]]\nseed = 1\n')
    assert all(c.seed == 0 for c in spec.expand())


def test_include_without_a_seed_is_crossed_with_the_seed_axis() -> None:
    spec = parse(BASE + '[[include]]\nlearner = "stateful"\naggregator = "rnn"\nmessage_size = 16\n')
    added = sorted(c.seed for c in spec.expand() if c.message_size == 16)
    assert added == [0, 1]
    assert sorted(c.seed for c in parse(BASE + '[[include]]\nmessage_size = 16\n', ("seed=3",)).expand()
                  if c.message_size == 16) == [3]


def test_duplicate_points_are_removed() -> None:
    spec = parse(BASE + '[[include]]\nlearner = "stateful"\naggregator = "mean"\nseed = 0\n')
    assert len(spec.expand()) == 12


def test_list_valued_fields_as_axes() -> None:
    spec = parse(BASE + "mlp_widths = [[80, 40], [40]]\n")
    assert sorted({tuple(c.mlp_widths) for c in spec.expand()}) == [(40,), (80, 40)]


def test_set_overrides_replace_axes_and_fixed() -> None:
    spec = parse(BASE, ("seed=3,4,5", "aggregator=mean", "meta_steps=20,30", "meta_lr=1e-3"))
    configs = spec.expand()
    assert {c.seed for c in configs} == {3, 4, 5}
    assert {c.aggregator for c in configs} == {"mean"}
    assert {c.meta_steps for c in configs} == {20, 30}
    assert {c.meta_lr for c in configs} == {1e-3}


def test_set_of_one_value_stays_fixed_so_baselines_get_it() -> None:
    spec = parse(BASE + 'baselines = ["adam"]\n', ("baseline_lrs=[0.01]", "device=cuda"))
    configs = spec.expand()
    assert any(c.baseline == "adam" for c in configs)
    assert all(c.baseline_lrs == [0.01] and c.device == "cuda" for c in configs)
    assert spec.fixed["baseline_lrs"] == [0.01] and "baseline_lrs" not in spec.axes


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ("seed=0,1,2", ("seed", [0, 1, 2])),
        ("meta_lr=1e-4, 3e-4", ("meta_lr", [1e-4, 3e-4])),
        ("checkpointing=true,false", ("checkpointing", [True, False])),
        ("aggregator=mean,sum", ("aggregator", ["mean", "sum"])),
        ('aggregator="mean","rnn"', ("aggregator", ["mean", "rnn"])),
        ("mlp_widths=[80,40],[40]", ("mlp_widths", [[80, 40], [40]])),
        ("task=sinusoid-5x10", ("task", ["sinusoid-5x10"])),
    ],
)
def test_parse_set(item: str, expected: tuple) -> None:
    assert parse_set(item) == expected


def test_round_trip_through_resolved_toml() -> None:
    spec = parse(
        BASE + 'baselines = ["adam"]\n[[exclude]]\nlearner = "stateless"\naggregator = "rnn"\n',
        ("seed=0,1,2",),
    )
    again = parse_spec(spec.to_toml(), names=fake_names)
    assert [c.to_dict() for c in again.expand()] == [c.to_dict() for c in spec.expand()]


def test_default_sweep_embedded() -> None:
    spec = load_spec(None, names=fake_names)
    configs = spec.expand()
    assert spec.name == "default"
    assert len(configs) == 3 + 3 + 3  # zoo start, from scratch, tuned Adam; 3 seeds each
    assert {c.task for c in configs} == {"sinusoid-5x10"}
    assert {c.baseline for c in configs} == {None, "adam"}
    learned = [c for c in configs if c.baseline is None]
    assert sorted(str(c.init_from) for c in learned) == ["None"] * 3 + ["zoo:sinusoid-5x10-fast"] * 3
    assert all(c.meta_steps == 20 and c.eval_every == 10 and c.meta_batch == 16 for c in learned)


def test_default_sweep_valid_against_real_registry() -> None:
    from lbpbench.registry import get_registry

    reg = get_registry()
    assert all(reg.names(k) for k in ("task", "learner", "aggregator", "baseline"))
    load_spec(None)  # every component named by the default sweep is registered


# ----------------------------------------------------------------------------------- validation errors

H = '[sweep]\nname = "t"\n'  # two lines
BAD_SPECS = {
    "unknown top-level table": (H + "[axis]\nseed = [0]\n", "axis", 3),
    "unknown key in sweep": (H + 'colour = "red"\n', "colour", 3),
    "missing name": ("[sweep]\n[axes]\nseed = [0]\n", "sweep", 1),
    "unknown fixed field": (H + "[fixed]\nmeta_step = 3\n", "meta_step", 4),
    "unknown axis": (H + '[fixed]\ntask = "sinusoid-5x10"\n\n[axes]\nsed = [0, 1]\n', "sed", 7),
    "wrong type fixed": (H + '[fixed]\nmeta_steps = "ten"\n', "meta_steps", 4),
    "wrong type in axis": (H + "[axes]\nseed = [0, 1.5]\n", "seed", 4),
    "bool is not int": (H + "[axes]\nmessage_size = [true]\n", "message_size", 4),
    "out of range": (H + "[fixed]\nmessage_size = 0\n", "message_size", 4),
    "empty axis": (H + "[axes]\nseed = [0]\naggregator = []\n", "aggregator", 5),
    "axis not a list": (H + "[axes]\nseed = 0\n", "seed", 4),
    "unknown aggregator": (H + '[axes]\nseed = [0]\naggregator = ["mean", "median2"]\n', "aggregator", 5),
    "unknown task": (H + '[fixed]\ntask = "sinus"\n', "task", 4),
    "unknown baseline": (H + '[axes]\nseed = [0]\nbaselines = ["adamw"]\n', "baselines", 5),
    "unknown learner in exclude": (
        H + '[axes]\nseed = [0, 1]\n\n[[exclude]]\nseed = 0\n\n[[exclude]]\nlearner = "statefull"\n',
        "learner",
        10,
    ),
    "unknown key in include": (H + "[axes]\nseed = [0]\n[[include]]\nsede = 3\n", "sede", 6),
    "both fixed and axis": (H + "[fixed]\nseed = 0\n[axes]\nseed = [0, 1]\n", "seed", 6),
    "bad sharing value": (H + '[axes]\nsharing = ["layer", "node"]\n', "sharing", 4),
    "invalid toml": (H + "[axes]\nseed = [0,, 1]\n", None, 4),
    "unclosed toml": (H + "[axes]\nseed = [0, 1\n", None, 4),
}


@pytest.fixture
def cli(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(spec_mod, "registry_names", fake_names)
    return CliRunner()


@pytest.mark.parametrize("case", sorted(BAD_SPECS))
def test_validation_errors_exit_2_with_key_and_line(case: str, cli: CliRunner, tmp_path: Path) -> None:
    text, key, line = BAD_SPECS[case]
    (tmp_path / "bad.toml").write_text(text)
    result = cli.invoke(sweep_group, ["run", "bad.toml", "--out", "out", "--no-report"])
    assert result.exit_code == 2, result.output
    assert f"bad.toml:{line}:" in result.output
    if key:
        assert f"[{key}]" in result.output
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "results").exists()


def test_unknown_component_lists_registered_names(cli: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text(BAD_SPECS["unknown aggregator"][0])
    result = cli.invoke(sweep_group, ["run", "bad.toml", "--no-report"])
    assert "registered: mean, rnn, sum" in result.output


@pytest.mark.parametrize(
    "item", ["sed=0,1", "seed=a,b", "message_size=", "aggregator=median2", "baseline_lrs=[[0.01]]"]
)
def test_bad_set_exit_2(item: str, cli: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "ok.toml").write_text(BASE)
    result = cli.invoke(sweep_group, ["run", "ok.toml", "--set", item, "--out", "out", "--no-report"])
    assert result.exit_code == 2, result.output
    assert "--set" in result.output
    assert not (tmp_path / "out").exists()


def test_spec_error_carries_key_and_line() -> None:
    with pytest.raises(SpecError) as info:
        parse(BASE.replace("meta_steps = 10", "meta_steps = -1"))
    assert info.value.key == "meta_steps" and info.value.line == 6


def test_missing_spec_file(cli: CliRunner, tmp_path: Path) -> None:
    result = cli.invoke(sweep_group, ["run", "nope.toml", "--no-report"])
    assert result.exit_code == 2 and "nope.toml" in result.output
    assert not (tmp_path / "results").exists()
