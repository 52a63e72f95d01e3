"""A/B of the seed-batch meta-step: tanh under vmap through the custom Function (old) or plain ops (new).

`python -m lbpbench.bench.vmap_tanh_ab old|new SEEDS META_BATCH [THREADS]` prints the median and min
of 5 seed-batch meta-steps (sinusoid-5x10 stateful/mean) after two warm-ups. `old` makes
lbpbench.protocol.fast_tanh see no vmapped tensor, so it takes the custom autograd Function as before.
"""

from __future__ import annotations

import statistics
import sys


def main(argv: list[str]) -> None:
    import torch

    torch.set_num_threads(int(argv[3]) if len(argv) > 3 else 1)
    if argv[0] == "old":
        from lbpbench.protocol import fast_tanh

        fast_tanh.is_vmapped = lambda z: False
    from lbpbench.bench.cases import seed_batch_workload
    from lbpbench.bench.timing import time_call
    from lbpbench.harness.allocator import retain_freed_memory

    retain_freed_memory()
    seeds, meta_batch = int(argv[1]), int(argv[2])
    work = seed_batch_workload("sinusoid-5x10", "stateful", "mean", "cpu", seeds, meta_batch=meta_batch)
    times = time_call(work.step, work.device, rounds=5, warmup=2)
    print(argv, f"median {statistics.median(times):.3f} min {min(times):.3f}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
