"""The meta learning rate over meta-training: a multiplier of `meta_lr` per meta-step.

Why a schedule at all: with Adam at the paper's constant 1e-4 every learner weight moves by about
1e-4 per step at most, so training to quality takes tens of thousands of meta-steps; a higher peak
with warm-up and decay is the first lever for time-to-quality (issue 13).
"""

from __future__ import annotations

import math

FINAL_FRACTION = 0.01  # cosine decays to 1 % of the peak at the run's last meta-step
STEP_DECAY_AT = (0.5, 0.75)  # "step": x0.1 at half and at three quarters of the run


def lr_factor(schedule: str, step: int, total: int, warmup: int = 0) -> float:
    """Multiplier of the peak learning rate for the update that makes meta-step `step + 1`."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        span = max(1, total - warmup)
        progress = min(1.0, (step - warmup) / span)
        return FINAL_FRACTION + (1 - FINAL_FRACTION) * 0.5 * (1 + math.cos(math.pi * progress))
    if schedule == "step":
        return 0.1 ** sum(step >= fraction * total for fraction in STEP_DECAY_AT)
    raise ValueError(f"unknown lr_schedule {schedule!r}")
