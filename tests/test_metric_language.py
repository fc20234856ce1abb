"""Script shares, language detection and the metric options a task's language implies."""
from __future__ import annotations

import importlib.util

import pytest

from harness.metrics import metric_options_from
from harness.metrics.language import (MissingDependency, TaskLanguage, detect_language, options_for_language,
                                      require_tokenizer, script_shares, task_language)

ZH = ["我爱北京天安门。", "今天天气非常好。", "他正在图书馆看书。"]
JA = ["今日は良い天気です。", "私は東京に住んでいます。", "猫が窓の外を見ている。"]
KO = ["오늘은 날씨가 좋습니다.", "나는 서울에 살고 있습니다."]
EN = ["The black cat eats.", "We are going to the beach tomorrow."]
RU = ["Привет, как дела?", "Мы идём на пляж завтра."]
ALL = ["bleu", "chrf", "ter", "rouge"]


def test_units_count_a_cjk_character_like_a_word():
    # 速 度 很 年 = 4 Han units; gpu, fast = 2 Latin units; 2024 (digits only) is not counted
    assert script_shares(["GPU速度很fast，2024年！"]) == pytest.approx(
        {"han": 4 / 6, "kana": 0, "hangul": 0, "latin": 2 / 6, "cyrillic": 0, "other": 0})
    assert script_shares(["", "123 !"]) == {}


@pytest.mark.parametrize("texts, language, script", [
    (ZH, "zh", "han"), (JA, "ja", "kana"), (KO, "ko", "hangul"),
    (EN, None, "latin"), (RU, None, "cyrillic"), (["12 + 3 = 15"], None, "none"),
])
def test_detected_language_and_script(texts, language, script):
    lang = task_language(None, texts)
    assert (lang.language, lang.source, lang.script) == (language, "detected", script)


def test_kanji_only_japanese_is_not_enough_kana_and_reads_as_chinese():
    # one kana among 12 Han characters: 1/13 < 10% -> zh; Japanese prose has far more kana
    assert detect_language(script_shares(["東京都知事選挙投票結果発表の"])) == "zh"
    assert detect_language(script_shares(["東京都の知事選挙です"])) == "ja"


def test_mixed_script_references_follow_the_majority_of_units():
    # 2 Chinese rows (7 + 7 Han units) + 2 English rows (4 + 7 words): 14 of 25 units are CJK
    mixed = ZH[:2] + EN
    lang = task_language(None, mixed)
    assert lang.language == "zh" and lang.cjk_share == pytest.approx(14 / 25)
    # one Chinese row among long English ones: Latin majority, nothing changes
    lang = task_language(None, ZH[:1] + EN * 3)
    assert lang.language is None and lang.script == "latin"
    assert _set_options({}, ALL, lang) == {}


def test_direction_target_wins_over_detection():
    lang = task_language("en-zh", ["not Chinese at all"])
    assert (lang.language, lang.source, lang.script) == ("zh", "direction", "latin")
    assert task_language("fr-en", ZH).language == "en"
    assert task_language("zh-ja_JP", EN).language == "ja"


def test_options_by_language_as_sacrebleu_l_does():
    zh = _set_options({}, ALL, task_language("en-zh", ZH))
    assert zh == {"bleu": {"tokenize": "zh"}, "ter": {"asian_support": True}, "rouge": {"tokenizer": "char"}}
    ja = _set_options({}, ALL, task_language(None, JA))
    assert ja == {"bleu": {"tokenize": "ja-mecab"}, "ter": {"asian_support": True}, "rouge": {"tokenizer": "char"}}
    ko = _set_options({}, ALL, task_language(None, KO))
    assert ko == {"bleu": {"tokenize": "ko-mecab"}, "rouge": {"tokenizer": "char"}}
    # Latin script and other languages: nothing added, so today's defaults (13a, default ROUGE) stay
    assert _set_options({}, ALL, task_language("en-fr", EN)) == {}
    assert _set_options({}, ALL, task_language(None, RU)) == {}


def test_explicit_options_win_and_unlisted_metrics_get_nothing():
    given = {"bleu": {"tokenize": "char", "lowercase": True}, "rouge": {"tokenizer": "default"}}
    out = _set_options(given, ALL, task_language("en-zh", ZH))
    assert out == {"bleu": {"tokenize": "char", "lowercase": True}, "rouge": {"tokenizer": "default"},
                   "ter": {"asian_support": True}}
    assert given == {"bleu": {"tokenize": "char", "lowercase": True}, "rouge": {"tokenizer": "default"}}
    assert _set_options({}, ["chrf", "perplexity"], task_language("en-zh", ZH)) == {}


def test_record_is_plain_json():
    rec = task_language(None, ZH[:2] + EN).as_record()
    assert rec == {"language": "zh", "source": "detected", "script": "han",
                   "shares": {"han": 0.56, "latin": 0.44}}
    assert TaskLanguage(None, "detected", "none").as_record()["shares"] == {}


def test_missing_mecab_is_one_line_naming_the_extra(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "MeCab" else real(name, *a))
    with pytest.raises(MissingDependency) as e:
        require_tokenizer("ja-mecab")
    assert str(e.value) == ("tokenize ja-mecab needs MeCab: pip install 'harness[ja]' "
                            "(or set metric_options.bleu.tokenize, e.g. char)")
    require_tokenizer("zh")   # no optional package needed


def _set_options(given, metrics, lang) -> dict:
    """The options the language adds or the suite gave, as the suite would write them."""
    return options_for_language(metric_options_from(given), metrics, lang).model_dump(exclude_unset=True)
