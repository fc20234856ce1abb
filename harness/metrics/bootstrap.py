"""Bootstrap resampling over test items: confidence intervals and paired comparisons.

Both work on per-sample statistics matrices (see metrics/base.py), so they apply to every
metric the same way: BLEU is re-aggregated from n-gram counts, perplexity from NLL and
token sums, rates from 0/1 values.
"""
from __future__ import annotations

import numpy as np

from harness.metrics.base import Metric


def resample_p_value(count: int, resamples: int) -> float:
    """(c + 1) / (n + 1): c of n resamples at least as extreme, the observed data counted once."""
    return (count + 1) / (resamples + 1)


def _indices(n: int, samples: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(samples, n))


def bootstrap_ci(
    metric: Metric, stats: np.ndarray, samples: int = 1000, seed: int = 0, confidence: float = 0.95
) -> tuple[float, float] | None:
    """Percentile interval of the corpus score over `samples` resamples of the items."""
    n = len(stats)
    if samples <= 0 or n < 2:
        return None
    scores = np.array([metric.score(stats[idx]) for idx in _indices(n, samples, seed)])
    scores = scores[~np.isnan(scores)]
    if not len(scores):
        return None
    alpha = (1 - confidence) / 2
    return float(np.quantile(scores, alpha)), float(np.quantile(scores, 1 - alpha))


def paired_bootstrap(
    metric: Metric,
    stats_new: np.ndarray,
    stats_old: np.ndarray,
    samples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
    alternative: str = "two-sided",
) -> dict:
    """Is `new` different from `old` on the same items, beyond resampling noise?

    Returns the observed delta (new - old), its percentile interval, and a p-value. Rows must
    be aligned: row i of both matrices is the same test item.

    `alternative` (as in scipy.stats): "two-sided" (default) counts the resamples whose delta
    has the other sign than the observed one, doubled; "less" tests H1 new < old and counts the
    resamples with delta >= 0; "greater" tests H1 new > old and counts those with delta <= 0.
    The gate uses the one-sided form in the direction of a drop ("less" for higher-is-better
    metrics, "greater" for lower-is-better ones).

    The p-value of c counted resamples out of n is (c + 1) / (n + 1), as sacrebleu's
    significance tests compute it: the observed data counts as one resample, so p is never 0
    (the smallest is 1 / (n + 1)) and a test with few resamples cannot claim certainty.
    """
    if alternative not in ("two-sided", "less", "greater"):
        raise ValueError(f"alternative must be two-sided, less or greater, not {alternative!r}")
    if len(stats_new) != len(stats_old):
        raise ValueError(f"paired bootstrap needs the same items ({len(stats_new)} vs {len(stats_old)})")
    delta = metric.score(stats_new) - metric.score(stats_old)
    n = len(stats_new)
    if samples <= 0 or n < 2:
        return {"delta": delta, "ci": None, "p_value": None, "samples": 0}
    deltas = np.array(
        [metric.score(stats_new[idx]) - metric.score(stats_old[idx]) for idx in _indices(n, samples, seed)]
    )
    deltas = deltas[~np.isnan(deltas)]
    if not len(deltas):
        return {"delta": float(delta), "ci": None, "p_value": None, "samples": 0}
    alpha = (1 - confidence) / 2
    if alternative == "less":
        p = resample_p_value(int(np.sum(deltas >= 0)), len(deltas))
    elif alternative == "greater":
        p = resample_p_value(int(np.sum(deltas <= 0)), len(deltas))
    elif delta >= 0:
        p = 2 * resample_p_value(int(np.sum(deltas <= 0)), len(deltas))
    else:
        p = 2 * resample_p_value(int(np.sum(deltas >= 0)), len(deltas))
    return {
        "delta": float(delta),
        "ci": [float(np.quantile(deltas, alpha)), float(np.quantile(deltas, 1 - alpha))],
        "p_value": min(1.0, p),
        "samples": samples,
    }
