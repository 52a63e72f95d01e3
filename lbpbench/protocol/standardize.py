"""Frozen per-piece scalar standardisation (MPLP.md §4), with a calibration mode.

Each learner input piece (the whole k-channel message counts as one piece) gets one scalar shift
(-mean) and one scalar scale (1/std). They are statistics, not trained weights: calibration measures
them once on the untrained learner and they stay frozen afterwards.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

MIN_STD = 1e-5


def piece_statistics(piece: Tensor) -> tuple[Tensor, Tensor]:
    """Scalar (shift, scale) of one tensor: shift = -mean, scale = 1/std (1 when std < 1e-5).

    Statistics of a tensor repeated uniformly along an axis equal those of the original, so callers
    may pass the un-broadcast piece.
    """
    piece = piece.detach()
    mean = piece.mean()
    std = piece.std(unbiased=False)
    scale = torch.where(std < MIN_STD, torch.ones_like(std), 1.0 / std)
    return -mean, scale


class Calibrated(nn.Module):
    """Frozen statistics measured during calibration: each call while `calibrating` appends one
    observation (a tensor stacking the values of `_calibrated()`); `finish_calibration` blends their
    mean in: v <- (1 - blend) v + blend * mean."""

    calibrating: bool
    _collected: list[Tensor]

    def _calibrated(self) -> list[Tensor]:
        raise NotImplementedError

    def statistics_finite(self) -> bool:
        return all(bool(torch.isfinite(b).all()) for b in self._calibrated())

    def reset_statistics(self) -> None:
        """Back to the values before calibration (no shift, unit scale, zero mean)."""
        raise NotImplementedError

    def start_calibration(self) -> None:
        self.calibrating = True
        self._collected = []

    def finish_calibration(self, blend: float) -> None:
        self.calibrating = False
        if not self._collected:
            return
        mean = torch.stack(self._collected).mean(0)
        with torch.no_grad():
            for buffer, new in zip(
                self._calibrated(), mean.reshape(len(self._calibrated()), -1), strict=True
            ):
                buffer.mul_(1 - blend).add_(blend * new.reshape(buffer.shape))
        self._collected = []


class Standardizer(Calibrated):
    """Holds the frozen shift/scale of each named piece and applies `(v + shift) * scale`.

    While `calibrating` is set it standardises with the live statistics of each call and
    accumulates them; `finish_calibration` averages and blends them into the frozen buffers.
    """

    def __init__(self, piece_names: list[str]) -> None:
        super().__init__()
        self.piece_names = list(piece_names)
        self.register_buffer("shift", torch.zeros(len(piece_names)))
        self.register_buffer("scale", torch.ones(len(piece_names)))
        self.calibrating = False
        self._collected: list[tuple[Tensor, Tensor]] = []

    def forward(self, pieces: list[Tensor]) -> list[Tensor]:
        if len(pieces) != len(self.piece_names):
            raise ValueError(f"expected {len(self.piece_names)} pieces {self.piece_names}, got {len(pieces)}")
        if self.calibrating:
            stats = [piece_statistics(p) for p in pieces]
            self._collected.append(
                torch.stack([torch.stack([s for s, _ in stats]), torch.stack([c for _, c in stats])])
            )
            return [(p + s) * c for p, (s, c) in zip(pieces, stats, strict=True)]
        return [(p + self.shift[i]) * self.scale[i] for i, p in enumerate(pieces)]

    def _calibrated(self) -> list[Tensor]:
        return [self.shift, self.scale]

    @torch.no_grad()
    def reset_statistics(self) -> None:
        self.shift.zero_()
        self.scale.fill_(1.0)


class OutputScaling(Calibrated):
    """Update = (batch mean of the raw update - out_mean) * out_scale (MPLP.md §3–4).

    out_scale is trained (initialised to 0.2 x the optimizee's init std); out_mean is a frozen
    calibration mean of the raw update.
    """

    def __init__(self, init_scale: float) -> None:
        super().__init__()
        self.out_scale = nn.Parameter(torch.tensor(float(init_scale)))
        self.register_buffer("out_mean", torch.tensor(0.0))
        self.calibrating = False
        self._collected: list[Tensor] = []

    def forward(self, raw_mean: Tensor, raw: Tensor) -> Tensor:
        if self.calibrating:
            live = raw.detach().mean()
            self._collected.append(live)
            return (raw_mean - live) * self.out_scale
        return (raw_mean - self.out_mean) * self.out_scale

    def _calibrated(self) -> list[Tensor]:
        return [self.out_mean]

    @torch.no_grad()
    def reset_statistics(self) -> None:
        self.out_mean.zero_()
