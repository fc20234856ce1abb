"""What every metric is: per-sample sufficient statistics plus a corpus aggregate.

Keeping per-sample statistics (not just per-sample scores) is what makes corpus BLEU,
bootstrap confidence intervals and paired significance tests all computable later from
the run directory alone: resample rows of the statistics matrix, aggregate again.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Optional, Sequence

import numpy as np

from harness.metric_options import NoOptions, Options


@dataclass
class GradedItem:
    """One graded test item: what went in, what came out, and the model's likelihood."""

    id: str
    source: str            # the last user message (what a person reads as the input)
    reference: str         # the gold assistant answer
    output: Optional[str] = None          # generated text (None when not generated)
    finish_reason: Optional[str] = None   # "eos" | "length" | None (unknown: predictions file)
    nll_sum: Optional[float] = None       # sum of NLL over reference assistant tokens
    n_tokens: Optional[int] = None        # number of those tokens
    extra: dict = field(default_factory=dict)


class Metric:
    """A metric with one job. Subclasses set `name`, `higher_is_better`, `needs`.

    A class listed in the catalogue (harness/metrics/__init__.py `METRICS`) also says what the
    rest of the harness derives from it: its typed `options` model, the `results` it stores, and
    `from_options`, which makes its metric objects from those options.
    """

    name: str = ""
    higher_is_better: bool = True
    needs: str = "output"  # "output" (generated text) or "likelihood" (nll_sum/n_tokens)
    rate: bool = False     # per-item value is 0 or 1: Wilson intervals, exact McNemar (harness/stats/rates.py)
    options: ClassVar[type[Options]] = NoOptions   # its entry in a task's `metric_options`
    results: ClassVar[tuple[str, ...]] = ()         # names it stores in results.json, when not only `name`

    @classmethod
    def result_names(cls) -> tuple[str, ...]:
        return cls.results or (cls.name,)

    @classmethod
    def from_options(cls, options: Options) -> list["Metric"]:
        """The metric objects a task grades with, from its typed options (ROUGE makes three)."""
        return [cls()]

    def stats(self, items: Sequence[GradedItem]) -> np.ndarray:
        """(n_items, k) per-sample sufficient statistics."""
        raise NotImplementedError

    def score(self, stats: np.ndarray) -> float:
        """Corpus score from a (possibly resampled) statistics matrix."""
        raise NotImplementedError

    def scores_from_totals(self, totals: np.ndarray, counts: np.ndarray) -> Optional[np.ndarray]:
        """Scores of many resamples at once from their column totals `(B, k)` and item counts `(B,)`,
        for a metric whose score is a function of the column sums and the item count (every built-in
        one: corpus BLEU/chrF/TER from summed n-gram counts, perplexity from summed NLL and tokens,
        rates and ROUGE as means). None: not such a metric, so resampling scores each resample's rows."""
        return None

    def sample_score(self, row: np.ndarray) -> float:
        """Score of one item, for sorting samples in the report. Default: corpus score of one row."""
        return float(self.score(np.asarray(row, dtype=float)[None, :]))

    def signature(self) -> str:
        return self.name

    def check_references(self, references: Sequence[str]) -> None:
        """Refuse (raise a UserError) before grading when the references make the score meaningless."""

    def details(self, items: Sequence[GradedItem]) -> list[dict]:
        """Optional per-sample diagnostics (e.g. JSON error messages); one dict per item."""
        return [{} for _ in items]


class MeanMetric(Metric):
    """A metric that is the mean of one per-sample value, reported in percent (0-100)."""

    scale = 100.0

    def value(self, item: GradedItem) -> float:
        raise NotImplementedError

    def stats(self, items: Sequence[GradedItem]) -> np.ndarray:
        return np.array([[self.value(it)] for it in items], dtype=float).reshape(len(items), 1)

    def score(self, stats: np.ndarray) -> float:
        return float(stats[:, 0].mean() * self.scale) if len(stats) else float("nan")

    def scores_from_totals(self, totals: np.ndarray, counts: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(counts > 0, totals[:, 0] / np.maximum(counts, 1) * self.scale, np.nan)


HARNESS_PART = "|harness:"


def signed(metric: Metric) -> str:
    """The metric's signature with the harness version last (sacrebleu's order): two scores are
    comparable when their signatures agree, and which harness computed a score shows in it."""
    from harness import __version__

    return f"{metric.signature()}{HARNESS_PART}{__version__}"


def split_harness_version(signature: str) -> tuple[str, Optional[str]]:
    """(how the metric was computed, harness version or None for a signature without one)."""
    head, sep, version = signature.rpartition(HARNESS_PART)
    return (head, version) if sep else (signature, None)
