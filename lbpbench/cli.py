"""The ``lbpbench`` command line: thin — it parses, calls the rooms, prints.

Adding a command is one line in ``COMMANDS`` below: ``"name": "module.path:attribute"`` of a
``click.Command`` (or ``click.Group``). Commands are imported only when used (or listed by
``--help``), so a slow or broken room never slows down or breaks the others.

One exit-code contract for every command (README "Exit codes"), kept here by ``MainGroup.main``:
0 ok; 1 runs failed (or an internal error); 2 bad input — options, specs, damaged or missing input
files (``BadInput``, click usage errors, and any ``ValueError``/``OSError`` that reaches the top);
3 the results folder is in use by another sweep (``SweepLocked``); 130 interrupted (Ctrl-C).
A user error prints one line, never a traceback; ``lbpbench --debug`` (or ``LBPBENCH_DEBUG=1``)
lets the exception through with its traceback.

Plugins: ``./plugins`` of the working directory is loaded only by the commands that build
components (``BUILDS_COMPONENTS``); the others (``plugins``, ``report``, ``compare``) load it only
when named with ``--plugins-dir`` or ``LBPBENCH_PLUGINS_DIR`` (see ``lbpbench.registry``).
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import click

import lbpbench
from lbpbench.registry import (
    DEFAULT_PLUGINS_DIR,
    ENV_PLUGINS_DIR,
    KINDS,
    PluginContractError,
    PluginError,
    Registry,
    cwd_plugins_enabled,
    get_registry,
    set_cwd_plugins,
)

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_LOCKED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
ENV_DEBUG = "LBPBENCH_DEBUG"
#: Commands that build components, and so load ./plugins of the working directory automatically.
BUILDS_COMPONENTS = frozenset({"train", "eval", "sweep", "bench", "reference"})


class BadInput(click.ClickException):
    """A user error that is not about the command line's syntax: a bad value, a damaged or missing
    input file, a folder that cannot be written. One line, exit code 2."""

    exit_code = EXIT_USAGE

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
        raise BadInput(str(exc)) from exc


_debug = False


def _env_debug() -> bool:
    return os.environ.get(ENV_DEBUG, "").strip().lower() not in ("", "0", "false", "no", "off")


def error_exit_code(exc: BaseException) -> int:
    """The contract's exit code for an exception that reached the top of a command."""
    from lbpbench.sweep.store import SweepLocked

    if isinstance(exc, SweepLocked):
        return EXIT_LOCKED
    if isinstance(exc, KeyboardInterrupt | click.exceptions.Abort):
        return EXIT_INTERRUPTED
    if isinstance(exc, click.ClickException):
        return exc.exit_code
    if isinstance(exc, ValueError | OSError | PluginContractError | PluginError):
        return EXIT_USAGE
    return EXIT_FAILED


def error_line(exc: BaseException) -> str:
    """One line saying what went wrong: the file and the problem for an OSError."""
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.filename}: {exc.strerror or exc}"
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def stop_on_sigterm() -> None:
    """SIGTERM (`kill`, a job scheduler, a container stop) stops a command like Ctrl-C: runs in
    progress save their checkpoint and the exit code is 130. A job started in the background of a
    script (`cmd &`) ignores SIGINT, so SIGTERM is how it is stopped without losing work."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_interrupt)


class MainGroup(LazyGroup):
    """The top-level group: lazy subcommands plus the exit-code contract (module docstring)."""

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        if not standalone_mode:  # the caller handles exceptions itself
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        global _debug
        _debug = _env_debug()
        stop_on_sigterm()
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
            code = rv if isinstance(rv, int) and not isinstance(rv, bool) else EXIT_OK
        except click.exceptions.Abort as exc:  # click's name for KeyboardInterrupt (and EOF)
            interrupted = isinstance(exc.__cause__, KeyboardInterrupt) or exc.__cause__ is None
            click.echo("interrupted" if interrupted else "aborted", err=True)
            code = EXIT_INTERRUPTED if interrupted else EXIT_FAILED
        except KeyboardInterrupt:
            click.echo("\ninterrupted", err=True)
            code = EXIT_INTERRUPTED
        except click.ClickException as exc:
            exc.show()
            code = exc.exit_code
        except Exception as exc:  # noqa: BLE001 - the contract: one line and an exit code, no traceback
            if _debug:
                raise
            code = error_exit_code(exc)
            hint = "" if code == EXIT_USAGE else \
                f" ({type(exc).__name__}; `lbpbench --debug ...` shows the traceback)"
            click.echo(f"error: {error_line(exc)}{hint}", err=True)
        sys.exit(code)


@click.group(cls=MainGroup, lazy_commands=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(lbpbench.__version__, "--version", prog_name="lbpbench")
@click.option(
    "--plugins-dir",
    "plugin_dirs",
    multiple=True,
    type=click.Path(exists=True, file_okay=False),
    help="Extra folder of *.py plugin files (repeatable; also LBPBENCH_PLUGINS_DIR).",
)
@click.option("--debug", is_flag=True, help="Show the Python traceback of an error (also LBPBENCH_DEBUG=1).")
@click.pass_context
def main(ctx: click.Context, plugin_dirs: tuple[str, ...], debug: bool) -> None:
    """lbpbench: a benchmark suite for learned learning protocols (MPLP and friends).

    Exit codes: 0 ok, 1 runs failed, 2 bad input, 3 results folder in use, 130 interrupted.
    """
    global _debug
    _debug = _debug or debug
    ctx.ensure_object(dict)
    ctx.obj["plugin_dirs"] = plugin_dirs
    # Only commands that build components load ./plugins of the working directory by themselves.
    cwd_plugins_before = set_cwd_plugins(ctx.invoked_subcommand in BUILDS_COMPONENTS)
    ctx.call_on_close(lambda: set_cwd_plugins(cwd_plugins_before))
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
    local = Path.cwd() / DEFAULT_PLUGINS_DIR
    if local.is_dir() and not cwd_plugins_enabled() and str(local.resolve()) not in {
            str(Path(d).resolve()) for d in os.environ.get(ENV_PLUGINS_DIR, "").split(os.pathsep) if d}:
        click.echo(f"note: ./{DEFAULT_PLUGINS_DIR} is not loaded by this command (it runs code from the "
                   "working directory); list it with "
                   f"`lbpbench --plugins-dir {DEFAULT_PLUGINS_DIR} plugins`. "
                   "train, eval, sweep run, bench and reference load it.", err=True)
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
