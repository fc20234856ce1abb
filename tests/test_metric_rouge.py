"""rouge1/rouge2/rougeL: equal rouge-score on the same pairs, hand-checked values, CJK chars."""
from __future__ import annotations

import pytest
from rouge_score.rouge_scorer import RougeScorer

from harness.metrics import build_metrics, metric_for
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
