"""Perplexity on assistant tokens: exp(sum of NLL / sum of tokens), token-weighted.

Not a mean of per-batch or per-sample means: long answers weigh by their length.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from harness.metrics.base import GradedItem, Metric
from harness.metric_options import NoOptions, validate_options


class Perplexity(Metric):
    name = "perplexity"
    higher_is_better = False
    needs = "likelihood"

    def stats(self, items: Sequence[GradedItem]) -> np.ndarray:
        return np.array([[it.nll_sum, it.n_tokens] for it in items], dtype=float).reshape(len(items), 2)

    def score(self, stats: np.ndarray) -> float:
        tokens = stats[:, 1].sum()
        return math.exp(stats[:, 0].sum() / tokens) if tokens > 0 else float("nan")

    def scores_from_totals(self, totals: np.ndarray, counts: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            return np.where(totals[:, 1] > 0, np.exp(totals[:, 0] / np.where(totals[:, 1] > 0, totals[:, 1], 1)),
                            np.nan)

    def signature(self) -> str:
        return "perplexity|tokens:assistant|agg:token-weighted"


def perplexity(options: NoOptions | dict) -> list[Metric]:
    return Perplexity.from_options(validate_options("perplexity", NoOptions, options))
