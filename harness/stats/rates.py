"""Rate metrics (a 0/1 value per item: usability, JSON validity, exact match).

The percentile bootstrap fails them exactly where users look: a test set that scores 100/100
resamples to 100 every time and claims [100, 100]. Rates get instead:

- the **Wilson score interval** (Wilson 1927), with Brown, Cai & DasGupta's (2001) one-sided
  Poisson bounds for the 1-3 items nearest 0 or n, where the plain Wilson interval's coverage
  dips: never zero width, never outside [0, 1], coverage near nominal at the extremes;
- the **exact McNemar test** for a paired change: only the items that changed carry evidence,
  and under "no change" the worsened ones among them are Binomial(changed, 1/2).
"""
from __future__ import annotations

import math
from statistics import NormalDist
from typing import Optional

import numpy as np


def is_rate(metric) -> bool:
    """A metric whose per-item value is 0 or 1 (the class says so: `rate = True`)."""
    return bool(getattr(metric, "rate", False))


def wilson_interval(successes: float, n: float, confidence: float = 0.95) -> Optional[tuple[float, float]]:
    """Two-sided Wilson score interval for a proportion (0-1), Brown-Cai-DasGupta near the edges.

    `n` may be an effective size (items / design effect) and `successes` fractional then.
    """
    if n <= 0:
        return None
    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(max(p * (1 - p), 0.0) / n + z * z / (4 * n * n))
    low, high = max(0.0, centre - half), min(1.0, centre + half)
    edge = 2 if n <= 50 else 3
    alpha = 1 - confidence
    if 1 <= round(successes) <= edge and abs(successes - round(successes)) < 1e-9:
        low = poisson_lower(round(successes), alpha) / n
    failures = n - successes
    if 1 <= round(failures) <= edge and abs(failures - round(failures)) < 1e-9:
        high = 1 - poisson_lower(round(failures), alpha) / n
    return low, high


def poisson_lower(k: int, alpha: float) -> float:
    """½·χ²(2k) at its 100α-th percentile: the one-sided lower bound of a Poisson mean after k events."""
    def below(lam: float) -> float:   # P(Poisson(lam) >= k) = P(chi2_2k <= 2 lam)
        return 1 - sum(math.exp(-lam) * lam ** i / math.factorial(i) for i in range(k))
    lo, hi = 0.0, float(k) + 10
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if below(mid) < alpha else (lo, mid)
    return (lo + hi) / 2


def rate_interval(values: np.ndarray, confidence: float, scale: float, design_effect: float = 1.0
                  ) -> Optional[tuple[float, float]]:
    """Wilson interval of the mean of 0/1 `values`, in the metric's units (`scale`, e.g. 100 for %)."""
    n = len(values)
    if n == 0:
        return None
    deff = max(design_effect, 1.0)
    got = wilson_interval(float(np.sum(values)) / deff, n / deff, confidence)
    return None if got is None else (got[0] * scale, got[1] * scale)


def mcnemar_worse(new: np.ndarray, old: np.ndarray, higher_is_better: bool = True) -> dict:
    """Exact one-sided McNemar test of 'new is worse than old' on paired 0/1 values.

    worse = items that went from good to bad, better = the reverse; p = P(X >= worse) for
    X ~ Binomial(worse + better, 1/2). No changed item: p = 1 (nothing can be concluded).
    """
    new, old = np.asarray(new, dtype=float), np.asarray(old, dtype=float)
    went_down = int(np.sum((old > 0.5) & (new < 0.5)))
    went_up = int(np.sum((old < 0.5) & (new > 0.5)))
    worse, better = (went_down, went_up) if higher_is_better else (went_up, went_down)
    return {"worse": worse, "better": better, "p_value": binomial_upper_tail(worse, worse + better)}


def binomial_upper_tail(k: int, n: int) -> float:
    """P(X >= k) for X ~ Binomial(n, 1/2), exact (integer arithmetic)."""
    if n == 0 or k <= 0:
        return 1.0
    return min(1.0, sum(math.comb(n, i) for i in range(k, n + 1)) / 2 ** n)


def smallest_detectable_count(alpha: float) -> int:
    """The fewest changed items, all in one direction, with which McNemar reaches p < alpha."""
    return max(1, math.ceil(math.log2(1 / alpha) + 1e-12))
