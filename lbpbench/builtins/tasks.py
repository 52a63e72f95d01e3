"""Built-in task families, registered through the ``lbpbench_register_tasks`` hook.

Factories take ``data_dir: str | None = None`` (the CLI's ``--data-dir``) and ignore other options.
"""

from __future__ import annotations

from lbpbench.hookspecs import Register, hookimpl
from lbpbench.tasks.mnist import fashion_mnist_20x8, mnist_20x8, mnist_20x8_step, mnist_784_100
from lbpbench.tasks.sinusoid import sinusoid_2x10, sinusoid_5x10


@hookimpl
def lbpbench_register_tasks(register: Register) -> None:
    """Register the sinusoid, MNIST (and transfer variants) and Fashion-MNIST task families."""
    register("sinusoid-5x10", sinusoid_5x10)
    register("sinusoid-2x10", sinusoid_2x10)
    register("mnist-20x8", mnist_20x8)
    register("mnist-20x8-step", mnist_20x8_step)
    register("mnist-784-100", mnist_784_100)
    register("fashion-mnist-20x8", fashion_mnist_20x8)
