"""``python -m lbpbench`` — the same as the ``lbpbench`` console script."""

from lbpbench.cli import main

if __name__ == "__main__":
    main(prog_name="lbpbench")
