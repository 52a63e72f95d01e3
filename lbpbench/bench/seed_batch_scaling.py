"""Does a seed batch pay on this machine at the meta-batch long runs use?

`lbpbench bench --seeds N` times the task's own meta-batch (4 on the sinusoid); the `fast` preset
trains with 16 tasks per meta-step, where a meta-step's activations no longer fit in cache and a
batch of seeds can cost more than its seeds run one after another. This prints, per seed count, the
best of ROUNDS meta-steps of one seed and of the seed batch, sinusoid-5x10 stateful/mean:

`python -m lbpbench.bench.seed_batch_scaling SEEDS[,SEEDS...] [META_BATCH [THREADS [ROUNDS]]]`
(defaults: meta-batch 16, one thread, 3 rounds).
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> None:
    import torch

    from lbpbench.bench.cases import seed_scaling
    from lbpbench.harness.allocator import retain_freed_memory

    counts = [int(n) for n in argv[0].split(",")]
    meta_batch = int(argv[1]) if len(argv) > 1 else 16
    threads = int(argv[2]) if len(argv) > 2 else 1
    rounds = int(argv[3]) if len(argv) > 3 else 3
    torch.set_num_threads(threads)
    retain_freed_memory()
    for seeds in counts:
        row = seed_scaling("sinusoid-5x10", "cpu", seeds, rounds=rounds, meta_batch=meta_batch)
        print(f"seeds={seeds} meta_batch={meta_batch} threads={threads} one_seed={row['one_seed_s']:.3f}s "
              f"batch={row['batch_s']:.3f}s ratio={row['ratio']:.2f} (a loop of seeds: {seeds}) "
              f"load={row['load']:.2f}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
