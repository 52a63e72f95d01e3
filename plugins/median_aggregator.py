"""Example single-file plugin: a ``median`` aggregator.

Any ``*.py`` file in ``./plugins`` (or a folder given with ``--plugins-dir`` /
``LBPBENCH_PLUGINS_DIR``) is loaded as a plugin. Check it is picked up with::

    lbpbench plugins --kind aggregator
"""

from __future__ import annotations

import torch

from lbpbench import hookimpl

__version__ = "0.1.0"


class MedianAggregator:
    """Median of the per-edge messages over the fan-out axis (robust to outlier edges)."""

    def __init__(self, message_size: int, **options: object) -> None:
        self.message_size = message_size

    def aggregate(self, edges: torch.Tensor, dim: int) -> torch.Tensor:
        # torch.median returns the lower of the two middle values for an even count; the mean
        # of the two is the textbook median and keeps gradients flowing to both.
        n = edges.shape[dim]
        ordered = edges.sort(dim=dim).values
        lo = ordered.narrow(dim, (n - 1) // 2, 1)
        hi = ordered.narrow(dim, n // 2, 1)
        return ((lo + hi) / 2).squeeze(dim)


@hookimpl
def lbpbench_register_aggregators(register):
    register("median", MedianAggregator)
