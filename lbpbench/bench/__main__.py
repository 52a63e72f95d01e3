"""``python -m lbpbench.bench`` — the same as ``lbpbench bench``."""

from lbpbench.bench.command import bench_command

if __name__ == "__main__":
    bench_command(prog_name="python -m lbpbench.bench")
