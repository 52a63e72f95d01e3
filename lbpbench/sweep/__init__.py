"""Comparative sweeps: TOML specs, content-hashed run ids, a resumable results store, executors.

Public API::

    from lbpbench.sweep import load_spec, SpecError, ResultsStore, make_executor
    spec = load_spec("sweep.toml", ["seed=0,1,2"])      # validated; SpecError(key, line) otherwise
    configs = spec.expand()                              # list[RunConfig]

CLI: ``lbpbench sweep run|status|ls`` (``lbpbench.sweep.commands.sweep_group``).
"""

from lbpbench.sweep.spec import SpecError, SweepSpec, expand, load_spec, parse_spec
from lbpbench.sweep.store import ResultsStore, SweepLocked

__all__ = ["SpecError", "SweepSpec", "expand", "load_spec", "parse_spec", "ResultsStore", "SweepLocked",
           "make_executor", "run_id"]


def __getattr__(name: str):  # lazy: executors/identity pull in more than spec parsing needs
    if name == "make_executor":
        from lbpbench.sweep.executors import make_executor

        return make_executor
    if name == "run_id":
        from lbpbench.sweep.identity import run_id

        return run_id
    raise AttributeError(name)
