"""Reload what a run saved (learner.pt) or a released reference checkpoint, ready to evaluate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lbpbench.harness.config import RunConfig
from lbpbench.harness.evaluate import EVAL_SEED, Evaluation, LearnedStepper, evaluate
from lbpbench.harness.members import (
    NET,
    PRIOR,
    learner_network,
    make_family,
    network_spec,
    resolve_registry,
    schema1_weights,
)
from lbpbench.protocol.checkpoint import network_for_checkpoint


def run_learner(run_dir: Path) -> tuple[dict[str, Any], Path, str]:
    """The learner of a run folder as learner.pt's payload, the file it was read from, and that
    file in words: learner.pt of a finished run, else the learner in checkpoint.pt of an unfinished
    one (so a long run can be evaluated while it trains)."""
    path = Path(run_dir) / "learner.pt"
    if path.is_file():
        return _load_learner(path), path, "learner.pt"
    checkpoint = Path(run_dir) / "checkpoint.pt"
    if not checkpoint.is_file():
        raise FileNotFoundError(f"no learner.pt or checkpoint.pt in {run_dir}: not an lbpbench train run")
    state = _load_learner(checkpoint, keys=())
    if "weights" in state:
        _check_keys(state, checkpoint, ("config", "weights", "fixed"))
        config, tensors = state["config"], {**state["weights"], **state["fixed"]}
    else:  # schema 1 (long runs started then still resume from one): settings in config.json
        _check_keys(state, checkpoint, ("net",))
        config, tensors = _config_json(run_dir, checkpoint), schema1_weights(state)
    payload = {
        "config": config,
        "net": {k[len(NET):]: v for k, v in tensors.items() if k.startswith(NET)},
        "prior": {k[len(PRIOR):]: v for k, v in tensors.items() if k.startswith(PRIOR)},
    }
    return payload, checkpoint, f"checkpoint.pt (unfinished, meta-step {state.get('step')})"


def _config_json(run_dir: Path, checkpoint: Path) -> dict[str, Any]:
    """The run settings in a run folder's config.json (early ones held them flat)."""
    config_file = Path(run_dir) / "config.json"
    try:
        written = json.loads(config_file.read_text())
        config = written.get("config", written)
        config["task"]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{checkpoint} predates schema 2 and needs the run's settings from "
                         f"{config_file} ({_one_line(exc)[:200]})") from None
    return config


def evaluate_run_dir(
    run_dir: Path,
    n_tasks: int | None = None,
    steps: int | None = None,
    registry: Any = None,
    seed: int = EVAL_SEED,
) -> tuple[RunConfig, Evaluation, str]:
    """Re-evaluate the learner of a `lbpbench train` run folder (`run_learner`), on tasks drawn
    from `seed` (default: the fixed evaluation tasks every run is scored on); also says which file
    the learner came from."""
    saved, path, source = run_learner(run_dir)
    try:
        config = RunConfig.from_dict(saved["config"])
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: its run settings are not valid ({_one_line(exc)})") from None
    if config.baseline:
        raise ValueError(f"{run_dir} is a baseline run ({config.baseline}); it has no learner to evaluate")
    registry = resolve_registry(registry)
    family = make_family(config, registry)
    net = learner_network(config, network_spec(config, family), registry)
    try:
        net.load_state_dict(saved["net"])
    except (RuntimeError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"{path}: its weights do not fit the learner its settings describe "
                         f"({_one_line(exc)[:300]})") from None
    prior = saved.get("prior") or None
    if prior is not None and not (isinstance(prior, dict)
                                  and all(isinstance(v, torch.Tensor) for v in prior.values())):
        raise ValueError(f"{path}: 'prior' is not a set of tensors")
    evaluation = evaluate(
        net,
        family,
        LearnedStepper(net),
        n_tasks=n_tasks or config.eval_tasks,
        steps=steps or config.eval_steps,
        initial_params=prior,
        seed=seed,
    )
    return config, evaluation, source


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _load_learner(path: Path, keys: tuple[str, ...] = ("config", "net")) -> dict[str, Any]:
    """learner.pt's (or checkpoint.pt's) payload; a damaged or foreign file is a ValueError naming
    it and the problem."""
    try:
        saved = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as exc:  # noqa: BLE001 - truncated, garbage, not a torch file: all say the same
        raise ValueError(f"{path}: damaged or not a learner file ({type(exc).__name__}: "
                         f"{_one_line(exc)[:200]})") from None
    if not isinstance(saved, dict):
        raise ValueError(f"{path}: not a learner file (expected a dict)")
    _check_keys(saved, path, keys)
    return saved


def _check_keys(saved: dict[str, Any], path: Path, keys: tuple[str, ...]) -> None:
    if not all(isinstance(saved.get(k), dict) for k in keys):
        raise ValueError(f"{path}: not a learner file (expected a dict with {', '.join(map(repr, keys))})")


def load_array(path: Path, what: str) -> np.ndarray:
    """A .npy array (reference checkpoint, prior); a damaged file is a ValueError naming it."""
    try:
        array = np.load(path, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - truncated, garbage, pickled: all unusable
        raise ValueError(f"{path}: damaged or not a .npy {what} ({type(exc).__name__}: "
                         f"{_one_line(exc)[:200]})") from None
    if not isinstance(array, np.ndarray) or array.dtype.kind not in "fiu":
        raise ValueError(f"{path}: not a numeric .npy array ({what})")
    if not np.isfinite(array).all():
        raise ValueError(f"{path}: the {what} holds NaN or infinite values")
    return array


def load_prior(path: Path, net: Any) -> dict[str, torch.Tensor]:
    """A flat prior vector (dense1.W, dense1.b, ... in order) as [1, ...] initial parameters."""
    flat = torch.as_tensor(load_array(path, "prior")).reshape(-1)
    shapes = net.param_shapes()
    expected = sum(int(np.prod(s)) for s in shapes.values())
    if flat.numel() != expected:
        raise ValueError(f"prior {path} has {flat.numel()} values; the network has {expected} parameters")
    out, offset = {}, 0
    for name, shape in shapes.items():
        n = int(np.prod(shape))
        out[name] = flat[offset : offset + n].reshape(1, *shape)
        offset += n
    return out


def evaluate_reference_checkpoint(
    task: str,
    checkpoint: Path,
    learner: str = "stateful",
    message_size: int = 8,
    hidden_size: int = 15,
    prior: Path | None = None,
    n_tasks: int = 100,
    steps: int | None = None,
    registry: Any = None,
    seed: int = EVAL_SEED,
) -> Evaluation:
    """The released learner (any sharing that fits its length) through lbpbench's evaluation."""
    registry = resolve_registry(registry)
    family = registry.create("task", task)
    vector = load_array(checkpoint, "reference checkpoint")
    net = network_for_checkpoint(
        family.network,
        vector,
        learner,
        message_size,
        hidden_size,
        untrained_message_mlp=learner == "stateless",
        registry=registry,
    )
    initial = load_prior(prior, net) if prior else None
    stepper = LearnedStepper(net)
    return evaluate(net, family, stepper, n_tasks=n_tasks, steps=steps, initial_params=initial, seed=seed)
