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

Without ``tokenizer`` in the suite, grading picks ``char`` when the task's references are
mostly Chinese, Japanese or Korean (``metrics/language.py``), else ``default``.
Characters rather than a word segmenter (jieba, MeCab): a fixed rule with no dictionary
whose version changes the score, the same for Chinese and Japanese, robust to the broken
words of a weak model, and what the field's character-level Chinese ROUGE reports.

Before grading, ``check_references`` refuses (one line naming the option that fixes it) a
tokenizer that keeps less than half of the references' letter and digit characters:
kept = the summed length of the tokens the tokenizer (without stemming) makes of the
references, total = their letters and digits (Unicode categories L*, N*) as the tokenizer
sees them (lowercased; NFKC-normalised for ``char``). rouge-score's default keeps 0% of Chinese or Russian, so it would score 0.
"""
from __future__ import annotations

import importlib.metadata
import re
import unicodedata

from harness.errors import UserError
from harness.metrics.base import GradedItem, MeanMetric, Metric
from harness.metric_options import RougeOptions, validate_options

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")
TOKENIZERS = ("default", "char")
MIN_KEPT_SHARE = 0.5   # below this share of reference characters kept, ROUGE refuses


class TokenizerDropsText(UserError):
    """The ROUGE tokenizer would discard most of the references; str() names the fix."""


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


def kept_share(references: list[str], tokenizer: str) -> float | None:
    """Share of the references' letters/digits that survive tokenization (None: no letters)."""
    from rouge_score.tokenizers import DefaultTokenizer

    tok = CharTokenizer() if tokenizer == "char" else DefaultTokenizer(use_stemmer=False)
    total = kept = 0
    for ref in references:   # the text as the tokenizer sees it: char normalises with NFKC, default does not
        text = (unicodedata.normalize("NFKC", ref or "") if tokenizer == "char" else ref or "").lower()
        total += sum(1 for ch in text if unicodedata.category(ch)[0] in "LN")
        kept += sum(len(t) for t in tok.tokenize(text))
    return min(1.0, kept / total) if total else None


class Rouge(MeanMetric):
    options, results = RougeOptions, ROUGE_TYPES

    def __init__(self, rouge_type: str, tokenizer: str = "default", use_stemmer: bool = False):
        # rouge-score (and nltk under it, ~1 s) loads when a metric is made, not with the catalogue
        from rouge_score.rouge_scorer import RougeScorer

        self.name = rouge_type
        self.tokenizer, self.use_stemmer = tokenizer, use_stemmer
        self.scorer = RougeScorer(
            [rouge_type], use_stemmer=use_stemmer,
            tokenizer=CharTokenizer() if tokenizer == "char" else None,
        )

    def value(self, item: GradedItem) -> float:
        return float(self.scorer.score(item.reference or "", item.output or "")[self.name].fmeasure)

    def check_references(self, references: list[str]) -> None:
        share = kept_share(references, self.tokenizer)
        if share is not None and share < MIN_KEPT_SHARE:
            fix = ("set metric_options.rouge.tokenizer: char" if self.tokenizer == "default"
                   else "check the references' language")
            raise TokenizerDropsText(
                f"rouge: the {self.tokenizer} tokenizer keeps only {share:.0%} of the reference "
                f"characters, so ROUGE would be near 0: {fix}")

    def signature(self) -> str:
        return (f"{self.name}|tokenizer:{self.tokenizer}|stemmer:{'yes' if self.use_stemmer else 'no'}"
                f"|score:F|agg:mean-of-samples|rouge-score:{_version()}")


    @classmethod
    def from_options(cls, options: RougeOptions) -> list[Metric]:
        return [cls(t, options.tokenizer, options.use_stemmer) for t in ROUGE_TYPES]


def rouge(options: RougeOptions | dict) -> list[Metric]:
    return Rouge.from_options(validate_options("rouge", RougeOptions, options))
