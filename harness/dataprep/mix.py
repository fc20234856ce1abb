"""Mixing the de-duplicated sources by weight, seeded.

  concat      every row once, in a seeded random order (weights unused);
  interleave  at each step a source is drawn with probability weight / Σ weights and gives
              its next row (sources are shuffled first); stops when the drawn source has no
              rows left, or at `size`. No row repeats; the ratios are approximate.
  resample    quota_i = weight_i / Σ weights × size, rounded by largest remainder so the
              quotas sum to size; each source's quota is drawn with replacement. Exact ratios.

Returns, for the rows after mixing, their positions in the concatenated pools.
"""
from __future__ import annotations

import numpy as np

from harness.dataprep.recipe import MixSpec
from harness.errors import DataError


def largest_remainder(weights: np.ndarray, total: int) -> np.ndarray:
    raw = weights / weights.sum() * total
    quota = np.floor(raw).astype(np.int64)
    rest = total - quota.sum()
    order = np.argsort(-(raw - quota), kind="stable")
    quota[order[:rest]] += 1
    return quota


def mix(pool_sizes: list[int], weights: list[float], spec: MixSpec, rng: np.random.Generator) -> np.ndarray:
    sizes = np.asarray(pool_sizes, dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    w = np.asarray(weights, dtype=float)
    if spec.strategy == "concat":
        order = rng.permutation(int(sizes.sum()))
        return order[: spec.size] if spec.size else order
    if spec.strategy == "interleave":
        shuffled = [starts[i] + rng.permutation(n) for i, n in enumerate(sizes)]
        draws = rng.choice(len(sizes), size=int(sizes.sum()) + 1, p=w / w.sum())
        taken = np.zeros_like(draws)
        for i in range(len(sizes)):    # how many rows source i has given by each step
            hit = draws == i
            taken[hit] = np.cumsum(hit)[hit]
        exhausted = np.flatnonzero(taken > sizes[draws])
        stop = int(exhausted[0]) if len(exhausted) else len(draws)
        if spec.size:
            stop = min(stop, spec.size)
        draws, taken = draws[:stop], taken[:stop]
        out = np.zeros(stop, dtype=np.int64)
        for i in range(len(sizes)):
            hit = draws == i
            out[hit] = shuffled[i][taken[hit] - 1]
        return out
    # resample
    total = spec.size or int(sizes.sum())
    quota = largest_remainder(w, total)
    empty = [i for i in range(len(sizes)) if quota[i] and not sizes[i]]
    if empty:
        raise DataError(f"source #{empty[0] + 1} has no rows left after de-duplication but a weight: "
                        f"resample cannot draw from it")
    picks = [starts[i] + rng.integers(0, sizes[i], size=quota[i]) for i in range(len(sizes))]
    mixed = np.concatenate(picks) if picks else np.zeros(0, dtype=np.int64)
    return mixed[rng.permutation(len(mixed))]
