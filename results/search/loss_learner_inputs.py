"""Search round 7's check of the saturation reading: what the loss node's learner sees and sends.

For ablation (a)'s first cell (k = 8, per-layer, fast preset), seeds 0-2, untrained and after its
2,500 meta-steps: the standardised prediction input of the loss learner over a 5-step unroll of 50
training tasks (median, 90th percentile, max of its absolute value), the largest |correlation| of an
outgoing message channel with t - x, and the fraction of message values beyond +-0.95 (tanh bound).

Run: OMP_NUM_THREADS=1 python results/search/loss_learner_inputs.py > results/search/loss_learner_inputs.txt
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import seed_factors  # noqa: E402

RUNS = Path(__file__).parents[1] / "ablation" / "a_message_sharing_trained" / "runs"


def main() -> None:
    torch.set_num_threads(1)
    for seed in (0, 1, 2):
        member = seed_factors.ProtocolMember(seed_factors.config(seed))
        trained = [p for p in RUNS.glob(f"sinusoid-5x10_stateful-mean_s{seed}_*/learner.pt")]
        for label, path in (("untrained", None), ("after 2,500 meta-steps", trained[0])):
            if path is not None:
                member.net.load_state_dict(torch.load(path, weights_only=False)["net"])
            seen: list[list[torch.Tensor]] = []

            def record(mod: object, inp: object, out: list[torch.Tensor], seen: list = seen) -> None:
                seen.append([p.detach() for p in out])

            hook = member.net.standardizers["loss"].register_forward_hook(record)
            tasks = member.family.sample(50, torch.Generator().manual_seed(5), split="train")
            params = member.net.init_params(50, torch.Generator().manual_seed(6))
            carries = member.net.init_carries(50, tasks.train_x.shape[2])
            messages = []
            with torch.no_grad():
                for s in range(tasks.train_x.shape[1]):
                    x, y = tasks.train_x[:, s], tasks.train_y[:, s]
                    out = member.net.inner_step(params, carries, x, y, trace=True)
                    params, carries = out.params, out.carries
                    messages.append(out.messages["loss"])
            hook.remove()
            prediction = torch.stack([pieces[1] for pieces in seen]).abs()  # pieces: loss, x, t, t - x
            error = torch.stack([pieces[3] for pieces in seen]).reshape(-1)
            sent = torch.stack(messages)
            flat = sent.reshape(error.shape[0], -1)
            corr = max(abs(float(torch.corrcoef(torch.stack([flat[:, c], error]))[0, 1]))
                       for c in range(flat.shape[1]))
            print(f"seed {seed}, {label}: standardised prediction |x| median {prediction.median():.1f}, "
                  f"p90 {prediction.quantile(0.9):.1f}, max {prediction.max():.1f}; "
                  f"max |corr(message channel, t - x)| {corr:.2f}; "
                  f"message values beyond 0.95: {float((sent.abs() > 0.95).float().mean()):.2f}")


if __name__ == "__main__":
    main()
