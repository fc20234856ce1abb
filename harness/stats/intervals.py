"""The confidence interval of one corpus score.

- Rate metrics: the Wilson score interval (harness/stats/rates.py), never zero width; with
  clusters, on the effective sample size n / design effect.
- Every other metric: the percentile bootstrap over items (or clusters). Its coverage at 100
  and 400 items is measured in benchmarks/calibration.py.
"""
from __future__ import annotations

from typing import Optional, Sequence, TypedDict

import numpy as np

from harness.stats.rates import is_rate, rate_interval
from harness.stats.resampling import (design_effect, percentile_interval, resample_indices, resampled,
                                      standard_error)

WILSON = "wilson"
PERCENTILE = "percentile bootstrap"


class Interval(TypedDict):
    ci: Optional[list[float]]
    method: str
    se: Optional[float]                 # bootstrap SE of the score (None without resamples)
    design_effect: Optional[float]      # clustered / naive variance (None without clusters)


def score_interval(metric, stats: np.ndarray, samples: int = 1000, seed: int = 0, confidence: float = 0.95,
                   clusters: Optional[Sequence] = None) -> Interval:
    n = len(stats)
    if samples <= 0 or n < 2:
        return Interval(ci=None, method=WILSON if is_rate(metric) else PERCENTILE, se=None, design_effect=None)
    values = resampled(lambda i: metric.score(stats[i]), resample_indices(n, samples, seed, clusters))
    se = standard_error(values)
    deff = None
    if clusters is not None:
        naive = resampled(lambda i: metric.score(stats[i]), resample_indices(n, samples, seed))
        deff = design_effect(se, standard_error(naive))
    if is_rate(metric):
        ci = rate_interval(stats[:, 0], confidence, getattr(metric, "scale", 1.0), deff or 1.0)
        method = WILSON
    else:
        ci = percentile_interval(values, confidence)
        method = PERCENTILE
    return Interval(ci=[float(ci[0]), float(ci[1])] if ci else None, method=method, se=se, design_effect=deff)
