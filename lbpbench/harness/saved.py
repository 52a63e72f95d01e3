"""Reload what a run saved (learner.pt) or a released reference checkpoint, ready to evaluate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from lbpbench.harness.config import RunConfig
from lbpbench.harness.evaluate import Evaluation, LearnedStepper, evaluate
from lbpbench.harness.members import learner_network, make_family, network_spec, resolve_registry
from lbpbench.protocol.checkpoint import network_for_checkpoint


def evaluate_run_dir(
    run_dir: Path, n_tasks: int | None = None, steps: int | None = None, registry: Any = None
) -> tuple[RunConfig, Evaluation]:
    """Re-evaluate the learner a `lbpbench train` run saved in run_dir/learner.pt."""
    path = Path(run_dir) / "learner.pt"
    if not path.is_file():
        raise FileNotFoundError(f"no learner.pt in {run_dir}: not a finished lbpbench train run")
    saved = torch.load(path, weights_only=True)
    config = RunConfig.from_dict(saved["config"])
    if config.baseline:
        raise ValueError(f"{run_dir} is a baseline run ({config.baseline}); it has no learner to evaluate")
    registry = resolve_registry(registry)
    family = make_family(config, registry)
    net = learner_network(config, network_spec(config, family), registry)
    net.load_state_dict(saved["net"])
    prior = saved.get("prior") or None
    evaluation = evaluate(
        net,
        family,
        LearnedStepper(net),
        n_tasks=n_tasks or config.eval_tasks,
        steps=steps or config.eval_steps,
        initial_params=prior,
    )
    return config, evaluation


def load_prior(path: Path, net: Any) -> dict[str, torch.Tensor]:
    """A flat prior vector (dense1.W, dense1.b, ... in order) as [1, ...] initial parameters."""
    flat = torch.as_tensor(np.load(path, allow_pickle=False)).reshape(-1)
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
) -> Evaluation:
    """The released learner (any sharing that fits its length) through lbpbench's evaluation."""
    registry = resolve_registry(registry)
    family = registry.create("task", task)
    vector = np.load(checkpoint, allow_pickle=False)
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
    return evaluate(net, family, LearnedStepper(net), n_tasks=n_tasks, steps=steps, initial_params=initial)
