"""Time the sinusoid-5x10 stateful meta-step eager, with the inner step compiled (`--compile`), and
with the whole meta-loss compiled as one graph: is a bigger compiled region worth its compile time?
`graphs` is `--compile-mode graphs`: the whole meta-loss with mode="reduce-overhead", replayed as
CUDA graphs on a GPU (on a CPU the same graph as `whole`, without the capture).

`python -m lbpbench.bench.compile_variants eager|inner|whole|graphs [THREADS [PRESET]] [--device D]`
prints one line: the first call (compile) and the median and min of 20 timed meta-steps after two
warm-ups, wall seconds.
PRESET (e.g. `fast`, 4x the meta-batch) times the recipe long runs use instead of the task's
defaults: where the meta-step is matmul-bound, fusing the elementwise work buys less.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys


def main(argv: list[str]) -> None:
    import torch

    from lbpbench.bench.timing import time_call
    from lbpbench.harness.config import RunConfig
    from lbpbench.harness.members import ProtocolMember
    from lbpbench.harness.population import Population
    from lbpbench.harness.presets import apply_preset

    parser = argparse.ArgumentParser(prog="python -m lbpbench.bench.compile_variants")
    parser.add_argument("mode", choices=("eager", "inner", "whole", "graphs"))
    parser.add_argument("threads", nargs="?", type=int, default=2)
    parser.add_argument("preset", nargs="?", default=None)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto (the run setting)")
    args = parser.parse_args(argv)
    mode = args.mode
    torch.set_num_threads(args.threads)
    point = {"task": "sinusoid-5x10", "learner": "stateful", "seed": 0, "device": args.device}
    if args.preset:
        point = apply_preset({**point, "preset": args.preset, "meta_steps": 4000})
    config = RunConfig(**point)
    member = ProtocolMember(config, compile=mode if mode in ("inner", "graphs") else False)
    if mode == "whole":
        member.module.forward = torch.compile(member.module.forward, dynamic=False)
    population = Population([member])
    (first,) = time_call(population.meta_step, member.device, rounds=1, warmup=0)
    times = time_call(population.meta_step, member.device, rounds=20, warmup=1)
    print(f"{mode} device={member.device} threads={args.threads} meta_batch={member.meta_batch} "
          f"first={first:.1f}s "
          f"median={statistics.median(times):.4f} min={min(times):.4f} "
          f"load={os.getloadavg()[0]:.2f}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
