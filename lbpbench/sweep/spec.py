"""Sweep specs: parse a TOML file, validate it completely, expand it into RunConfigs.

A spec is validated *before* anything runs or is written, because a typo found after an hour of
runs wastes the hour; every error names the offending key and its line in the TOML file.

Format::

    [sweep]
    name = "aggregators"

    [fixed]                      # RunConfig fields shared by every run
    task = "sinusoid-5x10"
    meta_steps = 100

    [axes]                       # RunConfig field -> list of values, crossed as a product
    learner = ["stateless", "stateful"]
    aggregator = ["mean", "sum", "rnn"]
    seed = [0, 1]
    baselines = ["adam"]         # extra runs with `baseline` set, crossed with task and seed only
    preset = ["paper", "fast"]   # a named recipe (lbpbench.harness.presets), also allowed in [fixed]

    [[exclude]]                  # drop product points matching every given field (value or list)
    learner = "stateless"
    aggregator = "rnn"

    [[include]]                  # add explicit points (fixed + these fields; lists are crossed;
                                 # without a seed, crossed with the seed axis)
    learner = "stateful"
    aggregator = "rnn"
    message_size = 16

Exclude rules apply to learned runs; they apply to baseline runs only when every key they name is
one a baseline run varies over (`baseline`, `task`, `seed`), so `{learner = "stateful"}` never
removes the Adam baseline that happens to carry the default learner field.

A `preset` fills in the outer-loop settings it names wherever the point does not give them itself
(an explicit [fixed] or axis value wins); baseline runs are crossed with a preset axis too.
"""

from __future__ import annotations

import importlib.resources
import itertools
import json
import re
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lbpbench.harness.config import COMPONENT_FIELDS, RunConfig, field_types, validate_fields
from lbpbench.harness.presets import PRESET_KEY, PRESETS, apply_preset

#: The fields a baseline run varies over (the rest come from [fixed]).
BASELINE_AXES = ("baseline", "task", "seed")
TOP_LEVEL_KEYS = ("sweep", "fixed", "axes", "exclude", "include")
SWEEP_KEYS = ("name", "description")
BASELINES_AXIS = "baselines"

#: kind -> sorted registered names, or None when no registry is importable (check skipped).
NamesFn = Callable[[str], "list[str] | None"]


class SpecError(ValueError):
    """An invalid sweep spec; `key` and `line` point at the offending place in the TOML source."""

    def __init__(self, message: str, *, key: str | None = None, line: int | None = None,
                 source: str | None = None) -> None:
        self.message = message
        self.key = key
        self.line = line
        self.source = source
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.source or "<spec>"
        if self.line is not None:
            where += f":{self.line}"
        key = f" [{self.key}]" if self.key else ""
        return f"{where}:{key} {self.message}"


@dataclass
class SweepSpec:
    """A parsed, validated sweep spec. `expand()` turns it into the list of runs."""

    name: str
    fixed: dict[str, Any] = field(default_factory=dict)
    axes: dict[str, list[Any]] = field(default_factory=dict)
    baselines: list[str] = field(default_factory=list)
    exclude: list[dict[str, Any]] = field(default_factory=list)
    include: list[dict[str, Any]] = field(default_factory=list)
    description: str | None = None
    source: str | None = None

    def to_toml(self) -> str:
        """The resolved spec (after --set overrides) as TOML; stored as results/<sweep>/sweep.toml."""
        lines = ["[sweep]", f"name = {_toml_value(self.name)}"]
        if self.description:
            lines.append(f"description = {_toml_value(self.description)}")
        lines += ["", "[fixed]"] + [f"{k} = {_toml_value(v)}" for k, v in self.fixed.items() if v is not None]
        axes = dict(self.axes)
        if self.baselines:
            axes[BASELINES_AXIS] = self.baselines
        lines += ["", "[axes]"] + [f"{k} = {_toml_value(v)}" for k, v in axes.items()]
        for table, rules in (("exclude", self.exclude), ("include", self.include)):
            for rule in rules:
                lines += ["", f"[[{table}]]"] + [f"{k} = {_toml_value(v)}" for k, v in rule.items()]
        return "\n".join(lines) + "\n"

    def expand(self) -> list[RunConfig]:
        """Every run of the sweep, in a stable order, duplicates removed."""
        return expand(self)


# --------------------------------------------------------------------------------------------- loading

def default_spec_text() -> str:
    """The embedded default sweep (lbpbench/sweep/default.toml)."""
    return importlib.resources.files("lbpbench.sweep").joinpath("default.toml").read_text(encoding="utf-8")


def load_spec(path: str | Path | None = None, overrides: Iterable[str] = (), *,
              names: NamesFn | None = None) -> SweepSpec:
    """Read and validate a spec file (None: the embedded default), applying `--set` overrides.

    `names` maps a registry kind to its registered names; by default the real registry is used, and
    when it cannot be imported the component-name check is skipped (with a warning).
    """
    if path is None:
        return parse_spec(default_spec_text(), source="<default sweep>", overrides=overrides, names=names)
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"cannot read spec: {exc.strerror or exc}", source=str(p)) from exc
    except UnicodeDecodeError as exc:
        raise SpecError(f"not a UTF-8 text file (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}); "
                        "a sweep spec is TOML", source=str(p)) from None
    return parse_spec(text, source=str(p), overrides=overrides, names=names)


def parse_spec(text: str, *, source: str | None = None, overrides: Iterable[str] = (),
               names: NamesFn | None = None) -> SweepSpec:
    """Parse and fully validate TOML text; raises SpecError at the first problem found."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"at line (\d+)", str(exc))
        line = int(m.group(1)) if m else (len(text.splitlines()) or None)
        raise SpecError(f"invalid TOML: {exc}", line=line, source=source) from exc
    lines = _Lines(text)
    from_set: dict[str, str] = {}  # axis or fixed key -> the --set item that replaced it

    def err(msg: str, key: str | None, section: str | None = None, occurrence: int = 0) -> SpecError:
        if key in from_set and section in ("axes", "fixed"):
            return SpecError(msg, key=key, source=f"--set {from_set[key]}")
        return SpecError(msg, key=key, line=lines.find(key, section, occurrence) if key else None,
                         source=source)

    for key in data:
        if key not in TOP_LEVEL_KEYS:
            raise err(f"unknown table or key {key!r}; allowed: {', '.join(TOP_LEVEL_KEYS)}", key)
    for key in ("sweep", "fixed", "axes"):
        if key in data and not isinstance(data[key], dict):
            raise err(f"{key!r} must be a table ([{key}])", key)
    for key in ("exclude", "include"):
        if key in data and not (isinstance(data[key], list) and all(isinstance(r, dict) for r in data[key])):
            raise err(f"{key!r} must be an array of tables ([[{key}]])", key)

    sweep = data.get("sweep", {})
    for key in sweep:
        if key not in SWEEP_KEYS:
            raise err(f"unknown key in [sweep]: {key!r}; allowed: {', '.join(SWEEP_KEYS)}", key, "sweep")
    if "name" not in sweep:
        raise err("[sweep] needs a name = \"...\"", "sweep" if "sweep" in data else None)
    name = sweep["name"]
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        raise err(f"sweep name must be a non-empty string of letters, digits, '.', '_' or '-'; got {name!r}",
                  "name", "sweep")
    description = sweep.get("description")
    if description is not None and not isinstance(description, str):
        raise err("description must be a string", "description", "sweep")

    types = field_types()
    fixed: dict[str, Any] = dict(data.get("fixed", {}))
    axes: dict[str, Any] = dict(data.get("axes", {}))
    for key, value in fixed.items():
        if key not in types and key != PRESET_KEY:
            raise err(_unknown_field(key, types, extra=(PRESET_KEY,)), key, "fixed")
        _check_value(key, value, lambda m, k=key: err(m, k, "fixed"))
    for key, values in axes.items():
        if key not in (BASELINES_AXIS, PRESET_KEY) and key not in types:
            raise err(_unknown_field(key, types, extra=(BASELINES_AXIS, PRESET_KEY)), key, "axes")
        if not isinstance(values, list):
            raise err(f"axis {key!r} must be a list of values, got {values!r}", key, "axes")
        if not values:
            raise err(f"axis {key!r} is empty", key, "axes")
        if key in fixed:
            raise err(f"{key!r} is both in [fixed] and in [axes]", key, "axes")
        check_key = "baseline" if key == BASELINES_AXIS else key
        for v in values:
            _check_value(check_key, v, lambda m, k=key: err(m, k, "axes"))
    rules: dict[str, list[dict[str, Any]]] = {}
    for table in ("exclude", "include"):
        rules[table] = []
        for i, rule in enumerate(data.get(table, [])):
            if not rule:
                raise err(f"[[{table}]] #{i + 1} is empty", table, None, i)
            for key, value in rule.items():
                if key not in types:
                    raise err(_unknown_field(key, types), key, table, i)
                vals = _rule_values(key, value, types)
                if not vals:
                    raise err(f"{key!r} in [[{table}]] is an empty list", key, table, i)
                for v in vals:
                    _check_value(key, v, lambda m, k=key, t=table, j=i: err(m, k, t, j))
            rules[table].append(dict(rule))

    # --set overrides replace an axis (or a fixed value) wholesale
    for item in overrides:
        key, values = parse_set(item)
        serr = lambda m, k=key, it=item: SpecError(m, key=k, source=f"--set {it}")  # noqa: E731
        if key not in (BASELINES_AXIS, PRESET_KEY) and key not in types:
            raise serr(_unknown_field(key, types, extra=(BASELINES_AXIS, PRESET_KEY)))
        if not values:
            raise serr(f"--set {key}= gives no values")
        for v in values:
            _check_value("baseline" if key == BASELINES_AXIS else key, v, serr)
        if key in axes or len(values) > 1 or key == BASELINES_AXIS:
            fixed.pop(key, None)
            axes[key] = values
        else:  # one value for a fixed setting stays fixed, so baseline runs get it too
            fixed[key] = values[0]
        from_set[key] = item

    baselines = axes.pop(BASELINES_AXIS, [])
    spec = SweepSpec(name=name, fixed=fixed, axes=axes, baselines=list(baselines), exclude=rules["exclude"],
                     include=rules["include"], description=description, source=source)
    _check_components(spec, err, names)
    # finally: every expanded point must build a RunConfig (catches cross-field problems)
    try:
        runs = expand(spec)
    except ValueError as exc:
        raise SpecError(f"a run of this sweep is invalid: {exc}", source=source) from exc
    if not runs:
        raise SpecError("the sweep expands to no runs (every point excluded?)", source=source)
    if names is None:  # the real registry: every run must be able to start (families, resources)
        _check_runs(spec, runs, err)
    return spec


def parse_set(item: str) -> tuple[str, list[Any]]:
    """Parse `--set axis=v1,v2` with TOML value syntax; bare words are strings (`aggregator=mean,sum`)."""
    if "=" not in item:
        raise SpecError(f"--set needs axis=v1,v2; got {item!r}", source=f"--set {item}")
    key, _, rhs = item.partition("=")
    key = key.strip()
    rhs = rhs.strip()
    if not rhs:
        return key, []
    try:
        return key, list(tomllib.loads(f"v = [{rhs}]")["v"])
    except tomllib.TOMLDecodeError:
        pass
    values: list[Any] = []
    for part in rhs.split(","):
        part = part.strip()
        try:
            values.append(tomllib.loads(f"v = {part}")["v"])
        except tomllib.TOMLDecodeError:
            values.append(part)
    return key, values


# ------------------------------------------------------------------------------------------- expansion

def expand(spec: SweepSpec) -> list[RunConfig]:
    """Product of the axes minus excluded points, plus baseline runs, plus explicit include points."""
    points: list[dict[str, Any]] = []
    keys = list(spec.axes)
    for combo in itertools.product(*(spec.axes[k] for k in keys)):
        point = apply_preset({**spec.fixed, **dict(zip(keys, combo, strict=True))})
        if not any(_matches(rule, point, baseline_run=bool(point.get("baseline"))) for rule in spec.exclude):
            points.append(point)
    if spec.baselines:
        b_keys = [k for k in ("task", "seed", PRESET_KEY) if k in spec.axes]
        for combo in itertools.product(spec.baselines, *(spec.axes[k] for k in b_keys)):
            varied = dict(zip(b_keys, combo[1:], strict=True))
            point = apply_preset({**spec.fixed, "baseline": combo[0], **varied})
            if not any(_matches(rule, point, baseline_run=True) for rule in spec.exclude):
                points.append(point)
    types = field_types()
    for rule in spec.include:
        keys = list(rule)
        lists = [_rule_values(k, rule[k], types) for k in keys]
        if "seed" not in rule and "seed" in spec.axes:  # replicates like every other point
            keys.append("seed")
            lists.append(spec.axes["seed"])
        for combo in itertools.product(*lists):
            points.append(apply_preset({**spec.fixed, **dict(zip(keys, combo, strict=True))}))
    configs: list[RunConfig] = []
    seen: set[str] = set()
    for point in points:
        config = RunConfig.from_dict(point)
        key = json.dumps(config.to_dict(), sort_keys=True)
        if key not in seen:
            seen.add(key)
            configs.append(config)
    return configs


def _rule_values(key: str, value: Any, types: dict[str, str]) -> list[Any]:
    if types[key].startswith("list["):
        return value if (isinstance(value, list) and value and all(isinstance(v, list) for v in value)) \
            else [value]
    return value if isinstance(value, list) else [value]


def _matches(rule: dict[str, Any], point: dict[str, Any], *, baseline_run: bool) -> bool:
    if baseline_run and not set(rule) <= set(BASELINE_AXES):
        return False
    types = field_types()
    defaults = RunConfig().to_dict()
    for key, value in rule.items():
        actual = point.get(key, defaults[key])
        if actual not in _rule_values(key, value, types):
            return False
    return True


# ------------------------------------------------------------------------------------------ validation

def _unknown_field(key: str, types: dict[str, str], extra: tuple[str, ...] = ()) -> str:
    return f"unknown run setting {key!r}; known: {', '.join([*types, *extra])}"


def _check_value(key: str, value: Any, fail: Callable[[str], SpecError]) -> None:
    if key == PRESET_KEY:
        if value not in PRESETS:
            raise fail(f"unknown preset {value!r}; known: {', '.join(PRESETS)}")
        return
    problems = validate_fields({key: value})
    if problems:
        raise fail("; ".join(problems))
    if isinstance(value, dict):
        raise fail(f"{key} must not be a table")


def registry_names(kind: str) -> list[str] | None:
    """Registered names of a kind, or None when lbpbench.registry cannot be imported (check skipped)."""
    try:
        from lbpbench.registry import get_registry
    except ImportError:
        return None
    return list(get_registry().names(kind))


_warned_no_registry = False


def _check_components(spec: SweepSpec, err: Callable[..., SpecError], names: NamesFn | None) -> None:
    global _warned_no_registry
    names = names or registry_names
    cache: dict[str, list[str] | None] = {}

    def check(key: str, value: Any, section: str, occurrence: int = 0, kind_key: str | None = None) -> None:
        kind = COMPONENT_FIELDS[kind_key or key]
        if kind not in cache:
            cache[kind] = names(kind)
        known = cache[kind]
        if known is None:
            return
        for v in _flat(value):
            if v is not None and v not in known:
                raise err(f"unknown {kind} {v!r}; registered: {', '.join(known) or '(none)'}",
                          key, section, occurrence)

    for key, value in spec.fixed.items():
        if key in COMPONENT_FIELDS:
            check(key, value, "fixed")
    for key, values in spec.axes.items():
        if key in COMPONENT_FIELDS:
            check(key, values, "axes")
    if spec.baselines:
        check(BASELINES_AXIS, spec.baselines, "axes", kind_key="baseline")
    for table, rules in (("exclude", spec.exclude), ("include", spec.include)):
        for i, rule in enumerate(rules):
            for key, value in rule.items():
                if key in COMPONENT_FIELDS:
                    check(key, value, table, i)
    if any(v is None for v in cache.values()) and not _warned_no_registry:
        import warnings

        _warned_no_registry = True
        warnings.warn("lbpbench.registry is not importable: component names in the sweep spec were not "
                      "checked", RuntimeWarning, stacklevel=3)


def _flat(value: Any) -> list[Any]:
    """Names in a value, an axis of values, or an axis of list values (`transfer_tasks`)."""
    if isinstance(value, list | tuple):
        return [v for item in value for v in _flat(item)]
    return [value]


def _check_runs(spec: SweepSpec, runs: list[RunConfig], err: Callable[..., SpecError]) -> None:
    """Every expanded run against the registry, as `train` checks one: component names
    (`config.unknown_components`, every COMPONENT_FIELDS entry), task families that refuse their
    options, and resource estimates (`lbpbench.sweep.checks`)."""
    try:
        from lbpbench.registry import get_registry
        from lbpbench.sweep.checks import describe, run_problems
    except ImportError:
        return
    try:
        registry = get_registry()
    except (ValueError, RuntimeError) as exc:  # duplicate names, strict-mode plugin errors
        raise SpecError(str(exc), source=spec.source) from None
    cache: dict[Any, Any] = {}
    for config in runs:
        problems = run_problems(config, registry, cache)
        if problems:
            key = re.match(r"\w+", problems[0]).group(0)  # each problem starts with its setting
            section = "axes" if key in spec.axes else "fixed" if key in spec.fixed else None
            raise err(f"run {describe(config)}: {problems[0]}", key if section else None, section)


class _Lines:
    """Finds the line a key sits on, by scanning the TOML text (tomllib keeps no positions)."""

    _header = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()

    def find(self, key: str, section: str | None = None, occurrence: int = 0) -> int | None:
        key_re = re.compile(rf"^\s*(?:{re.escape(key)}|\"{re.escape(key)}\"|'{re.escape(key)}')\s*=")
        current: str | None = None
        seen: dict[str, int] = {}
        for i, line in enumerate(self.lines, start=1):
            m = self._header.match(line)
            if m:
                current = m.group(1).strip()
                seen[current] = seen.get(current, -1) + 1
                if section is None and current == key:
                    return i
                continue
            if current == section and (section is None or seen[current] == occurrence) and key_re.match(line):
                return i
            if section is not None and current is None and re.match(
                    rf"^\s*{re.escape(section)}\.{re.escape(key)}\s*=", line):
                return i
        if section is not None:  # e.g. the key in an inline table: first mention anywhere
            for i, line in enumerate(self.lines, start=1):
                if re.search(rf"(^|[\s,{{]){re.escape(key)}\s*=", line):
                    return i
            for i, line in enumerate(self.lines, start=1):  # the table itself
                m = self._header.match(line)
                if m and m.group(1).strip() == section:
                    return i
        return None


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


__all__ = ["SpecError", "SweepSpec", "load_spec", "parse_spec", "parse_set", "expand", "default_spec_text",
           "registry_names"]
