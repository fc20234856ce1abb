"""Exact match: the share of outputs equal to the reference after normalisation (× 100).

``mode: text`` (default): ``normalize_text(output) == normalize_text(reference)``, where
``normalize_text`` case-folds (``str.casefold``), collapses every run of whitespace to one
space, strips both ends and removes trailing periods (``"  The  Cat. "`` → ``"the cat"``).

``mode: number``: ``extract_number`` takes the final number in the output and in the
reference; they match when ``|output − reference| ≤ tol`` (absolute, default 1e-6), so
"13.0", "13 apples", "The answer is 13." and "#### 13" all match "13". An output without a
number does not match. When the reference has no number the sample falls back to text mode.

``extract_number``: the text is NFKC-normalised (full-width digits become ASCII) and U+2212
(minus sign) becomes "-"; a number is an optional sign, then digits with optional
comma thousands groups ("1,300" → 1300; "1,30" is read as 1 and 30), an optional decimal
part and an optional exponent ("-2.50", ".5", "1e3"). A number must not directly follow
an ASCII letter, digit, "_" or "." (so "H2O" and "Q3" contain no number, "5-3" ends with 3,
while "答案是13" gives 13). The last such number wins. Fractions ("1/2") are not
evaluated (the last number is 2) and "1.300" is 1.3.
"""
from __future__ import annotations

import math
import re
import unicodedata
from typing import Optional, Sequence

from harness.metrics.base import GradedItem, MeanMetric, Metric
from harness.metric_options import ExactMatchOptions, validate_options

MODES = ("text", "number")
DEFAULT_TOL = 1e-6

_NUMBER = re.compile(
    r"(?<![A-Za-z0-9_.])"
    r"[-+]?(?:(?:[0-9]{1,3}(?:,[0-9]{3})+(?![0-9])|[0-9]+)(?:\.[0-9]+)?|\.[0-9]+)"
    r"(?:[eE][-+]?[0-9]+)?"
)


def normalize_text(text: Optional[str]) -> str:
    """Case-fold, collapse whitespace, strip, drop trailing periods."""
    return " ".join((text or "").casefold().split()).rstrip(".").rstrip()


def extract_number(text: Optional[str]) -> Optional[float]:
    """The final number in `text` as a float, or None when there is none."""
    text = unicodedata.normalize("NFKC", text or "").replace("\u2212", "-")
    found = _NUMBER.findall(text)
    if not found:
        return None
    return float(found[-1].replace(",", ""))


class ExactMatch(MeanMetric):
    name, options = "exact_match", ExactMatchOptions
    rate = True

    def __init__(self, mode: str = "text", tol: float = DEFAULT_TOL):
        self.mode, self.tol = mode, tol

    @classmethod
    def from_options(cls, options: ExactMatchOptions) -> list[Metric]:
        return [cls(options.mode, float(options.tol))]

    def _compare(self, item: GradedItem) -> tuple[bool, dict]:
        """(match, details for a mismatch)."""
        if self.mode == "number":
            ref = extract_number(item.reference)
            if ref is not None:
                out = extract_number(item.output)
                ok = out is not None and abs(out - ref) <= self.tol
                return ok, {"output_number": _jsonable(out), "reference_number": _jsonable(ref)}
        out_t, ref_t = normalize_text(item.output), normalize_text(item.reference)
        return out_t == ref_t, {"output_normalized": out_t[:200], "reference_normalized": ref_t[:200]}

    def value(self, item: GradedItem) -> float:
        return 1.0 if self._compare(item)[0] else 0.0

    def details(self, items: Sequence[GradedItem]) -> list[dict]:
        out = []
        for it in items:
            ok, det = self._compare(it)
            out.append({} if ok else det)
        return out

    def signature(self) -> str:
        norm = "casefold+ws+strip+trailing-period"
        if self.mode == "number":
            return f"exact_match|mode:number|last-number|tol:{self.tol:g}|fallback:text({norm})"
        return f"exact_match|mode:text|{norm}"


def _jsonable(x: Optional[float]):
    if x is None or math.isfinite(x):
        return x
    return str(x)


def exact_match(options: ExactMatchOptions | dict) -> list[Metric]:
    return ExactMatch.from_options(validate_options("exact_match", ExactMatchOptions, options))
