"""Bootstrap resamples of test items, or of clusters of items when items are not independent.

With clusters (several questions about one document, one template with numbers changed), a
resample draws whole clusters with replacement and keeps all their items: the spread of the
score then includes the correlation inside a cluster, which item resampling would hide.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

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


def resampled(score: Callable[[np.ndarray], float], indices: list[np.ndarray]) -> np.ndarray:
    """score(idx) for every index array, NaNs (an empty or degenerate resample) dropped."""
    values = np.array([score(idx) for idx in indices], dtype=float)
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
