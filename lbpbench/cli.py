"""The ``lbpbench`` command line: thin — it parses, calls the rooms, prints.

Adding a command is one line in ``COMMANDS`` below: ``"name": "module.path:attribute"`` of a
``click.Command`` (or ``click.Group``). Commands are imported only when used (or listed by
``--help``), so a slow or broken room never slows down or breaks the others.
"""

from __future__ import annotations

import importlib
import json
import os
from typing import Any

import click

import lbpbench
from lbpbench.registry import ENV_PLUGINS_DIR, KINDS, Registry, get_registry

# name -> "module:attribute" of a click command; one line per command.
COMMANDS: dict[str, str] = {
    "plugins": "lbpbench.cli:plugins_command",
    "sweep": "lbpbench.sweep.commands:sweep_group",
    "reference": "lbpbench.reference.commands:reference_group",
    "train": "lbpbench.harness.commands:train_command",
    "eval": "lbpbench.harness.commands:eval_command",
    "report": "lbpbench.report.commands:report_command",
    "compare": "lbpbench.report.commands:compare_command",
    "bench": "lbpbench.bench:bench_command",
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def __init__(self, *args: Any, lazy_commands: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands = lazy_commands if lazy_commands is not None else {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self.lazy_commands))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands or cmd_name not in self.lazy_commands:
            return super().get_command(ctx, cmd_name)
        target = self.lazy_commands[cmd_name]
        module_name, _, attr = target.partition(":")
        try:
            command = getattr(importlib.import_module(module_name), attr)
        except Exception as exc:  # noqa: BLE001 - a broken room must not break the other commands
            return _unavailable(cmd_name, target, exc)
        if not isinstance(command, click.Command):
            return _unavailable(cmd_name, target, TypeError(f"{target} is not a click command"))
        return command


def _unavailable(name: str, target: str, exc: Exception) -> click.Command:
    reason = f"{type(exc).__name__}: {exc}"

    @click.command(name, help=f"(unavailable: {reason})", context_settings={"ignore_unknown_options": True})
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    def command(args: tuple[str, ...]) -> None:
        raise click.ClickException(f"command {name!r} could not be loaded from {target}: {reason}")

    return command


def registry_from_context(ctx: click.Context | None = None, *, allow_conflicts: bool = False) -> Registry:
    """The registry with the group's ``--plugins-dir`` folders; for use by every command.

    Duplicate names refuse (a ClickException naming both origins) unless ``allow_conflicts``:
    only listing may go on, so the user can see what to remove.
    """
    ctx = ctx or click.get_current_context()
    obj = ctx.find_object(dict) or {}
    try:
        return get_registry(plugin_dirs=obj.get("plugin_dirs", ()), allow_conflicts=allow_conflicts)
    except (ValueError, RuntimeError) as exc:  # duplicate names, strict-mode plugin errors
        raise click.ClickException(str(exc)) from exc


@click.group(cls=LazyGroup, lazy_commands=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(lbpbench.__version__, "--version", prog_name="lbpbench")
@click.option(
    "--plugins-dir",
    "plugin_dirs",
    multiple=True,
    type=click.Path(exists=True, file_okay=False),
    help="Extra folder of *.py plugin files (repeatable; also LBPBENCH_PLUGINS_DIR).",
)
@click.pass_context
def main(ctx: click.Context, plugin_dirs: tuple[str, ...]) -> None:
    """lbpbench: a benchmark suite for learned learning protocols (MPLP and friends)."""
    ctx.ensure_object(dict)
    ctx.obj["plugin_dirs"] = plugin_dirs
    if plugin_dirs:
        # Export the folders so every get_registry() call in this process, and in worker processes
        # it starts, sees the same plugins.
        dirs = [os.path.abspath(d) for d in plugin_dirs]
        previous = os.environ.get(ENV_PLUGINS_DIR)
        os.environ[ENV_PLUGINS_DIR] = os.pathsep.join(dirs + ([previous] if previous else []))


@click.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
@click.option("--kind", type=click.Choice(KINDS), default=None, help="Only this component kind.")
@click.pass_context
def plugins_command(ctx: click.Context, as_json: bool, kind: str | None) -> None:
    """List every registered component: kind, name, origin plugin, version, description.

    Names registered by more than one plugin are listed under "conflicts" with every origin
    (exit code 0); commands that build components refuse until one is removed.
    """
    registry = registry_from_context(ctx, allow_conflicts=True)
    conflicts = [c for c in registry.conflicts if kind is None or c.kind == kind]
    clashing = {(c.kind, c.name) for c in conflicts}
    components = [c for c in registry.all(kind) if (c.kind, c.name) not in clashing]
    if as_json:
        # Every registration is a row; a conflicting name shows up once per origin.
        listed = components + [comp for c in conflicts for comp in c.components]
        listed.sort(key=lambda c: (KINDS.index(c.kind), c.name))
        click.echo(json.dumps([c.to_dict() for c in listed], indent=2, ensure_ascii=False))
        for conflict in conflicts:
            click.echo(f"conflict: {conflict.message()}", err=True)
        return
    header = ("kind", "name", "plugin", "version", "description")
    rows = [(c.kind, c.name, c.plugin, c.version or "-", c.description) for c in components]
    _echo_table(header, rows)
    if not rows:
        click.echo("(no components registered)", err=True)
    if conflicts:
        click.echo()
        click.echo(
            f"conflicts: {len(conflicts)} name(s) registered more than once; commands that build "
            "components refuse until one is removed (or left out with LBPBENCH_LOAD_PLUGINS)"
        )
        header = ("kind", "name", "plugin", "version", "source")
        rows = [
            (comp.kind, comp.name, comp.plugin, comp.version or "-", comp.source)
            for c in conflicts
            for comp in c.components
        ]
        _echo_table(header, rows)


def _echo_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    """Left-aligned columns; the last column is not padded (descriptions, paths run long)."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
    for row in [header, *rows]:
        cells = [cell.ljust(w) for cell, w in zip(row[:-1], widths, strict=True)]
        click.echo("  ".join([*cells, row[-1]]).rstrip())
