"""How far a hand-set gradient rule gets in 5 steps on sinusoid-5x10 (search round 17).

The stuck draws sit at the task-average curve's loss (0.0185); an escaped learned protocol reaches
0.002 after 5 steps. Would a learner that imitated a gradient rule start below the plateau? This
evaluates three per-task rules through the suite's own evaluation (`evaluate` with a
`GradientStepper`: the fixed 100 evaluation tasks and initial networks every learner is scored
on), over a grid of step sizes: plain SGD (the `sgd` baseline's rule), per-tensor normalised
gradient descent (each tensor moves by `lr` along its gradient's direction) and sign descent.
Prints the eval L2 after the 5th step for each rule and step size, and before any step.

Run from the repository root:
OMP_NUM_THREADS=1 python results/search/gradient_rules.py > results/search/gradient_rules.txt
"""

from typing import Any

import torch
from torch import Tensor

from lbpbench.harness.baselines import SGD, GradientStepper
from lbpbench.harness.config import RunConfig
from lbpbench.harness.evaluate import evaluate
from lbpbench.harness.members import make_family, network_spec, resolve_registry
from lbpbench.tasks.optimizee import build_optimizee

STEP_SIZES = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0)


class NormalisedDescent:
    """Each tensor of each task moves by `lr` along its gradient's direction."""

    def step(self, params: dict[str, Tensor], grads: dict[str, Tensor], state: Any,
             lr: float) -> tuple[dict[str, Tensor], Any]:
        def unit(g: Tensor) -> Tensor:
            return g / g.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *[1] * (g.dim() - 1))
        return {k: p - lr * unit(grads[k]) for k, p in params.items()}, state


class SignDescent:
    def step(self, params: dict[str, Tensor], grads: dict[str, Tensor], state: Any,
             lr: float) -> tuple[dict[str, Tensor], Any]:
        return {k: p - lr * grads[k].sign() for k, p in params.items()}, state


def main() -> None:
    torch.set_num_threads(1)
    config = RunConfig()  # sinusoid-5x10
    registry = resolve_registry(None)
    family = make_family(config, registry)
    optimizee = build_optimizee(network_spec(config, family), registry)
    print("rule,step_size,eval_loss_after_5_steps")
    for name, rule in (("sgd", SGD()), ("normalised", NormalisedDescent()), ("sign", SignDescent())):
        for size in STEP_SIZES:
            evaluation = evaluate(optimizee, family, GradientStepper(optimizee, rule, size),
                                  n_tasks=config.eval_tasks)
            print(f"{name},{size:g},{evaluation.mean('eval_loss', family.inner_steps):.5g}")
    print(f"before any step,0,{evaluation.mean('eval_loss', 0):.5g}")


if __name__ == "__main__":
    main()
