"""Bootstrap resamples of test items, or of clusters of items when items are not independent.

With clusters (several questions about one document, one template with numbers changed), a
resample draws whole clusters with replacement and keeps all their items: the spread of the
score then includes the correlation inside a cluster, which item resampling would hide.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Optional, Sequence

import numpy as np


def resample_indices(n: int, samples: int, seed: int, clusters: Optional[Sequence] = None) -> list[np.ndarray]:
    """`samples` index arrays into n items: items drawn with replacement, or whole clusters.

    `clusters[i]` is item i's cluster label (any hashable); None resamples items. The same
    (n, samples, seed, clusters) always gives the same arrays, so two epochs resampled with
    them are paired item by item.
    """
    rng = np.random.default_rng(seed)
    if clusters is None:
        return list(rng.integers(0, n, size=(samples, n)))
    members = cluster_members(clusters)
    draws = rng.integers(0, len(members), size=(samples, len(members)))
    return [np.concatenate([members[c] for c in row]) for row in draws]


def cluster_members(clusters: Sequence) -> list[np.ndarray]:
    """Item indices of each cluster, clusters in order of first appearance."""
    groups: dict = {}
    for i, c in enumerate(clusters):
        groups.setdefault(c, []).append(i)
    return [np.array(v, dtype=int) for v in groups.values()]


def resample_weights(indices: list[np.ndarray], n: int) -> np.ndarray:
    """(resamples, n): how many times each item appears in each resample (one bincount for all)."""
    if not indices:
        return np.zeros((0, n))
    flat = np.concatenate([idx + b * n for b, idx in enumerate(indices)])
    return np.bincount(flat, minlength=len(indices) * n).reshape(len(indices), n).astype(float)


@lru_cache(maxsize=8)
def _plan(n: int, samples: int, seed: int, clusters: Optional[tuple]) -> tuple[list[np.ndarray], np.ndarray]:
    indices = resample_indices(n, samples, seed, clusters)
    return indices, resample_weights(indices, n)


def clear_resample_cache() -> None:
    """Forget the resamples made so far (a benchmark timing a fresh process)."""
    _plan.cache_clear()


def resample_plan(n: int, samples: int, seed: int, clusters: Optional[Sequence] = None
                  ) -> tuple[list[np.ndarray], np.ndarray]:
    """The resamples and their weights, made once per (n, samples, seed, clusters): every test of a
    run's task (metrics × epochs) reuses them, which is also what pairs its epochs item by item."""
    return _plan(n, samples, seed, None if clusters is None else tuple(clusters))


def resample_scores(metric, stats: np.ndarray, indices: list[np.ndarray],
                    weights: Optional[np.ndarray] = None) -> np.ndarray:
    """The metric's score on every resample (NaN where a resample has none), in resample order.

    A metric scored from column totals (`Metric.scores_from_totals`) gets them for all resamples
    at once from one matrix product, instead of indexing and summing each resample's rows."""
    if weights is None:
        weights = resample_weights(indices, len(stats))
    fast = metric.scores_from_totals(weights @ stats, weights.sum(axis=1)) if len(indices) else None
    if fast is not None:
        return np.asarray(fast, dtype=float)
    return np.array([metric.score(stats[idx]) for idx in indices], dtype=float)


def finite(values: np.ndarray) -> np.ndarray:
    return values[~np.isnan(values)]


def percentile_interval(values: np.ndarray, confidence: float) -> Optional[tuple[float, float]]:
    if not len(values):
        return None
    alpha = (1 - confidence) / 2
    return float(np.quantile(values, alpha)), float(np.quantile(values, 1 - alpha))


def standard_error(values: np.ndarray) -> Optional[float]:
    return float(np.std(values, ddof=1)) if len(values) > 1 else None


def design_effect(clustered_se: Optional[float], naive_se: Optional[float]) -> Optional[float]:
    """Clustered variance over naive variance: how many items one independent item is worth."""
    if clustered_se is None or not naive_se:
        return None
    return (clustered_se / naive_se) ** 2
