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
        return self._from_total(stats.sum(axis=0))

    def scores_from_totals(self, totals: np.ndarray, counts: np.ndarray) -> np.ndarray:
        return np.array([self._from_total(t) if c > 0 else float("nan") for t, c in zip(totals, counts)])

    def _from_total(self, total: np.ndarray) -> float:
        # sacrebleu wants counts as ints (its checks compare with 0); TER's reference length may be fractional
        as_int = total.astype(np.int64).tolist() if np.all(total == np.floor(total)) else total.tolist()
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

    def scores_from_totals(self, totals: np.ndarray, counts: np.ndarray) -> np.ndarray:
        """sacrebleu's BLEU.compute_bleu for every row at once (smoothing none, floor or exp, no effective
        order; other settings score row by row). tests/test_stats.py holds them equal."""
        impl = self.impl
        if impl.effective_order or impl.smooth_method not in ("none", "floor", "exp"):
            return super().scores_from_totals(totals, counts)
        order = impl.max_ngram_order
        sys_len, ref_len = totals[:, 0], totals[:, 1]
        correct, total = totals[:, 2:2 + order], totals[:, 2 + order:2 + 2 * order]
        smooth = impl.smooth_value if impl.smooth_value is not None else impl.SMOOTH_DEFAULTS[impl.smooth_method]
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            bp = np.where(sys_len < ref_len, np.where(sys_len > 0, np.exp(1 - ref_len / np.where(sys_len > 0, sys_len,
                                                                                                    1)), 0.0), 1.0)
            precisions = np.zeros_like(correct, dtype=float)
            active = np.ones(len(totals), dtype=bool)        # sacrebleu stops at the first order with no n-grams
            mteval = np.ones(len(totals))
            for n in range(order):
                active &= total[:, n] != 0
                t = np.where(total[:, n] != 0, total[:, n], 1)
                hit = correct[:, n] != 0
                precisions[:, n] = np.where(active & hit, 100.0 * correct[:, n] / t, 0.0)
                missed = active & ~hit
                if impl.smooth_method == "exp":
                    mteval = np.where(missed, mteval * 2, mteval)
                    precisions[:, n] = np.where(missed, 100.0 / (mteval * t), precisions[:, n])
                elif impl.smooth_method == "floor":
                    precisions[:, n] = np.where(missed, 100.0 * smooth / t, precisions[:, n])
            logs = np.where(precisions > 0, np.log(np.where(precisions > 0, precisions, 1)), -9999999999)
            out = bp * np.exp(logs.sum(axis=1) / order)
        out = np.where((correct != 0).any(axis=1), out, 0.0)
        return np.where(counts > 0, out, np.nan)

    @classmethod
    def from_options(cls, options: BleuOptions) -> list[Metric]:
        from sacrebleu.metrics import BLEU

        if options.tokenize is not None:
            require_tokenizer(options.tokenize)   # ja-mecab / ko-mecab: their optional packages, one clear line
        return [cls(BLEU(**options.model_dump()))]


class Chrf(_Sacrebleu):
    name, options = "chrf", ChrfOptions

    def scores_from_totals(self, totals: np.ndarray, counts: np.ndarray) -> np.ndarray:
        """sacrebleu's CHRF._compute_f_score for every row at once (tests/test_stats.py holds them equal)."""
        impl, eps = self.impl, 1e-16
        factor = impl.beta ** 2
        hyp, ref, match = totals[:, 0::3], totals[:, 1::3], totals[:, 2::3]
        with np.errstate(invalid="ignore", divide="ignore"):
            prec = np.where(hyp > 0, match / np.where(hyp > 0, hyp, 1), eps)
            rec = np.where(ref > 0, match / np.where(ref > 0, ref, 1), eps)
            denom = factor * prec + rec
            if impl.eps_smoothing:
                f = np.where(denom > 0, (1 + factor) * prec * rec / np.where(denom > 0, denom, 1), eps)
                out = 100 * f.sum(axis=1) / impl.order
            else:
                both = (hyp > 0) & (ref > 0)
                order = both.sum(axis=1)
                avg_prec = np.where(order > 0, (prec * both).sum(axis=1) / np.maximum(order, 1), 0.0)
                avg_rec = np.where(order > 0, (rec * both).sum(axis=1) / np.maximum(order, 1), 0.0)
                total = avg_prec + avg_rec
                out = np.where(total > 0, 100 * (1 + factor) * avg_prec * avg_rec /
                               np.where(total > 0, factor * avg_prec + avg_rec, 1), 0.0)
        return np.where(counts > 0, out, np.nan)

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
