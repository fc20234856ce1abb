"""BLEU, chrF and TER through sacrebleu, from per-sentence sufficient statistics.

sacrebleu's own paired bootstrap works the same way: it extracts per-segment statistics
once and re-aggregates resampled rows. Scores equal `sacrebleu` CLI output exactly.
The tokenizer follows the task's target language as sacrebleu's `-l` does (zh, ja-mecab,
ko-mecab, else 13a; see metrics/language.py) unless the suite sets `tokenize`.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from harness.metrics.base import GradedItem, Metric
from harness.metric_options import BleuOptions, ChrfOptions, TerOptions, validate_options
from harness.metrics.language import require_tokenizer


class _Sacrebleu(Metric):
    def __init__(self, impl):
        self.impl = impl

    def stats(self, items: Sequence[GradedItem]) -> np.ndarray:
        hyps = [it.output or "" for it in items]
        refs = [[it.reference for it in items]]
        if not items:
            return np.zeros((0, 1))
        return np.asarray(self.impl._extract_corpus_statistics(hyps, refs), dtype=float)

    def score(self, stats: np.ndarray) -> float:
        if len(stats) == 0:
            return float("nan")
        total = stats.sum(axis=0)
        as_int = [int(x) if float(x).is_integer() else float(x) for x in total]
        return float(self.impl._compute_score_from_stats(as_int).score)

    def signature(self) -> str:
        try:
            return str(self.impl.get_signature())
        except ValueError:  # sacrebleu learns the reference count from its first corpus
            self.impl._extract_corpus_statistics(["x"], [["x"]])
            return str(self.impl.get_signature())


# sacrebleu is imported when a metric is made, not when the catalogue (and so the suite) loads.
class Bleu(_Sacrebleu):
    name, options = "bleu", BleuOptions

    @classmethod
    def from_options(cls, options: BleuOptions) -> list[Metric]:
        from sacrebleu.metrics import BLEU

        if options.tokenize is not None:
            require_tokenizer(options.tokenize)   # ja-mecab / ko-mecab: their optional packages, one clear line
        return [cls(BLEU(**options.model_dump()))]


class Chrf(_Sacrebleu):
    name, options = "chrf", ChrfOptions

    @classmethod
    def from_options(cls, options: ChrfOptions) -> list[Metric]:
        from sacrebleu.metrics import CHRF

        return [cls(CHRF(**options.model_dump()))]


class Ter(_Sacrebleu):
    name, options, higher_is_better = "ter", TerOptions, False

    @classmethod
    def from_options(cls, options: TerOptions) -> list[Metric]:
        from sacrebleu.metrics import TER

        return [cls(TER(**options.model_dump()))]


def bleu(options: BleuOptions | dict) -> list[Metric]:
    return Bleu.from_options(validate_options("bleu", BleuOptions, options))


def chrf(options: ChrfOptions | dict) -> list[Metric]:
    return Chrf.from_options(validate_options("chrf", ChrfOptions, options))


def ter(options: TerOptions | dict) -> list[Metric]:
    return Ter.from_options(validate_options("ter", TerOptions, options))
