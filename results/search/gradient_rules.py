"""How far a hand-set gradient rule gets in 5 steps on sinusoid-5x10 (search round 17).

The stuck draws sit at the task-average curve's loss (0.0185); an escaped learned protocol reaches
0.002 after 5 steps. Would a learner that imitated a gradient rule start below the plateau? This
runs 5 steps of three per-task rules from the optimizee's own initial draw (init std 0.05), on 100
evaluation tasks, over a grid of step sizes: plain SGD, per-tensor normalised gradient descent
(each tensor moves by `lr` along its gradient's direction) and sign descent. Prints the eval L2
after the 5th step for each rule and step size.

Run from the repository root:
OMP_NUM_THREADS=1 python results/search/gradient_rules.py > results/search/gradient_rules.txt
"""

import torch

from lbpbench.harness.config import RunConfig
from lbpbench.harness.members import make_family, network_spec, resolve_registry
from lbpbench.tasks.optimizee import build_optimizee

RULES = ("sgd", "normalised", "sign")
STEP_SIZES = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0)


def direction(rule: str, grad: torch.Tensor) -> torch.Tensor:
    if rule == "sgd":
        return grad
    if rule == "sign":
        return grad.sign()
    norm = grad.flatten(1).norm(dim=1).clamp_min(1e-12)
    return grad / norm.view(-1, *[1] * (grad.dim() - 1))


def main() -> None:
    torch.set_num_threads(1)
    config = RunConfig()  # sinusoid-5x10
    registry = resolve_registry(None)
    family = make_family(config, registry)
    optimizee = build_optimizee(network_spec(config, family), registry)
    generator = torch.Generator().manual_seed(123)
    tasks = family.sample(100, generator, split="eval")
    start = optimizee.init_params(100, generator)
    print("rule,step_size,eval_loss_after_5_steps")
    for rule in RULES:
        for size in STEP_SIZES:
            params = {k: v.clone() for k, v in start.items()}
            for s in range(family.inner_steps):
                params = {k: v.detach().requires_grad_() for k, v in params.items()}
                loss = optimizee.loss(params, tasks.train_x[:, s], tasks.train_y[:, s]).sum()
                grads = torch.autograd.grad(loss, list(params.values()))
                params = {k: (v - size * direction(rule, g)).detach()
                          for (k, v), g in zip(params.items(), grads, strict=True)}
            value = optimizee.loss(params, tasks.eval_x, tasks.eval_y).mean().item()
            print(f"{rule},{size:g},{value:.5g}")


if __name__ == "__main__":
    main()
