"""Run identity: a content hash of everything that determines a run's result.

A run's id is the sha256 of the canonical JSON of its resolved RunConfig's settings that differ
from RunConfig's defaults (so a setting added later, whose default keeps the old behaviour, leaves
every existing run's id as it was; `lbpbench sweep reindex` moves results named by the older
full-config hash to these ids), the harness version
(``lbpbench.__version__``) and the name/version of each plugin providing a component the run uses
(model: exca's config-hash cache, asv's results files). So a resumed sweep skips exactly the runs
whose result could not have changed, and a new plugin or harness release re-runs what it touches.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import lbpbench
from lbpbench.harness.config import RunConfig

SHORT_HASH = 12


def components_used(config: RunConfig) -> list[tuple[str, str]]:
    """(kind, name) of every registry component the run depends on."""
    if config.baseline:
        return [("task", config.task), ("baseline", config.baseline)]
    return [("task", config.task), ("learner", config.learner), ("aggregator", config.aggregator)]


def plugin_versions(config: RunConfig) -> dict[str, str]:
    """"kind:name" -> "plugin==version" for the run's components; {} without an importable registry.

    Unknown names map to "?" rather than raising: validation reports them, identity must not crash.
    """
    try:
        from lbpbench.registry import get_registry

        registry = get_registry()
    except ImportError:
        return {}
    out: dict[str, str] = {}
    for kind, name in components_used(config):
        try:
            comp = registry.get(kind, name)
        except (ValueError, KeyError):
            out[f"{kind}:{name}"] = "?"
            continue
        out[f"{kind}:{name}"] = f"{comp.plugin}=={comp.version}"
    return out


def identity_config(config: RunConfig) -> dict[str, Any]:
    """The settings that differ from RunConfig's defaults: the part of a config the hash covers."""
    defaults = RunConfig().to_dict()
    return {k: v for k, v in config.to_dict().items() if v != defaults[k]}


def identity_payload(config: RunConfig, harness_version: str | None = None,
                     plugins: dict[str, str] | None = None) -> dict[str, Any]:
    """What the hash covers; stored in config.json so a reader can see why two ids differ."""
    return {
        "config": identity_config(config),
        "harness_version": harness_version if harness_version is not None else lbpbench.__version__,
        "plugins": plugins if plugins is not None else plugin_versions(config),
    }


def full_hash(config: RunConfig, harness_version: str | None = None,
              plugins: dict[str, str] | None = None) -> str:
    """sha256 hex of the canonical JSON (sorted keys, no whitespace) of `identity_payload`."""
    payload = identity_payload(config, harness_version, plugins)
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def readable_prefix(config: RunConfig) -> str:
    """task_method_sSEED, filesystem-safe: lets a human find a run folder without the index."""
    method = config.method.replace("/", "-")
    raw = f"{config.task}_{method}_s{config.seed}"
    return re.sub(r"[^A-Za-z0-9._-]+", "-", raw)[:80]


def run_id(config: RunConfig, harness_version: str | None = None,
           plugins: dict[str, str] | None = None) -> str:
    """`<readable prefix>_<12 hex of the identity hash>`; the hash part alone is unique."""
    return f"{readable_prefix(config)}_{full_hash(config, harness_version, plugins)[:SHORT_HASH]}"
