"""Search round 11's task: sinusoid-5x10 with phases over the whole circle, φ ~ U(0, 2π).

Its task-average curve is zero, so the 0.0185 plateau (fitting the average of φ ~ U(0, π),
≈ 0.19·cos x) does not exist: a learner can only beat the zero predictor by using each task's error.
Loaded with ``LBPBENCH_PLUGINS_DIR=results/search/plugins``.
"""

from __future__ import annotations

import math

from lbpbench import hookimpl
from lbpbench.tasks.sinusoid import SinusoidFamily


def sinusoid_5x10_full_phase(data_dir: str | None = None, **ignored: object) -> SinusoidFamily:
    return SinusoidFamily(name="sinusoid-5x10-full-phase", inner_steps=5, batch_size=10,
                          phase_range=(0.0, 2 * math.pi))


@hookimpl
def lbpbench_register_tasks(register):
    register("sinusoid-5x10-full-phase", sinusoid_5x10_full_phase)
