"""`lbpbench plugins`, `--version`, `--plugins-dir` and usage errors, through click's CliRunner."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import lbpbench
from lbpbench.cli import LazyGroup, main, registry_from_context
from lbpbench.registry import ENV_PLUGINS_DIR, KINDS

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.usefixtures("isolated_plugins")


def write_plugin(folder: Path, stem: str, kind_hook: str, name: str, doc: str = "A test component.") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{stem}.py").write_text(
        "from lbpbench import hookimpl\n\n"
        f"def make(**opts):\n    {doc!r}\n    return opts\n\n"
        f"@hookimpl\ndef {kind_hook}(register):\n    register({name!r}, make)\n"
    )


def invoke(*args: str) -> click.testing.Result:
    return CliRunner().invoke(main, list(args), prog_name="lbpbench")


def test_version():
    result = invoke("--version")
    assert result.exit_code == 0
    assert result.output.strip() == f"lbpbench, version {lbpbench.__version__}"


def test_plugins_table(tmp_path):
    write_plugin(tmp_path, "table_plugin", "lbpbench_register_aggregators", "tabled", "Shown in the table.")
    result = invoke("--plugins-dir", str(tmp_path), "plugins")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["kind", "name", "plugin", "version", "description"]
    row = next(line for line in lines if " tabled " in line)
    assert row.split()[:4] == ["aggregator", "tabled", "table_plugin", "-"]
    assert row.endswith("Shown in the table.")


def test_plugins_json_lists_builtins_and_both_example_plugins(monkeypatch, signsgd_dist):
    monkeypatch.chdir(REPO)  # ./plugins holds the single-file example plugin
    # `plugins` runs no code from the working directory unless told to: it says how
    plain = invoke("plugins", "--json")
    assert plain.exit_code == 0, plain.output
    assert "median" not in {r["name"] for r in json.loads(plain.stdout)}
    assert "--plugins-dir plugins" in plain.stderr
    result = invoke("--plugins-dir", "plugins", "plugins", "--json")
    assert result.exit_code == 0, result.output
    assert "not loaded" not in result.stderr
    rows = json.loads(result.stdout)
    fields = {"kind", "name", "plugin", "version", "description", "source"}
    assert rows and all(set(r) == fields for r in rows)
    by_name = {(r["kind"], r["name"]): r for r in rows}
    median = by_name[("aggregator", "median")]
    assert median["plugin"] == "median_aggregator"
    assert median["source"] == str(REPO / "plugins" / "median_aggregator.py")
    signsgd = by_name[("baseline", "signsgd")]
    assert (signsgd["plugin"], signsgd["version"]) == ("lbpbench-signsgd", "0.1.0")
    builtins = [r for r in rows if r["plugin"].startswith("lbpbench.builtins.")]
    assert builtins, "no built-in components listed"
    assert all(r["version"] == lbpbench.__version__ for r in builtins)


@pytest.mark.parametrize("kind", KINDS)
def test_plugins_kind_filter(tmp_path, kind):
    write_plugin(tmp_path, "agg_plugin", "lbpbench_register_aggregators", "kind-agg")
    result = invoke("--plugins-dir", str(tmp_path), "plugins", "--json", "--kind", kind)
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert all(r["kind"] == kind for r in rows)
    assert any(r["name"] == "kind-agg" for r in rows) is (kind == "aggregator")


def test_plugins_dir_is_repeatable_and_exported(tmp_path):
    write_plugin(tmp_path / "a", "pa", "lbpbench_register_learners", "learner-a")
    write_plugin(tmp_path / "b", "pb", "lbpbench_register_tasks", "task-b")
    dirs = ["--plugins-dir", str(tmp_path / "a"), "--plugins-dir", str(tmp_path / "b")]
    result = invoke(*dirs, "plugins", "--json")
    assert result.exit_code == 0, result.output
    names = {r["name"] for r in json.loads(result.output)}
    assert {"learner-a", "task-b"} <= names
    # exported so that every get_registry() in this process and its workers sees the same folders
    assert str(tmp_path / "a") in os.environ[ENV_PLUGINS_DIR].split(os.pathsep)


def test_plugins_dir_env(tmp_path, monkeypatch):
    write_plugin(tmp_path, "envp", "lbpbench_register_baselines", "env-baseline")
    monkeypatch.setenv(ENV_PLUGINS_DIR, str(tmp_path))
    result = invoke("plugins", "--kind", "baseline")
    assert result.exit_code == 0 and "env-baseline" in result.output


def write_duplicates(folder: Path) -> None:
    write_plugin(folder, "dup_one", "lbpbench_register_aggregators", "twin")
    write_plugin(folder, "dup_two", "lbpbench_register_aggregators", "twin")
    write_plugin(folder, "bystander", "lbpbench_register_learners", "innocent")


def test_duplicates_are_listed_as_conflicts(tmp_path):
    write_duplicates(tmp_path)
    result = invoke("--plugins-dir", str(tmp_path), "plugins")
    assert result.exit_code == 0, result.output
    table, _, conflicts = result.stdout.partition("\nconflicts: ")
    assert conflicts, result.stdout
    # the conflicting name is not offered as a usable component; everything else is
    assert " twin " not in table and " innocent " in table and " mean " in table
    assert conflicts.startswith("1 name(s) registered more than once")
    rows = [line.split() for line in conflicts.splitlines()[1:]]
    assert rows[0] == ["kind", "name", "plugin", "version", "source"]
    assert rows[1:] == [
        ["aggregator", "twin", "dup_one", "-", str(tmp_path / "dup_one.py")],
        ["aggregator", "twin", "dup_two", "-", str(tmp_path / "dup_two.py")],
    ]


def test_duplicates_in_json_are_one_row_per_origin(tmp_path):
    write_duplicates(tmp_path)
    result = invoke("--plugins-dir", str(tmp_path), "plugins", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    twins = [r for r in rows if r["name"] == "twin"]
    assert [r["plugin"] for r in twins] == ["dup_one", "dup_two"]
    assert all(set(r) == {"kind", "name", "plugin", "version", "description", "source"} for r in rows)
    assert "conflict: duplicate aggregator 'twin'" in result.stderr


def test_kind_filter_applies_to_conflicts(tmp_path):
    write_duplicates(tmp_path)
    result = invoke("--plugins-dir", str(tmp_path), "plugins", "--kind", "learner")
    assert result.exit_code == 0, result.output
    assert "conflicts" not in result.stdout and "innocent" in result.stdout


def test_commands_that_build_components_refuse_duplicates(tmp_path):
    write_duplicates(tmp_path / "plugins")
    folder, out = str(tmp_path / "plugins"), str(tmp_path / "out")
    result = invoke("--plugins-dir", folder, "train", "--quiet", "--out", out)
    assert result.exit_code in (1, 2), result.output  # a refusal (run error or usage error), no traceback
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "duplicate aggregator 'twin'" in result.output
    assert "dup_one" in result.output and "dup_two" in result.output


def test_registry_from_context_refuses_duplicates(tmp_path):
    """The helper every command uses: a clean error naming both, unless listing."""
    write_duplicates(tmp_path)

    @click.command()
    @click.option("--listing", is_flag=True)
    def probe(listing: bool) -> None:
        reg = registry_from_context(allow_conflicts=listing)
        click.echo(f"{len(reg.conflicts)} conflict(s)")

    group = click.Group(commands={"probe": probe})
    runner = CliRunner()
    refused = runner.invoke(group, ["probe"], obj={"plugin_dirs": (str(tmp_path),)})
    assert refused.exit_code == 2  # bad input (the plugins), one line
    assert "duplicate aggregator 'twin'" in refused.output and "dup_two" in refused.output
    listed = runner.invoke(group, ["probe", "--listing"], obj={"plugin_dirs": (str(tmp_path),)})
    assert listed.exit_code == 0 and "1 conflict(s)" in listed.output


def test_broken_plugin_warns_but_lists_the_rest(tmp_path):
    write_plugin(tmp_path, "fine", "lbpbench_register_aggregators", "fine-agg")
    (tmp_path / "broken.py").write_text("raise RuntimeError('broken on purpose')\n")
    with pytest.warns(UserWarning, match="'broken'.*broken on purpose"):
        result = invoke("--plugins-dir", str(tmp_path), "plugins", "--json")
    assert result.exit_code == 0
    assert "fine-agg" in {r["name"] for r in json.loads(result.stdout)}


@pytest.mark.parametrize(
    "args",
    [
        ["no-such-command"],
        ["--no-such-option"],
        ["plugins", "--no-such-option"],
        ["plugins", "--kind", "widget"],
        ["--plugins-dir", "/no/such/folder/xyz", "plugins"],
    ],
)
def test_usage_errors_exit_2(args):
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    assert "Usage:" in result.output


def test_help_lists_commands():
    result = invoke("--help")
    assert result.exit_code == 0 and "plugins" in result.output


def test_lazy_command_that_fails_to_import_does_not_break_the_group():
    lazy = {"ok": "lbpbench.cli:plugins_command", "bad": "lbpbench_no_such_mod:cmd"}
    group = LazyGroup("g", lazy_commands=lazy)
    runner = CliRunner()
    listing = runner.invoke(group, ["--help"])
    assert listing.exit_code == 0 and "unavailable" in listing.output and "ok" in listing.output
    bad = runner.invoke(group, ["bad", "--anything"])
    assert bad.exit_code == 1 and "lbpbench_no_such_mod" in bad.output


def test_python_dash_m():
    out = subprocess.run(
        [sys.executable, "-m", "lbpbench", "--version"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"lbpbench, version {lbpbench.__version__}"
