"""The confidence interval of one corpus score.

- Rate metrics: the Wilson score interval (harness/stats/rates.py), never zero width; with
  clusters, on the effective sample size n / design effect.
- Every other metric: the bias-corrected and accelerated (BCa) bootstrap (Efron 1987) over items
  (or clusters). Measured in benchmarks/calibration.py on 400 test sets drawn from 5,000 graded
  items: the plain percentile bootstrap covered BLEU's population score 91.0% of the time at 100
  items, BCa 93.2% (95.0% at 400), because corpus BLEU of a small test set is skewed and biased
  low; chrF and perplexity are nominal with either.
"""
from __future__ import annotations

from statistics import NormalDist
from typing import Optional, Sequence, TypedDict

import numpy as np

from harness.stats.rates import is_rate, rate_interval
from harness.stats.resampling import (cluster_members, design_effect, finite, percentile_interval, resample_plan,
                                      resample_scores, standard_error)

WILSON = "wilson"
BCA = "bca bootstrap"
_N = NormalDist()


class Interval(TypedDict):
    ci: Optional[list[float]]
    method: str
    se: Optional[float]                 # bootstrap SE of the score (None without resamples)
    design_effect: Optional[float]      # clustered / naive variance (None without clusters)


def score_interval(metric, stats: np.ndarray, samples: int = 1000, seed: int = 0, confidence: float = 0.95,
                   clusters: Optional[Sequence] = None) -> Interval:
    n = len(stats)
    method = WILSON if is_rate(metric) else BCA
    if samples <= 0 or n < 2:
        return Interval(ci=None, method=method, se=None, design_effect=None)
    values = finite(resample_scores(metric, stats, *resample_plan(n, samples, seed, clusters)))
    se = standard_error(values)
    deff = None
    if clusters is not None:
        naive = finite(resample_scores(metric, stats, *resample_plan(n, samples, seed)))
        deff = design_effect(se, standard_error(naive))
    if is_rate(metric):
        ci = rate_interval(stats[:, 0], confidence, getattr(metric, "scale", 1.0), deff or 1.0)
    else:
        ci = bca_interval(metric, stats, values, confidence, clusters)
    return Interval(ci=[float(ci[0]), float(ci[1])] if ci else None, method=method, se=se, design_effect=deff)


def bca_interval(metric, stats: np.ndarray, values: np.ndarray, confidence: float,
                 clusters: Optional[Sequence] = None) -> Optional[tuple[float, float]]:
    """BCa: the percentiles of the resampled scores, moved by the bias (z0: where the observed score
    sits among them) and the acceleration (a: the skew of the leave-one-out scores, one item or
    one cluster left out). Degenerate cases (every resample on one side) fall back to percentiles."""
    if not len(values):
        return None
    theta = metric.score(stats)
    share = (np.sum(values < theta) + 0.5 * np.sum(values == theta)) / len(values)
    jack = finite(_leave_one_out(metric, stats, clusters))
    if not 0 < share < 1 or len(jack) < 2:
        return percentile_interval(values, confidence)
    z0 = _N.inv_cdf(share)
    d = jack.mean() - jack
    spread = float(np.sum(d ** 2))
    a = float(np.sum(d ** 3)) / (6 * spread ** 1.5) if spread > 0 else 0.0
    bounds = []
    for q in ((1 - confidence) / 2, 1 - (1 - confidence) / 2):
        z = _N.inv_cdf(q)
        shrink = 1 - a * (z0 + z)
        if shrink <= 0:
            return percentile_interval(values, confidence)
        bounds.append(float(np.quantile(values, _N.cdf(z0 + (z0 + z) / shrink))))
    return bounds[0], bounds[1]


def _leave_one_out(metric, stats: np.ndarray, clusters: Optional[Sequence]) -> np.ndarray:
    """The score with each item (or each cluster) left out, from totals when the metric allows."""
    groups = cluster_members(clusters) if clusters is not None else [np.array([i]) for i in range(len(stats))]
    sums = np.stack([stats[g].sum(axis=0) for g in groups]) if clusters is not None else stats
    sizes = np.array([len(g) for g in groups], dtype=float)
    fast = metric.scores_from_totals(stats.sum(axis=0) - sums, len(stats) - sizes)
    if fast is not None:
        return np.asarray(fast, dtype=float)
    keep = np.ones(len(stats), dtype=bool)
    out = []
    for g in groups:
        keep[g] = False
        out.append(metric.score(stats[keep]))
        keep[g] = True
    return np.array(out, dtype=float)
