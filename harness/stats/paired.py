"""One paired comparison: is `new` worse than `old` on the same test items, beyond noise?

Rows of the two statistics matrices are the same items (the caller aligns them by id). The
delta's spread comes from one set of bootstrap resamples applied to both sides (items or
whole clusters), so item difficulty cancels. The p-value is one-sided, in the direction of
a drop:
- rate metrics (0/1 per item), items independent: exact McNemar on the items that changed;
- everything else: z = drop / SE(delta) against the normal distribution, SE from the paired
  bootstrap. A p-value counted from resamples stops at 1/(resamples + 1) (0.001 for 1,000),
  too coarse to survive the family-wise adjustment of a run's 40 tests; the normal tail
  does not, and the calibration benchmark checks its size (benchmarks/calibration.py).
"""
from __future__ import annotations

from statistics import NormalDist
from typing import Optional, Sequence

import numpy as np

from harness.stats.rates import is_rate, mcnemar_worse
from harness.stats.resampling import finite, percentile_interval, resample_plan, resample_scores, standard_error

BOOTSTRAP_TEST = "one-sided paired bootstrap (normal tail)"
MCNEMAR_TEST = "one-sided exact McNemar"


def compare_worse(metric, new: np.ndarray, old: np.ndarray, *, samples: int = 1000, seed: int = 0,
                  confidence: float = 0.95, clusters: Optional[Sequence] = None) -> dict:
    """{delta, drop, se, ci, p_value, test, n, samples[, worse, better]} for 'new is worse than old'.

    delta = score(new) - score(old); drop = delta's worse-direction size (> 0 is worse). ci is
    the percentile interval of the resampled delta. p_value is None when nothing can be tested
    (fewer than 2 items, or no resamples).
    """
    if len(new) != len(old):
        raise ValueError(f"a paired test needs the same items ({len(new)} vs {len(old)})")
    higher = metric.higher_is_better is not False
    delta = float(metric.score(new) - metric.score(old))
    out: dict = {"delta": delta, "drop": -delta if higher else delta, "se": None, "ci": None,
                 "p_value": None, "test": None, "n": len(new), "samples": 0}
    if samples <= 0 or len(new) < 2:
        return out
    idx, weights = resample_plan(len(new), samples, seed, clusters)
    deltas = finite(resample_scores(metric, new, idx, weights) - resample_scores(metric, old, idx, weights))
    if not len(deltas):
        return out
    out.update(se=standard_error(deltas), samples=samples)
    ci = percentile_interval(deltas, confidence)
    out["ci"] = list(ci) if ci else None
    if is_rate(metric) and clusters is None:
        mc = mcnemar_worse(new[:, 0], old[:, 0], higher)
        out.update(p_value=mc["p_value"], test=MCNEMAR_TEST, worse=mc["worse"], better=mc["better"])
    else:
        out.update(p_value=normal_tail(out["drop"], out["se"], samples), test=BOOTSTRAP_TEST)
    return out


def normal_tail(drop: float, se: Optional[float], samples: int) -> float:
    """P(Z >= drop / se); a zero SE (every resample gave the same delta) is decided by the sign."""
    if se is None or se <= 0:
        return 1 / (samples + 1) if drop > 0 else 1.0
    return 1 - NormalDist().cdf(drop / se)
