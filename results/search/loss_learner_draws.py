"""Search round 8's candidate predictors: properties of a loss-node learner draw before training.

For seed 1's member with the initial loss-node learner of seed D (the members of round 6 and 8,
`seed_factors.py ... 1,1,1:D=loss`), over a 5-step unroll of 50 training tasks with the untrained
learners: how much of the signed error t - x a linear read-out recovers from the loss learner's
outgoing message (R^2), how linear the message is in the error (R^2 of the message channels on
t - x), the largest |correlation| of one channel with t - x, and the message's spread (mean std).

Run: OMP_NUM_THREADS=1 python results/search/loss_learner_draws.py 0 1 2 3 4 5 6 \
  > results/search/loss_learner_draws.txt
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import seed_factors  # noqa: E402


def r_squared(target: torch.Tensor, features: torch.Tensor) -> float:
    """Share of target's variance a least-squares affine read-out of features explains."""
    design = torch.cat([features, torch.ones(features.shape[0], 1)], dim=1).double()
    coef = torch.linalg.lstsq(design, target.double().unsqueeze(1)).solution
    residual = target.double() - (design @ coef).squeeze(1)
    return float(1 - residual.var() / target.double().var())


def main(donors: list[int]) -> None:
    torch.set_num_threads(1)
    for donor in donors:
        member = (seed_factors.mixed_member(1, 1, 1) if donor == 1
                  else seed_factors.mixed_member(1, 1, 1, donor, ("loss",)))
        tasks = member.family.sample(50, torch.Generator().manual_seed(5), split="train")
        params = member.net.init_params(50, torch.Generator().manual_seed(6))
        carries = member.net.init_carries(50, tasks.train_x.shape[2])
        errors, messages = [], []
        with torch.no_grad():
            for s in range(tasks.train_x.shape[1]):
                x, y = tasks.train_x[:, s], tasks.train_y[:, s]
                errors.append(y - member.net.forward(params, x))
                out = member.net.inner_step(params, carries, x, y, trace=True)
                params, carries = out.params, out.carries
                messages.append(out.messages["loss"])
        error = torch.stack(errors).reshape(-1)
        sent = torch.stack(messages).reshape(error.shape[0], -1)
        channel_r2 = [r_squared(sent[:, c], error.unsqueeze(1)) for c in range(sent.shape[1])]
        corr = max(abs(float(torch.corrcoef(torch.stack([sent[:, c], error]))[0, 1]))
                   for c in range(sent.shape[1]))
        print(f"loss learner of seed {donor}: error read-out R^2 {r_squared(error, sent):.3f}; "
              f"channels linear in the error, mean R^2 {sum(channel_r2) / len(channel_r2):.3f}; "
              f"max |corr| {corr:.2f}; message std {float(sent.std(0).mean()):.3f}")


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]])
