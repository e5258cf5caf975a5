"""Bootstrap confidence intervals of means over targets: one mean, or a paired mean difference.

The statistics behind every interval the project prints: ``rl.eval`` (the interval of each
headline mean), ``rl.compare`` (the paired difference of two evaluations) and ``bench/``.
Targets are the resampled unit (an evaluation's targets are the sample; a program per target).
Arrays in, numbers out: no records, no files.

- :func:`bootstrap_means`: BCa intervals of the means of many rows at once (vectorised; checked
  against ``scipy.stats.bootstrap(method="BCa")`` in ``tests/reward/test_intervals.py``).
- :func:`mean_interval`: ``(mean, low, high)`` of one set of values.
- :func:`paired_interval`: ``(mean(b - a), low, high)`` of paired values.
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr, ndtri

RESAMPLES = 10_000
"""Bootstrap resamples of the targets."""
CONFIDENCE = 0.95
"""Two-sided level of every interval."""


def bootstrap_means(
    values: np.ndarray, resamples: int = RESAMPLES, confidence: float = CONFIDENCE, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """BCa bootstrap intervals of the mean of each row, vectorised.

    Every row is resampled with the same ``resamples`` draws of its ``n`` columns (multiplicity
    counts, so a row costs one matrix product); the percentile interval is then corrected for bias
    (``z0``: the share of resampled means below the observed one) and acceleration (``a``: from
    the jackknife), as ``scipy.stats.bootstrap(method="BCa")`` does. A row without spread gets
    the point as its interval.

    Parameters
    ----------
    values : (m, n) float
        n values (targets) of m independent sets: paired differences ``b - a``, or plain values.
    resamples, confidence, seed :
        Bootstrap resamples, two-sided level, seed of the draws.

    Returns
    -------
    low, high : (m,) float64
    """
    d = np.atleast_2d(np.asarray(values, dtype=np.float64))
    m, n = d.shape
    rng = np.random.default_rng(seed)
    draws = np.repeat(np.arange(resamples) * n, n) + rng.integers(0, n, resamples * n)
    counts = np.bincount(draws, minlength=resamples * n).reshape(resamples, n).astype(np.float64)
    boot = np.sort(d @ counts.T / n, axis=1)  # (m, resamples) resampled means, sorted
    mean = d.mean(axis=1, keepdims=True)
    below = (np.sum(boot < mean, axis=1) + np.sum(boot <= mean, axis=1)) / (2 * resamples)
    z0 = ndtri(np.clip(below, 0.5 / resamples, 1 - 0.5 / resamples))[:, None]
    jackknife = (d.sum(axis=1, keepdims=True) - d) / max(n - 1, 1)  # (m, n) leave-one-out means
    spread = jackknife.mean(axis=1, keepdims=True) - jackknife
    denominator = 6 * np.sum(spread**2, axis=1, keepdims=True) ** 1.5
    accel = np.divide(np.sum(spread**3, axis=1, keepdims=True), denominator,
                      out=np.zeros((m, 1)), where=denominator > 0)
    z = ndtri(np.array([[(1 - confidence) / 2, (1 + confidence) / 2]]))
    levels = ndtr(z0 + (z0 + z) / (1 - accel * (z0 + z)))  # (m, 2)
    position = levels * (resamples - 1)
    lower = np.clip(np.floor(position).astype(int), 0, resamples - 1)
    upper = np.minimum(lower + 1, resamples - 1)
    weight = position - lower
    ends = np.take_along_axis(boot, lower, 1) * (1 - weight) + np.take_along_axis(boot, upper, 1) * weight
    flat = np.ptp(d, axis=1) == 0
    ends[flat] = mean[flat]
    return ends[:, 0], ends[:, 1]


def mean_interval(values, seed: int = 0, resamples: int = RESAMPLES):
    """``(mean, low, high)``: the mean of ``values`` and its 95 % bootstrap interval.

    ``values`` is ``(n,)`` (floats back) or ``(m, n)`` for m independent sets (``(m,)`` arrays back).
    """
    values = np.asarray(values, dtype=np.float64)
    low, high = bootstrap_means(np.atleast_2d(values), resamples, CONFIDENCE, seed)
    mean = np.atleast_2d(values).mean(axis=1)
    if values.ndim == 1:
        return float(mean[0]), float(low[0]), float(high[0])
    return mean, low, high


def paired_interval(a, b, seed: int = 0, resamples: int = RESAMPLES):
    """``(mean(b - a), low, high)``: the difference and its 95 % paired bootstrap interval.

    ``a`` and ``b`` are ``(n,)`` values of n paired targets (floats back), or ``(m, n)`` for m
    independent comparisons at once (``(m,)`` arrays back).
    """
    return mean_interval(np.asarray(b, dtype=np.float64) - np.asarray(a, dtype=np.float64), seed, resamples)
