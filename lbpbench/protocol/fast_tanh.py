"""tanh computed as 2·σ(2z) − 1 on the CPU, where PyTorch's vectorised tanh is the slow op.

Measured on the benchmark machine (AMD EPYC, AVX-512, torch 2.13 CPU): `torch.tanh` costs
≈2.8 ns per element against ≈0.43 ns for `torch.sigmoid`, and tanh was a fifth of a stateful
meta-step. The identity is exact in real arithmetic; in float32 the two agree to ≈2e-7 absolute
(tests/test_fast_paths.py). The backward pass is tanh's own, 1 − y², from the saved output. On
other devices, and inside torch.compile, plain `torch.tanh` is used; under vmap (seed batches) the
same identity as plain ops, whose batching rules are native.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from lbpbench.protocol.vmapped import is_vmapped


class SigmoidTanh(torch.autograd.Function):
    """y = 2σ(2z) − 1 with dy/dz = 1 − y²; vmap-able (its rule is generated from the forward)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(z: Tensor) -> Tensor:
        # z + z and y + y equal 2z and 2y exactly, and unlike a Python-scalar multiply they do not
        # dispatch a wrapped-number conversion (aten::to) inside a custom Function: 2 of 3 per call.
        y = torch.add(z, z)
        torch.sigmoid_(y)
        return y.add_(y).sub_(1.0)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Tensor], output: Tensor) -> None:
        ctx.save_for_backward(output)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        (y,) = ctx.saved_tensors
        return torch.ops.aten.tanh_backward(grad, y)


def fast_tanh(z: Tensor) -> Tensor:
    """tanh(z): through the sigmoid in eager CPU code, `torch.tanh` elsewhere.

    Under torch.compile inductor generates its own vectorised tanh, so the identity buys nothing
    there, and compiled with AVX2 code generation (ATEN_CPU_CAPABILITY=avx2, as on a CPU without
    AVX-512) the custom Function's in-place sigmoid gave NaN meta-losses (torch 2.13; the compile
    parity test in tests/test_harness.py runs under AVX2 in CI, .ci/run)."""
    if z.device.type != "cpu" or torch.compiler.is_compiling():
        return torch.tanh(z)
    if is_vmapped(z):
        # A seed batch (vmap): the custom Function's generated vmap rule costs more than it saves
        # (2-seed sinusoid meta-step, one thread: 0.67 s against 0.54 s with these plain ops;
        # results/benchmarks/seed_batch_cpu.txt). The same forward values; the backward rounds
        # differently (4σ(1−σ) instead of 1 − y²).
        return torch.sigmoid(z + z) * 2.0 - 1.0
    return SigmoidTanh.apply(z)
