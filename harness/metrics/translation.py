"""BLEU, chrF and TER through sacrebleu, from per-sentence sufficient statistics.

sacrebleu's own paired bootstrap works the same way: it extracts per-segment statistics
once and re-aggregates resampled rows. Scores equal `sacrebleu` CLI output exactly.
The tokenizer follows the task's target language as sacrebleu's `-l` does (zh, ja-mecab,
ko-mecab, else 13a; see metrics/language.py) unless the suite sets `tokenize`.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from sacrebleu.metrics import BLEU, CHRF, TER

from harness.metrics.base import GradedItem, Metric
from harness.metric_options import BleuOptions, ChrfOptions, TerOptions, options_for
from harness.metrics.language import require_tokenizer


class _Sacrebleu(Metric):
    def __init__(self, impl, name: str, higher_is_better: bool = True):
        self.impl, self.name, self.higher_is_better = impl, name, higher_is_better

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


def bleu(options: BleuOptions | dict) -> list[Metric]:
    opts = options_for("bleu", options)
    if opts.tokenize is not None:
        require_tokenizer(opts.tokenize)   # ja-mecab / ko-mecab: their optional packages, one clear line
    return [_Sacrebleu(BLEU(**opts.model_dump()), "bleu")]


def chrf(options: ChrfOptions | dict) -> list[Metric]:
    return [_Sacrebleu(CHRF(**options_for("chrf", options).model_dump()), "chrf")]


def ter(options: TerOptions | dict) -> list[Metric]:
    return [_Sacrebleu(TER(**options_for("ter", options).model_dump()), "ter", higher_is_better=False)]
