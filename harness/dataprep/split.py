"""Train/validation split with a floor on validation size, grouped by prompt.

Validation target v = `validation` rows (if ≥ 1) or round(`validation` × N), raised to
`min_validation`. Rows are grouped by prompt key (identical rows share a prompt, so they
group too); whole groups are drawn in a seeded random order until v rows are reached, so no
row and no prompt is on both sides. With `stratify`, each source gets its share of v
(largest remainder) from the groups whose first row came from it.
"""
from __future__ import annotations

import numpy as np

from harness.dataprep.mix import largest_remainder
from harness.dataprep.recipe import SplitSpec
from harness.errors import DataError


def validation_target(n: int, spec: SplitSpec) -> int:
    v = int(spec.validation) if spec.validation >= 1 else int(round(spec.validation * n))
    return max(v, spec.min_validation)


def split(prompt_keys: np.ndarray, sources: np.ndarray, spec: SplitSpec,
          rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the train and validation rows (each in the input's order)."""
    n = len(prompt_keys)
    v = validation_target(n, spec)
    if v >= n:
        raise DataError(f"{n} rows after mixing cannot give a validation set of {v} rows and keep training rows: "
                        f"add data, or lower split.min_validation / split.validation")
    if v == 0:
        return np.arange(n), np.zeros(0, dtype=np.int64)
    _, first, group = np.unique(prompt_keys, return_index=True, return_inverse=True)
    group = group.reshape(-1)
    group_size = np.bincount(group)
    chosen = np.zeros(len(group_size), dtype=bool)
    if spec.stratify:
        stratum = sources[first]
        labels = np.unique(stratum)
        quota = largest_remainder(np.array([np.sum(sources == s) for s in labels], dtype=float), v)
        strata = [(np.flatnonzero(stratum == s), q) for s, q in zip(labels, quota)]
    else:
        strata = [(np.arange(len(group_size)), v)]
    for groups, q in strata:
        if q <= 0:
            continue
        order = groups[rng.permutation(len(groups))]
        reach = np.cumsum(group_size[order])
        k = int(np.searchsorted(reach, q)) + 1     # groups needed to reach the quota
        chosen[order[:k]] = True
    in_val = chosen[group]
    train, val = np.flatnonzero(~in_val), np.flatnonzero(in_val)
    if len(train) == 0:
        raise DataError(f"every prompt group landed in validation ({n} rows): add data or lower split.validation")
    return train, val
