"""What a test set can see: the minimum detectable effect (MDE) and the items needed.

For a one-sided test at level alpha with power 1 - beta, a drop is detected in 1 - beta of
repeated experiments when drop >= (z_{1-alpha} + z_{1-beta}) * SE(difference). SE(difference)
comes from the data:
- before any trained epoch (epoch 0 alone) the pairing is unknown: SE(diff) = sqrt(2) * SE(score),
  the bound for two independent gradings ("unpaired");
- once an epoch is graded, the paired bootstrap's SE of the difference ("paired"), usually far
  smaller because the same items are hard for both;
- for rates tested with exact McNemar, SE(diff) = sqrt(discordant share / n), and no drop
  smaller than `smallest_detectable_count(alpha)` changed items can ever reach p < alpha.
SE shrinks as 1/sqrt(n), so the items needed to see a threshold T are n * (MDE / T)^2.
"""
from __future__ import annotations

import math
from statistics import NormalDist
from typing import Optional

from harness.stats.rates import smallest_detectable_count

_N = NormalDist()


def z_sum(alpha: float, power: float) -> float:
    return _N.inv_cdf(1 - alpha) + _N.inv_cdf(power)


def mde_from_se(se_diff: Optional[float], alpha: float, power: float) -> Optional[float]:
    return None if se_diff is None else z_sum(alpha, power) * se_diff


def items_needed(n: int, mde: Optional[float], threshold: float) -> Optional[int]:
    """Items that bring the MDE down to `threshold` (same item difficulty, SE ∝ 1/sqrt(n))."""
    if mde is None or n <= 0:
        return None
    if threshold <= 0:
        return None   # a zero threshold: any drop counts, no finite test set sees them all
    return max(n, math.ceil(n * (mde / threshold) ** 2))


def rate_mde(n: int, discordant_share: float, alpha: float, power: float, scale: float) -> float:
    """MDE of a rate (in the metric's units) under exact McNemar with `n` paired items."""
    if n <= 0:
        return math.inf
    normal = z_sum(alpha, power) * math.sqrt(discordant_share / n)
    return max(smallest_detectable_count(alpha) / n, normal) * scale


def rate_items_needed(n: int, discordant_share: float, alpha: float, power: float, scale: float,
                      threshold: float) -> Optional[int]:
    if threshold <= 0 or n <= 0:
        return None
    floor = smallest_detectable_count(alpha) * scale / threshold
    normal = (z_sum(alpha, power) * math.sqrt(discordant_share) * scale / threshold) ** 2
    return max(n, math.ceil(max(floor, normal)))


def unpaired_discordance(successes: float, n: int) -> float:
    """Discordant share expected between two independent gradings at the observed rate,
    shrunk towards 1/2 ((x + 2) / (n + 4), Agresti-Coull) so that 100/100 does not read as 'no noise'."""
    p = (successes + 2) / (n + 4)
    return 2 * p * (1 - p)


def paired_discordance(changed: int, n: int) -> float:
    """Observed share of items that changed, shrunk ((c + 1) / (n + 2)) so that 0 changes is not 0."""
    return (changed + 1) / (n + 2)
