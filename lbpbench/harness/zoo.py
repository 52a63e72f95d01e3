"""Trained learners shipped with lbpbench: `init_from = "zoo:NAME"` starts a run from one.

Why in the package: the default sweep (and anyone's first sweep) should compare trained protocols
without hours of meta-training and without the repository's results/ folder. Each entry is a copy
of a learner we trained ourselves (`results/trained/NAME/` in the repository: its command, curves
and checkpoint): `learner.pt` and `config.json`, a few hundred kB.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

ZOO_PREFIX = "zoo:"


def zoo_root() -> Path:
    return Path(str(importlib.resources.files("lbpbench"))) / "zoo"


def zoo_names() -> list[str]:
    """Shipped entries (folders holding a learner.pt), sorted."""
    root = zoo_root()
    return sorted(p.name for p in root.iterdir() if (p / "learner.pt").is_file()) if root.is_dir() else []


def start_folder(init_from: str) -> Path:
    """The run folder an `init_from` value names: `zoo:NAME` a shipped entry, anything else a path.

    Raises ValueError naming the shipped entries for an unknown zoo name."""
    if not init_from.startswith(ZOO_PREFIX):
        return Path(init_from)
    name = init_from[len(ZOO_PREFIX):]
    folder = zoo_root() / name
    if not name or "/" in name or not (folder / "learner.pt").is_file():
        raise ValueError(f"init_from: no zoo entry {name!r}; shipped: {', '.join(zoo_names()) or '(none)'}")
    return folder
