"""Family-wise error control: one run tests every task × metric × graded epoch.

At 5% each, 40 independent null tests flag something 87% of the time. Holm's step-down
procedure (Holm 1979) keeps the chance of any false flag in the whole family at alpha, under
any dependence between the tests (metrics of one task and epochs of one run are strongly
correlated, which Holm tolerates at the price of some power), and it is uniformly more
powerful than Bonferroni. The tests may be of different kinds (bootstrap, exact McNemar).
"""
from __future__ import annotations

from typing import Optional, Sequence


def holm(p_values: Sequence[Optional[float]]) -> list[Optional[float]]:
    """Holm-adjusted p-values (None, for a test not run, stays None and is not counted)."""
    present = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    m = len(present)
    adjusted: list[Optional[float]] = [None] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(present):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted
