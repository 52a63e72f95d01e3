"""Checks a run must pass before anything is written: the registry-aware half of validation.

`lbpbench.harness.config.validate_fields` checks types and ranges without a registry; this module
checks what needs one, once per sweep spec (and for any caller that builds a run from user input):

- every component name is registered (`config.unknown_components`, the same check `train` uses);
- every task family the run uses can be created (a factory may refuse its options, e.g.
  `fashion-mnist-20x8` without `data_dir`; a missing or damaged IDX file in `data_dir`);
- the run's largest tensors fit: a meta-step holds `[meta_batch, batch, fan_in, fan_out, width]`
  per layer and evaluation samples all of its tasks at once; either above
  `config.MEMORY_LIMIT_GIB` refuses the configuration, naming the settings;
- an `init_from` run folder holds a readable learner.pt of the same learner settings.

Every problem is one line naming the setting and the value.
"""

from __future__ import annotations

from typing import Any

from lbpbench.harness.config import MEMORY_LIMIT_GIB, RunConfig, unknown_components
from lbpbench.harness.plateau import plateau_problem
from lbpbench.harness.run import meta_trained

#: (task, data_dir) -> (family or None, problem or None), shared by the runs of one sweep.
FamilyCache = dict[tuple[str, str | None], tuple[Any, str | None]]

_GIB = 2**30


def family_problem(task: str, data_dir: str | None, registry: Any,
                   cache: FamilyCache | None = None) -> tuple[Any, str | None]:
    """Create the task family once (and, with `data_dir`, read its data); its error as one line."""
    key = (task, data_dir)
    if cache is not None and key in cache:
        return cache[key]
    family, problem = None, None
    try:
        family = registry.create("task", task, data_dir=data_dir)
        if data_dir is not None and isinstance(getattr(type(family), "data", None), property):
            family.data  # noqa: B018 - reads (and caches) the files, so a damaged one is named now
    except Exception as exc:  # noqa: BLE001 - any refusal of the factory is the user's input problem
        message = " ".join(str(exc).split()) or type(exc).__name__
        where = f" (data_dir={data_dir!r})" if data_dir is not None else ""
        family, problem = None, f"task {task!r}{where} cannot be used: {message}"
    if cache is not None:
        cache[key] = (family, problem)
    return family, problem


def _sizes(family: Any) -> tuple[int, int, int, int]:
    """(widest layer's fan_in × fan_out, input size, output size, parameter count) of the optimizee."""
    spec = family.network
    sizes = [int(spec.input_size), *(int(s) for s in spec.layer_sizes)]
    pairs = list(zip(sizes, sizes[1:], strict=False))
    return (max(a * b for a, b in pairs), sizes[0], sizes[-1], sum(a * b + b for a, b in pairs))


def resource_problems(config: RunConfig, family: Any) -> list[str]:
    """The run's largest tensors on its task, against MEMORY_LIMIT_GIB."""
    from lbpbench.harness import defaults

    try:
        edges, n_in, n_out, n_params = _sizes(family)
        batch = int(family.batch_size)
        steps = int(config.eval_steps or family.inner_steps)
        meta_batch = int(defaults.meta_batch(config, family))
    except Exception:  # noqa: BLE001 - a family without the usual shape: nothing to estimate
        return []
    limit = MEMORY_LIMIT_GIB * _GIB
    problems = []
    if not config.baseline:
        width = max(config.message_size, config.hidden_size, *config.mlp_widths)
        need = 4 * meta_batch * batch * edges * width
        if need > limit:
            problems.append(
                f"message_size={config.message_size}, hidden_size={config.hidden_size}, "
                f"mlp_widths={config.mlp_widths}, meta_batch={meta_batch}: a meta-step on {config.task} "
                f"would hold a tensor of meta_batch {meta_batch} × batch {batch} × {edges} edges × width "
                f"{width} × 4 bytes = {need / _GIB:.3g} GiB, above the {MEMORY_LIMIT_GIB} GiB limit")
    need = 4 * config.eval_tasks * (steps * batch * (n_in + n_out) + n_params)
    if need > limit:
        problems.append(
            f"eval_tasks={config.eval_tasks}, eval_steps={steps}: the evaluation tasks of {config.task} "
            f"would take {need / _GIB:.3g} GiB ({config.eval_tasks} tasks × {steps} steps × batch {batch} "
            f"× {n_in + n_out} values × 4 bytes), above the {MEMORY_LIMIT_GIB} GiB limit")
    return problems


def run_problems(config: RunConfig, registry: Any, cache: FamilyCache | None = None) -> list[str]:
    """Everything that would stop `config` before its first meta-step; empty when it can run."""
    problems = unknown_components(config.to_dict(), registry.names)
    if problems:
        return problems
    family = None
    for i, task in enumerate([config.task, *config.transfer_tasks]):
        made, problem = family_problem(task, config.data_dir, registry, cache)
        if problem is not None:
            problems.append(problem if i == 0 else f"transfer_tasks: {problem}")
        elif i == 0:
            family = made
    if family is not None:
        problems += resource_problems(config, family)
        plateau = plateau_problem(config.abandon_plateau_at, family.metric)
        if plateau is not None and meta_trained(config, registry):
            problems.append(plateau)
    if config.init_from and not config.baseline:
        from lbpbench.harness.members import read_start

        try:
            read_start(config.init_from, config)
        except ValueError as exc:
            problems.append(str(exc))
    return problems


def describe(config: RunConfig) -> str:
    """A short label of a run for messages: its method, task and seed."""
    return f"{config.method} on {config.task}, seed {config.seed}"


__all__ = ["MEMORY_LIMIT_GIB", "family_problem", "resource_problems", "run_problems", "describe"]
