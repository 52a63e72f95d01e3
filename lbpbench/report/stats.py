"""Summary statistics over seeds: bootstrap confidence intervals and the interquartile mean.

Seeds are few (3-10), so a percentile bootstrap with a fixed generator seed gives an honest interval
that is also reproducible: the same results always give the same table and the same images.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

BOOTSTRAP_SEED = 0
BOOTSTRAP_RESAMPLES = 2000


def _resampled_means(x: np.ndarray, rng: np.random.Generator, resamples: int) -> np.ndarray:
    """Means of `resamples` samples of x drawn with replacement."""
    return x[rng.integers(0, x.size, size=(resamples, x.size))].mean(axis=1)


def bootstrap_ci(
    values: np.ndarray | list[float],
    *,
    confidence: float = 0.95,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float, float]:
    """Percentile-bootstrap interval of the mean; (nan, nan) below two values (no spread to resample).

    A fresh `numpy.random.Generator(seed)` per call makes a row's interval independent of the order
    in which rows are computed.
    """
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if x.size < 2:
        return (float("nan"), float("nan"))
    means = _resampled_means(x, np.random.default_rng(seed), resamples)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return (float(low), float(high))


def bootstrap_difference_ci(
    a: np.ndarray | list[float],
    b: np.ndarray | list[float],
    *,
    confidence: float = 0.95,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float, float, float]:
    """mean(a) - mean(b) and its percentile-bootstrap interval, each side resampled on its own.

    Two configurations' draws are independent (different cells, no pairing by seed that survives
    thousands of meta-steps), so the sides are resampled apart; (nan, nan, nan) below two values a
    side, where a resample has no spread to show.
    """
    x, y = (np.asarray(v, dtype=float) for v in (a, b))
    x, y = x[np.isfinite(x)], y[np.isfinite(y)]
    if x.size < 2 or y.size < 2:
        return (float("nan"), float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    diffs = _resampled_means(x, rng, resamples) - _resampled_means(y, rng, resamples)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(diffs, [alpha, 1.0 - alpha])
    return (float(x.mean() - y.mean()), float(low), float(high))


def mean_ci_text(values: np.ndarray | list[float], digits: int = 4) -> str:
    """"mean [low, high] (n=k)" over the finite values, for the numbers files behind a summary's
    claims; "none" without a finite value, no interval below two."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return "none"
    low, high = bootstrap_ci(x)
    ci = "" if np.isnan(low) else f" [{low:.{digits}g}, {high:.{digits}g}]"
    return f"{x.mean():.{digits}g}{ci} (n={x.size})"


def iqm(values: np.ndarray | list[float]) -> float:
    """Interquartile mean (mean of the middle 50 %, `trim_mean(x, 0.25)`), robust to one bad seed."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return float("nan")
    return float(stats.trim_mean(x, 0.25))
