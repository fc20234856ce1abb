"""ROUGE-1, ROUGE-2 and ROUGE-L F-measures (× 100) through Google's ``rouge-score``.

Per sample: ``RougeScorer([type], use_stemmer, tokenizer).score(reference, output)[type]
.fmeasure``, with the output as the prediction and the reference as the target; an empty
output (or one with no tokens) scores 0, and so does a pair where both are empty.
``rouge1``/``rouge2`` are unigram/bigram overlap F1 (clipped counts);
``rougeL`` is the sentence-level longest-common-subsequence F1 (no newline splitting:
not ``rougeLsum``). One reference per sample.

Corpus score = the mean of the per-sample F-measures × 100. This is how rouge-score is
normally aggregated: its ``BootstrapAggregator`` (what HF ``evaluate`` reports) resamples
the per-sample scores and reports the middle of the resampled means, i.e. the mean up to
resampling noise. It is not a micro-average of pooled n-gram counts.

Options:

- ``tokenizer``: ``default`` (rouge-score's: lowercase, every non ``[a-z0-9]`` character is
  a separator, so Chinese/Japanese text yields no tokens at all) or ``char`` (for
  Chinese/Japanese: NFKC-normalise and lowercase; every Han, Hiragana or Katakana
  character is one token; runs of other letters and digits, e.g. Latin words and numbers,
  are one token each; punctuation, whitespace and ``_`` are dropped).
- ``use_stemmer`` (default false): Porter stemming of words longer than 3 characters;
  only with the default tokenizer (rouge-score ignores it with a custom tokenizer, so
  asking for both is an error).
"""
from __future__ import annotations

import importlib.metadata
import re
import unicodedata
from rouge_score.rouge_scorer import RougeScorer

from harness.metrics.base import GradedItem, MeanMetric, Metric
from harness.metric_options import RougeOptions, options_for

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")
TOKENIZERS = ("default", "char")

# Han (CJK unified ideographs, extension A, compatibility, extensions B-F and beyond),
# Hiragana, Katakana (incl. phonetic extensions and the prolonged sound mark).
_CJK = (
    "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003ffff"
    "\u3040-\u309f\u30a0-\u30ff\u31f0-\u31ff"
)
_CHAR_TOKEN = re.compile(f"[{_CJK}]|[^\\W_{_CJK}]+")


class CharTokenizer:
    """Character tokens for CJK scripts, whole tokens for Latin words and numbers."""

    def tokenize(self, text: str) -> list[str]:
        return _CHAR_TOKEN.findall(unicodedata.normalize("NFKC", text or "").lower())


def _version() -> str:
    try:
        return importlib.metadata.version("rouge-score")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover
        return "unknown"


class Rouge(MeanMetric):
    def __init__(self, rouge_type: str, tokenizer: str = "default", use_stemmer: bool = False):
        self.name = rouge_type
        self.tokenizer, self.use_stemmer = tokenizer, use_stemmer
        self.scorer = RougeScorer(
            [rouge_type], use_stemmer=use_stemmer,
            tokenizer=CharTokenizer() if tokenizer == "char" else None,
        )

    def value(self, item: GradedItem) -> float:
        return float(self.scorer.score(item.reference or "", item.output or "")[self.name].fmeasure)

    def signature(self) -> str:
        return (f"{self.name}|tokenizer:{self.tokenizer}|stemmer:{'yes' if self.use_stemmer else 'no'}"
                f"|score:F|agg:mean-of-samples|rouge-score:{_version()}")


def rouge(options: RougeOptions | dict) -> list[Metric]:
    opts = options_for("rouge", options)
    return [Rouge(t, opts.tokenizer, opts.use_stemmer) for t in ROUGE_TYPES]
