"""The component registry: one pluggy plugin manager, three sources of plugins.

Loading order (a later source cannot shadow an earlier one: a duplicate name is an error):

1. built-ins — every module in the package ``lbpbench.builtins`` (always loaded);
2. setuptools entry points of group ``lbpbench`` (plugin = distribution name and version);
3. every top-level ``*.py`` file in the plugin folders: ``./plugins`` (relative to the current
   directory, when present and allowed: see below), the ``plugin_dirs`` argument (the CLI's
   ``--plugins-dir``), and ``LBPBENCH_PLUGINS_DIR`` (``os.pathsep``-separated).

Loading ``./plugins`` runs code from whatever folder a process works in, so it is a deliberate
choice: ``set_cwd_plugins(False)`` turns it off for the process (the CLI does for every command that
builds no components: ``plugins``, ``report``, ``compare``, ``sweep status|ls``), and
``LBPBENCH_CWD_PLUGINS=0`` turns it off everywhere. Library use keeps it on.

Environment:

- ``LBPBENCH_LOAD_PLUGINS=a,b`` — load only these external plugins (entry-point names or
  distribution names, plugin-file stems); ``''`` loads none; unset loads all. Built-ins always load.
- ``LBPBENCH_STRICT_PLUGINS=1`` — a plugin that fails to load raises ``PluginError`` instead of
  warning (``PluginLoadWarning``) and being skipped.

Two registrations of one name within one kind are a *conflict*: both are recorded
(``Registry.conflicts``), ``get_registry()``/``build_registry()`` raise ``DuplicateComponentError``
naming both origins, and only ``allow_conflicts=True`` (``lbpbench plugins``, which lists them)
returns the registry; even then ``get``/``create`` of a conflicting name raise.

``Registry.create`` checks every product against its kind's Protocol in ``lbpbench.contracts``
and raises ``PluginContractError`` (a ``TypeError``) naming the plugin and what is missing.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import os
import pkgutil
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pluggy

import lbpbench
from lbpbench import hookspecs
from lbpbench.contracts import PluginContractError, contract_problems

__all__ = [
    "KINDS",
    "Component",
    "Conflict",
    "DuplicateComponentError",
    "PluginContractError",
    "PluginError",
    "PluginInfo",
    "PluginLoadWarning",
    "Registry",
    "build_registry",
    "clear_cache",
    "get_registry",
    "set_cwd_plugins",
    "cwd_plugins_enabled",
]

KINDS: tuple[str, ...] = ("node_type", "aggregator", "learner", "task", "baseline")
HOOKS: dict[str, str] = {
    "node_type": "lbpbench_register_node_types",
    "aggregator": "lbpbench_register_aggregators",
    "learner": "lbpbench_register_learners",
    "task": "lbpbench_register_tasks",
    "baseline": "lbpbench_register_baselines",
}
ENTRY_POINT_GROUP = "lbpbench"
BUILTINS_PACKAGE = "lbpbench.builtins"
DEFAULT_PLUGINS_DIR = "plugins"
ENV_PLUGINS_DIR = "LBPBENCH_PLUGINS_DIR"
ENV_LOAD_PLUGINS = "LBPBENCH_LOAD_PLUGINS"
ENV_STRICT = "LBPBENCH_STRICT_PLUGINS"
ENV_CWD_PLUGINS = "LBPBENCH_CWD_PLUGINS"
_FILE_MODULE_PREFIX = "lbpbench_plugin"


class PluginError(RuntimeError):
    """A plugin failed to load while ``LBPBENCH_STRICT_PLUGINS=1``."""


class PluginLoadWarning(UserWarning):
    """A plugin failed to load and was skipped."""


class DuplicateComponentError(ValueError):
    """Two plugins (or one plugin twice) registered the same component name within one kind."""

    def __init__(self, message: str, conflicts: Sequence[Conflict] = ()) -> None:
        super().__init__(message)
        self.conflicts = list(conflicts)

    @classmethod
    def of(cls, conflicts: Sequence[Conflict]) -> DuplicateComponentError:
        hint = "remove one, or load only one with LBPBENCH_LOAD_PLUGINS; `lbpbench plugins` lists both"
        return cls("; ".join(c.message() for c in conflicts) + f" ({hint})", conflicts)


@dataclass(frozen=True)
class Component:
    """One registered component."""

    kind: str
    name: str
    factory: Callable[..., Any]
    plugin: str  # origin: built-in module name, distribution name, or plugin-file stem
    version: str  # lbpbench's version for built-ins, the distribution's version, or the file's __version__
    description: str = ""
    source: str = ""  # where the plugin came from: module, "entry point NAME = VALUE", or file path

    def create(self, **kwargs: Any) -> Any:
        """``factory(**kwargs)``, checked against the kind's Protocol in ``lbpbench.contracts``."""
        obj = self.factory(**kwargs)
        problems = contract_problems(self.kind, obj, self.factory)
        if problems:
            raise PluginContractError(
                self.kind,
                self.name,
                self.plugin,
                self.source,
                problems,
                hint=f"See the {HOOKS[self.kind]} hook in lbpbench.hookspecs and lbpbench.contracts",
            )
        return obj

    def to_dict(self) -> dict[str, str]:
        return {
            "kind": self.kind,
            "name": self.name,
            "plugin": self.plugin,
            "version": self.version,
            "description": self.description,
            "source": self.source,
        }


@dataclass(frozen=True)
class Conflict:
    """One name registered more than once within a kind, with every registration in load order."""

    kind: str
    name: str
    components: tuple[Component, ...]

    def message(self) -> str:
        """``duplicate aggregator 'x': registered by plugin 'a' (src) and by plugin 'b' (src)``."""
        origins = {(c.plugin, c.source) for c in self.components}
        head = f"duplicate {self.kind} {self.name!r}"
        if len(origins) == 1:
            first = self.components[0]
            times = "twice" if len(self.components) == 2 else f"{len(self.components)} times"
            return f"{head}: registered {times} by plugin {first.plugin!r} ({first.source})"
        parts = [f"by plugin {c.plugin!r} ({c.source})" for c in self.components]
        return f"{head}: registered {', '.join(parts[:-1])} and {parts[-1]}"


@dataclass(frozen=True)
class PluginInfo:
    """One loaded plugin (it may register zero or more components)."""

    name: str
    version: str
    source: str
    builtin: bool = False


@dataclass
class Registry:
    """Components by kind and name, with the plugins they came from."""

    components: dict[str, dict[str, Component]] = field(default_factory=lambda: {k: {} for k in KINDS})
    plugins: list[PluginInfo] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # plugins skipped with a warning, and why
    conflicts: list[Conflict] = field(default_factory=list)  # names registered more than once

    kinds: tuple[str, ...] = KINDS

    def _kind(self, kind: str) -> dict[str, Component]:
        try:
            return self.components[kind]
        except KeyError:
            raise ValueError(f"unknown component kind {kind!r}; kinds: {', '.join(KINDS)}") from None

    def names(self, kind: str) -> list[str]:
        """Sorted names registered for ``kind``."""
        return sorted(self._kind(kind))

    def get(self, kind: str, name: str) -> Component:
        """The component; ``ValueError`` for an unknown name, ``DuplicateComponentError`` for a
        name in conflict (only a registry built with ``allow_conflicts=True`` holds one)."""
        comps = self._kind(kind)
        try:
            comp = comps[name]
        except KeyError:
            registered = ", ".join(sorted(comps)) or "(none)"
            raise ValueError(f"unknown {kind} {name!r}; registered: {registered}") from None
        conflict = self.conflict(kind, name)
        if conflict is not None:
            raise DuplicateComponentError.of([conflict])
        return comp

    def create(self, kind: str, name: str, /, **kwargs: Any) -> Any:
        """``get(kind, name).factory(**kwargs)``, checked against the kind's Protocol.

        ``kind`` and ``name`` are positional-only, so factory options may use those names too
        (node types take ``name=``). Raises ``PluginContractError`` (a ``TypeError``) naming the
        kind, the component, its plugin and origin, and what the product lacks.
        """
        return self.get(kind, name).create(**kwargs)

    def conflict(self, kind: str, name: str) -> Conflict | None:
        """The conflict over ``name`` within ``kind``, if any."""
        return next((c for c in self.conflicts if (c.kind, c.name) == (kind, name)), None)

    def check_conflicts(self) -> None:
        """Raise ``DuplicateComponentError`` naming every origin of every conflicting name."""
        if self.conflicts:
            raise DuplicateComponentError.of(self.conflicts)

    def all(self, kind: str | None = None) -> list[Component]:
        """Every component (of ``kind`` when given), ordered by kind then name."""
        kinds = KINDS if kind is None else (kind,)
        return [self._kind(k)[n] for k in kinds for n in self.names(k)]

    def __contains__(self, item: tuple[str, str]) -> bool:
        kind, name = item
        return name in self.components.get(kind, {})

    def __iter__(self) -> Iterator[Component]:
        return iter(self.all())

    def __len__(self) -> int:
        return sum(len(v) for v in self.components.values())

    def _add(self, comp: Component) -> None:
        """Add one component; a second registration of its name is recorded as a conflict."""
        comps = self._kind(comp.kind)
        if comp.name not in comps:
            comps[comp.name] = comp
            return
        previous = self.conflict(comp.kind, comp.name)
        if previous is None:
            self.conflicts.append(Conflict(comp.kind, comp.name, (comps[comp.name], comp)))
        else:
            index = self.conflicts.index(previous)
            self.conflicts[index] = Conflict(comp.kind, comp.name, (*previous.components, comp))


# --------------------------------------------------------------------------------------------
# loading


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no", "off")


def _load_filter() -> set[str] | None:
    """Names from LBPBENCH_LOAD_PLUGINS; None when unset (= load everything)."""
    raw = os.environ.get(ENV_LOAD_PLUGINS)
    if raw is None:
        return None
    return {part.strip() for part in raw.split(",") if part.strip()}


def _first_doc_line(factory: Any) -> str:
    doc = getattr(factory, "__doc__", None)
    func = getattr(factory, "func", None)  # functools.partial
    if func is not None and doc == type(factory).__doc__:
        doc = getattr(func, "__doc__", None)
    if not doc:
        return ""
    for line in doc.strip().splitlines():
        if line.strip():
            return line.strip()
    return ""


_cwd_plugins = True


def set_cwd_plugins(enabled: bool) -> bool:
    """Whether this process loads ./plugins of its working directory; returns the previous setting.
    (LBPBENCH_CWD_PLUGINS=0 keeps it off whatever this says.)"""
    global _cwd_plugins
    previous, _cwd_plugins = _cwd_plugins, bool(enabled)
    return previous


def cwd_plugins_enabled() -> bool:
    """True when ./plugins of the working directory is loaded (when it exists)."""
    raw = os.environ.get(ENV_CWD_PLUGINS)
    return _cwd_plugins and (raw is None or raw.strip() == "" or _env_flag(ENV_CWD_PLUGINS))


def _plugin_dirs(plugin_dirs: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """./plugins (when present and enabled), then plugin_dirs, then LBPBENCH_PLUGINS_DIR; deduplicated."""
    candidates: list[Path] = []
    default = Path.cwd() / DEFAULT_PLUGINS_DIR
    if cwd_plugins_enabled() and default.is_dir():
        candidates.append(default)
    candidates.extend(Path(d) for d in plugin_dirs)
    env = os.environ.get(ENV_PLUGINS_DIR, "")
    candidates.extend(Path(d) for d in env.split(os.pathsep) if d.strip())
    seen: set[Path] = set()
    out: list[Path] = []
    for d in candidates:
        resolved = d.expanduser().resolve()
        if resolved not in seen:
            seen.add(resolved)
            out.append(resolved)
    return out


def _import_file(path: Path) -> ModuleType:
    """Import one plugin file under a unique module name (fresh on every load)."""
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:10]
    mod_name = f"{_FILE_MODULE_PREFIX}_{path.stem}_{digest}"
    spec = importlib.util.spec_from_file_location(mod_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module  # so dataclasses/pickle can find the module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(mod_name, None)
        raise
    return module


class _Loader:
    """Builds one Registry; a fresh PluginManager per build so nothing leaks between builds."""

    def __init__(self, strict: bool) -> None:
        self.strict = strict
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.registry = Registry()

    def fail(self, plugin: str, source: str, exc: BaseException) -> None:
        reason = f"{type(exc).__name__}: {exc}"
        message = f"lbpbench plugin {plugin!r} ({source}) was not loaded: {reason}"
        if self.strict:
            raise PluginError(message) from exc
        self.registry.problems.append(message)
        warnings.warn(message, PluginLoadWarning, stacklevel=2)

    def add(self, obj: Callable[[], Any], info: PluginInfo) -> None:
        """Import (via ``obj()``), register, validate and call one plugin's hooks."""
        pm_name = f"{info.name} [{info.source}]"
        try:
            plugin = obj()
            if self.pm.is_registered(plugin):
                raise ValueError(f"already loaded as {self.pm.get_name(plugin)!r}")
            self.pm.register(plugin, name=pm_name)  # wrong argument names: PluginValidationError
            self.pm.check_pending()  # misspelled hook names: PluginValidationError
        except Exception as exc:  # noqa: BLE001 - any import/validation error isolates the plugin
            if self.pm.has_plugin(pm_name):  # pluggy leaves a half-registered plugin behind
                self.pm.unregister(name=pm_name)
            self.fail(info.name, info.source, exc)
            return
        if not info.version:  # a plugin file may declare __version__
            version = str(getattr(plugin, "__version__", "") or "")
            info = PluginInfo(info.name, version, info.source, info.builtin)
        staged: list[Component] = []
        for kind, hook_name in HOOKS.items():
            register = self._register_callback(kind, info, staged)
            for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
                if impl.plugin is not plugin:
                    continue
                kwargs = {"register": register}
                try:
                    impl.function(**{arg: kwargs[arg] for arg in impl.argnames})
                except Exception as exc:  # noqa: BLE001 - a hook that crashes isolates its plugin
                    self.pm.unregister(name=pm_name)
                    self.fail(info.name, info.source, exc)
                    return
        for comp in staged:
            self.registry._add(comp)  # a name already taken becomes a conflict, reported by the caller
        self.registry.plugins.append(info)

    def _register_callback(self, kind: str, info: PluginInfo, staged: list[Component]) -> hookspecs.Register:
        """The ``register`` callback handed to one plugin's hook for one kind."""

        def register(name: str, factory: Callable[..., Any], description: str | None = None) -> None:
            if not isinstance(name, str) or not name:
                raise TypeError(f"component name must be a non-empty str, got {name!r}")
            if not callable(factory):
                raise TypeError(f"factory for {kind} {name!r} is not callable: {factory!r}")
            comp = Component(
                kind=kind,
                name=name,
                factory=factory,
                plugin=info.name,
                version=info.version,
                description=(description if description is not None else _first_doc_line(factory)),
                source=info.source,
            )
            staged.append(comp)  # duplicates become conflicts when the plugin's components are added

        return register

    # -- the three sources ------------------------------------------------------------------

    def load_builtins(self) -> None:
        package = importlib.import_module(BUILTINS_PACKAGE)
        for mod in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
            if mod.name.startswith("_"):
                continue
            module_name = f"{BUILTINS_PACKAGE}.{mod.name}"
            info = PluginInfo(module_name, lbpbench.__version__, module_name, builtin=True)
            self.add(lambda n=module_name: importlib.import_module(n), info)

    def load_entry_points(self, wanted: set[str] | None) -> None:
        eps = sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name)
        for ep in eps:
            dist = getattr(ep, "dist", None)
            dist_name = dist.metadata["Name"] if dist is not None else ep.name
            version = dist.version if dist is not None else ""
            if wanted is not None and ep.name not in wanted and dist_name not in wanted:
                continue
            info = PluginInfo(name=dist_name, version=version, source=f"entry point {ep.name} = {ep.value}")
            self.add(ep.load, info)

    def load_dirs(self, dirs: Sequence[Path], wanted: set[str] | None) -> None:
        for directory in dirs:
            if not directory.is_dir():
                self.fail(str(directory), "plugin folder", FileNotFoundError(f"no such folder: {directory}"))
                continue
            for path in sorted(directory.glob("*.py")):
                if path.name.startswith("_") or (wanted is not None and path.stem not in wanted):
                    continue
                info = PluginInfo(name=path.stem, version="", source=str(path))
                self.add(lambda p=path: _import_file(p), info)


def build_registry(
    plugin_dirs: Iterable[str | os.PathLike[str]] = (), *, allow_conflicts: bool = False
) -> Registry:
    """Build a fresh Registry (no cache): built-ins, entry points, plugin folders.

    A name registered twice raises ``DuplicateComponentError`` naming both origins, unless
    ``allow_conflicts`` (listing): then the registry records it in ``conflicts``.
    """
    loader = _Loader(strict=_env_flag(ENV_STRICT))
    wanted = _load_filter()
    loader.load_builtins()
    loader.load_entry_points(wanted)
    loader.load_dirs(_plugin_dirs(plugin_dirs), wanted)
    if not allow_conflicts:
        loader.registry.check_conflicts()
    return loader.registry


_CACHE: dict[tuple[Any, ...], Registry] = {}


def get_registry(
    plugin_dirs: Iterable[str | os.PathLike[str]] = (),
    refresh: bool = False,
    *,
    allow_conflicts: bool = False,
) -> Registry:
    """The process-wide registry, cached per (plugin folders, current directory, environment).

    ``refresh=True`` rebuilds it (re-importing plugin files) and replaces the cached one.
    A registry with conflicting names raises ``DuplicateComponentError`` on every call unless
    ``allow_conflicts`` (the ``lbpbench plugins`` listing).
    """
    dirs = tuple(str(Path(d).expanduser().resolve()) for d in plugin_dirs)
    key = (
        dirs,
        str(Path.cwd()),
        os.environ.get(ENV_PLUGINS_DIR),
        os.environ.get(ENV_LOAD_PLUGINS),
        _env_flag(ENV_STRICT),
        cwd_plugins_enabled(),
    )
    if refresh or key not in _CACHE:
        _CACHE[key] = build_registry(dirs, allow_conflicts=True)
    registry = _CACHE[key]
    if not allow_conflicts:
        registry.check_conflicts()
    return registry


def clear_cache() -> None:
    """Forget every cached registry (tests; long-lived processes after installing a plugin)."""
    _CACHE.clear()
