"""rouge1/rouge2/rougeL: equal rouge-score on the same pairs, hand-checked values, CJK chars."""
from __future__ import annotations

import pytest
from rouge_score.rouge_scorer import RougeScorer

from harness.metrics import MetricOptions, build_metrics, metric_for
from harness.metrics.base import GradedItem
from harness.metrics.rouge import CharTokenizer, rouge


def items(pairs):
    return [GradedItem(id=f"x{i}", source="", reference=r, output=h) for i, (h, r) in enumerate(pairs)]


def scores(pairs, **options):
    """{name: (corpus score, per-sample scores)}"""
    out = {}
    its = items(pairs)
    for m in rouge(options):
        st = m.stats(its)
        out[m.name] = (m.score(st), [m.sample_score(r) for r in st])
    return out


# (hypothesis, reference)
EN = [
    ("the cat lay on the mat", "the cat sat on the mat"),
    ("A quick brown fox jumps over the lazy dog.", "The quick brown fox jumped over the lazy dog!"),
    ("Paris is the capital of France.", "The capital of France is Paris."),
    ("nothing in common", "completely different words"),
    ("", "an empty output"),
    ("Running cats were seen", "a cat runs"),
]


def test_names_and_registry():
    assert [m.name for m in rouge({})] == ["rouge1", "rouge2", "rougeL"]
    assert [m.name for m in build_metrics(["rouge"], {"rouge": {"tokenizer": "char"}})] == [
        "rouge1", "rouge2", "rougeL"]
    assert metric_for("rouge2", {"rouge": {"tokenizer": "char"}}).tokenizer == "char"


def test_hand_computed_english():
    got = scores([EN[0]])
    # tokens: the cat lay on the mat / the cat sat on the mat (6 each)
    # unigrams: the×2, cat, on, mat match → P = R = 5/6
    assert got["rouge1"][0] == pytest.approx(100 * 5 / 6)
    # bigrams: the-cat, on-the, the-mat match of 5 → P = R = 3/5
    assert got["rouge2"][0] == pytest.approx(60.0)
    # LCS: the cat on the mat (5)
    assert got["rougeL"][0] == pytest.approx(100 * 5 / 6)


def test_corpus_is_mean_of_sample_f():
    got = scores([EN[0], EN[3]])
    assert got["rouge1"][1] == pytest.approx([100 * 5 / 6, 0.0])
    assert got["rouge1"][0] == pytest.approx(100 * 5 / 12)
    # not the F of pooled counts: pooled unigram overlap 5 of 6+3 hyp and 6+3 ref tokens = 5/9
    assert got["rouge1"][0] != pytest.approx(100 * 5 / 9)


@pytest.mark.parametrize("use_stemmer", [False, True])
def test_equals_rouge_score_on_same_pairs(use_stemmer):
    got = scores(EN, use_stemmer=use_stemmer)
    scorer = RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=use_stemmer)
    for name in ("rouge1", "rouge2", "rougeL"):
        expected = [100 * scorer.score(ref, hyp)[name].fmeasure for hyp, ref in EN]
        assert got[name][1] == pytest.approx(expected, abs=1e-12)
        assert got[name][0] == pytest.approx(sum(expected) / len(expected), abs=1e-12)


def test_stemmer_hand_checked():
    pair = [("running cats", "run cat")]
    assert scores(pair)["rouge1"][0] == 0.0
    # Porter stemming of words longer than 3 characters: running → run, cats → cat
    assert scores(pair, use_stemmer=True)["rouge1"][0] == pytest.approx(100.0)


def test_empty_output_scores_zero():
    got = scores([("", "the reference"), ("   ", "the reference")])
    for name in ("rouge1", "rouge2", "rougeL"):
        assert got[name] == (0.0, [0.0, 0.0])


def test_char_tokenizer():
    tok = CharTokenizer()
    assert tok.tokenize("我爱北京天安门。") == ["我", "爱", "北", "京", "天", "安", "门"]
    assert tok.tokenize("GPU速度很fast, 2024年!") == ["gpu", "速", "度", "很", "fast", "2024", "年"]
    assert tok.tokenize("カタカナとひらがな") == list("カタカナとひらがな")
    assert tok.tokenize("ＡＢＣ１２３") == ["abc123"]  # full-width → ASCII (NFKC), lowercased
    assert tok.tokenize("") == []


def test_chinese_hand_computed_with_char_tokens():
    pairs = [("我爱北京", "我爱北京天安门"), ("天气今天很好", "今天天气很好")]
    got = scores(pairs, tokenizer="char")
    # pair 1: 4 of 7 reference characters, all 4 hypothesis characters match
    #   rouge1 F = 2·1·(4/7)/(1 + 4/7) = 8/11; rouge2: 3 hyp bigrams, all in ref (6) → F = 2/3
    #   rougeL: LCS 我爱北京 = 4 → 8/11
    # pair 2: same multiset of characters → rouge1 = 1; bigrams 今天, 天气, 很好 of 5 → 3/5;
    #   LCS 4 (今天很好 or 天气很好) of 6 → 4/6
    assert got["rouge1"][1] == pytest.approx([100 * 8 / 11, 100.0])
    assert got["rouge2"][1] == pytest.approx([100 * 2 / 3, 60.0])
    assert got["rougeL"][1] == pytest.approx([100 * 8 / 11, 100 * 4 / 6])
    assert got["rouge1"][0] == pytest.approx(100 * (8 / 11 + 1) / 2)
    # equal to rouge-score with the same tokenizer object
    scorer = RougeScorer(["rouge1", "rouge2", "rougeL"], tokenizer=CharTokenizer())
    for name in ("rouge1", "rouge2", "rougeL"):
        assert got[name][1] == pytest.approx([100 * scorer.score(r, h)[name].fmeasure for h, r in pairs])


def test_default_tokenizer_sees_no_chinese_tokens():
    # why tokenizer: char exists: rouge-score's default tokenizer drops every non [a-z0-9] character
    assert scores([("我爱北京", "我爱北京")])["rouge1"][0] == 0.0
    assert scores([("我爱北京", "我爱北京")], tokenizer="char")["rouge1"][0] == 100.0


def test_signature_and_option_errors():
    sig = rouge({"tokenizer": "char"})[2].signature()
    assert sig.startswith("rougeL|tokenizer:char|stemmer:no|score:F|agg:mean-of-samples|rouge-score:")
    assert "stemmer:yes" in rouge({"use_stemmer": True})[0].signature()
    with pytest.raises(ValueError, match="default tokenizer only"):
        rouge({"tokenizer": "char", "use_stemmer": True})
    with pytest.raises(ValueError, match="tokenizer must be"):
        rouge({"tokenizer": "jieba"})
    with pytest.raises(ValueError, match="unknown option"):
        rouge({"stemmer": True})


# ------------------------------------------------------------ language-aware choice
from harness.metrics.language import options_for_language, task_language  # noqa: E402
from harness.metrics.rouge import TokenizerDropsText, kept_share  # noqa: E402

from tests.cjk_pairs import ZH6  # noqa: E402

JA4 = [
    ("今日は良い天気です。", "今日はとても良い天気です。"),
    ("猫が外を見ている。", "猫が窓の外を見ている。"),
    ("本を読みました。", "昨日その本を読みました。"),
    ("カメラを買った", "新しいカメラを買いました。"),
]
# Chinese sentences with English terms and numbers, and English rows in the same task
MIXED = [
    ("GPU的速度很fast", "GPU速度很快"),
    ("我用Python写了3个脚本。", "我用Python写了三个脚本。"),
    ("the model was trained on 2 GPUs", "the model was trained on two GPUs"),
    ("模型在2024年发布", "这个模型在2024年发布。"),
]


class IndependentChars:
    """A second, separately written segmenter: CJK characters one by one, ASCII words whole."""

    def tokenize(self, text):
        import re
        return re.findall(r"[\u3040-\u30ff\u4e00-\u9fff]|[a-z0-9]+", text.lower())


def language_rouge(pairs, direction=None):
    lang = task_language(direction, [r for _, r in pairs])
    return build_metrics(["rouge"], options_for_language(MetricOptions(), ["rouge"], lang))


@pytest.mark.parametrize("pairs", [ZH6, JA4, MIXED], ids=["zh", "ja", "mixed"])
def test_cjk_references_pick_characters_equal_to_rouge_score(pairs):
    its = items(pairs)
    scorer = RougeScorer(["rouge1", "rouge2", "rougeL"], tokenizer=IndependentChars())
    expected = [scorer.score(r, h) for h, r in pairs]
    for m in language_rouge(pairs):
        assert "|tokenizer:char|" in m.signature()
        st = m.stats(its)
        assert [m.sample_score(r) for r in st] == pytest.approx([100 * e[m.name].fmeasure for e in expected])
        assert m.score(st) == pytest.approx(100 * sum(e[m.name].fmeasure for e in expected) / len(pairs))


def test_chinese_scores_as_the_issue_reports():
    # default tokenizer: 0.00; characters: the real overlap
    zh = {m.name: m.score(m.stats(items(ZH6))) for m in language_rouge(ZH6)}
    assert scores(ZH6)["rouge1"][0] == 0.0
    # F1 = 2·overlap / (hyp chars + ref chars): 7/7 chars; 5 of 6+7; 4 of 4+8; 7 of 7+7 reordered;
    # 5 of 6+8; empty output
    assert zh["rouge1"] == pytest.approx(100 * (1 + 10 / 13 + 8 / 12 + 1 + 10 / 14 + 0) / 6)  # 69.17


# Computed with the code before language-aware scoring (commit b8233d8) on these five pairs.
FR5 = [
    ("Le chat noir mange.", "Le chat noir mange."),
    ("le chien dort dans la maison", "Le chien dort dans la maison."),
    ("Il fait beau aujourd'hui !", "Il fait très beau aujourd'hui."),
    ("", "Nous allons à la plage demain."),
    ("Elle lit un livre rouge.", "Elle lit un gros livre rouge."),
]
TODAY_FR5 = {"rouge1": 74.84848484848484, "rouge2": 65.33333333333333, "rougeL": 74.84848484848484}


@pytest.mark.parametrize("direction", ["en-fr", None])
def test_latin_script_keeps_todays_scores_and_signatures(direction):
    for m in language_rouge(FR5, direction):
        assert m.score(m.stats(items(FR5))) == pytest.approx(TODAY_FR5[m.name], abs=1e-12)
        assert m.signature() == (f"{m.name}|tokenizer:default|stemmer:no|score:F|agg:mean-of-samples"
                                 f"|rouge-score:0.1.2")
        m.check_references([r for _, r in FR5])   # French keeps nearly all its letters: no refusal


def test_kept_share():
    assert kept_share(["我爱北京"], "default") == 0.0
    assert kept_share(["我爱北京"], "char") == 1.0
    # 'très': è is a separator for rouge-score, so 1 of the 24 letters is lost
    assert kept_share(["Il fait très beau aujourd'hui."], "default") == pytest.approx(23 / 24)
    assert kept_share(["GPU速度很快"], "default") == pytest.approx(3 / 7)
    assert kept_share(["", "!!! 。"], "default") is None


def test_refuses_a_tokenizer_that_drops_most_of_the_text():
    (r1, *_) = rouge({"tokenizer": "default"})
    with pytest.raises(TokenizerDropsText) as e:
        r1.check_references([r for _, r in ZH6])
    assert str(e.value) == ("rouge: the default tokenizer keeps only 0% of the reference characters, "
                            "so ROUGE would be near 0: set metric_options.rouge.tokenizer: char")
    # Russian is not CJK, so grading keeps the default, which drops all Cyrillic: refused too
    ru = ["Привет, как дела?", "Мы идём на пляж завтра."]
    (m, *_) = language_rouge([("", r) for r in ru])
    with pytest.raises(TokenizerDropsText, match="tokenizer: char"):
        m.check_references(ru)
    rouge({"tokenizer": "char"})[0].check_references(ru)   # the named fix works
    # mostly-English mixed references with a few Chinese words keep more than half: scored
    r1.check_references(["the GPU速度 is fast", "we trained the model"])
