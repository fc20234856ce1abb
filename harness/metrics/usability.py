"""Usability rate: the share of outputs a downstream user could use as they are.

An output is usable when all three hold:
1. it is non-empty after stripping whitespace;
2. generation stopped on the end-of-turn token, not on the max_new_tokens limit;
3. it is not degenerate repetition: no word n-gram (n = 1..4) fills 50% or more of the
   output's words with at least 4 repeats, and no single character run is longer than 20.
"""
from __future__ import annotations

import re
from collections import Counter
from typing import Sequence

from harness.metrics.base import GradedItem, MeanMetric, Metric
from harness.metric_options import NoOptions, validate_options

MIN_REPEATS = 4
MAX_REPEAT_SHARE = 0.5
MAX_CHAR_RUN = 20


def is_degenerate(text: str) -> bool:
    if re.search(r"(.)\1{%d,}" % MAX_CHAR_RUN, text):
        return True
    words = text.split()
    for n in range(1, 5):
        grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
        if not grams:
            break
        gram, count = Counter(grams).most_common(1)[0]
        if count >= MIN_REPEATS and count * n >= MAX_REPEAT_SHARE * len(words):
            return True
    return False


def usability_reason(item: GradedItem) -> str:
    """'' when usable, else why not: empty | length | repetition."""
    text = (item.output or "").strip()
    if not text:
        return "empty"
    if item.finish_reason == "length":
        return "length"
    if is_degenerate(text):
        return "repetition"
    return ""


class Usability(MeanMetric):
    name = "usability"
    rate = True

    def value(self, item: GradedItem) -> float:
        return 0.0 if usability_reason(item) else 1.0

    def details(self, items: Sequence[GradedItem]) -> list[dict]:
        return [{"unusable": usability_reason(it)} if usability_reason(it) else {} for it in items]

    def signature(self) -> str:
        return f"usability|nonempty+eos+norepeat(n<=4,share>={MAX_REPEAT_SHARE},min={MIN_REPEATS})"


def usability(options: NoOptions | dict) -> list[Metric]:
    return Usability.from_options(validate_options("usability", NoOptions, options))
