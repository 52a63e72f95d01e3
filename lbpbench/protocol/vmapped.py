"""Whether a tensor is seen inside torch.func.vmap (a seed batch), for the few places whose fastest
code differs there (the RNN aggregator's unrolled GRU, tanh)."""

from __future__ import annotations

import torch
from torch import Tensor


def is_vmapped(t: Tensor) -> bool:
    return bool(torch._C._functorch.is_batchedtensor(t))
