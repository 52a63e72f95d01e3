"""``python -m lbpbench.sweep`` — the `sweep` command group alone (same as ``lbpbench sweep``)."""

from lbpbench.sweep.commands import sweep_group

if __name__ == "__main__":
    sweep_group(prog_name="lbpbench sweep")
