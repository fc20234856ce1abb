"""BLEU/chrF/TER equal the sacrebleu CLI; perplexity is token-weighted; usability cases."""
from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from harness.metrics import MetricOptions, build_metrics
from harness.metrics.base import GradedItem
from harness.metrics.language import options_for_language, task_language
from harness.metrics.perplexity import perplexity
from harness.metrics.translation import bleu, chrf, ter
from harness.metrics.usability import usability, usability_reason

# (hypothesis, reference); an empty hypothesis and mixed case/punctuation on purpose
FR = [
    ("Le chat noir mange.", "Le chat noir mange."),
    ("le chien dort dans la maison", "Le chien dort dans la maison."),
    ("Il fait beau aujourd'hui !", "Il fait très beau aujourd'hui."),
    ("", "Nous allons à la plage demain."),
    ("Elle lit un livre rouge.", "Elle lit un gros livre rouge."),
    ("Les enfants jouent au parc avec leurs amis.", "Les enfants jouent dans le parc avec leurs amis."),
    ("Merci beaucoup", "Merci beaucoup pour votre aide."),
]
ZH = [
    ("我爱北京天安门。", "我爱北京天安门。"),
    ("今天天气很好", "今天天气非常好。"),
    ("他在看书", "他正在图书馆看书。"),
]


def items(pairs):
    return [GradedItem(id=f"x{i}", source="", reference=r, output=h) for i, (h, r) in enumerate(pairs)]


def sacrebleu_cli(tmp_path, pairs, *extra) -> dict:
    hyp, ref = tmp_path / "hyp.txt", tmp_path / "ref.txt"
    hyp.write_text("".join(h + "\n" for h, _ in pairs), encoding="utf-8")
    ref.write_text("".join(r + "\n" for _, r in pairs), encoding="utf-8")
    out = subprocess.run(
        [sys.executable, "-m", "sacrebleu", str(ref), "-i", str(hyp), "-m", "bleu", "chrf", "ter",
         "-f", "json", "-w", "6", *extra],
        check=True, capture_output=True, text=True, encoding="utf-8",
    ).stdout
    return {row["name"]: row for row in json.loads(out)}


def harness_scores(pairs, options=None):
    options = options or {}
    its = items(pairs)
    out = {}
    for m in build_metrics(["bleu", "chrf", "ter"], options):
        out[m.name] = (m.score(m.stats(its)), m.signature())
    return out


def test_equal_to_sacrebleu_cli(tmp_path):
    cli = sacrebleu_cli(tmp_path, FR)
    got = harness_scores(FR)
    for ours, theirs in (("bleu", "BLEU"), ("chrf", "chrF2"), ("ter", "TER")):
        assert got[ours][0] == pytest.approx(cli[theirs]["score"], abs=1e-5), ours
        assert got[ours][1] == cli[theirs]["signature"], ours


def test_equal_to_sacrebleu_cli_chinese_tokenizer(tmp_path):
    cli = sacrebleu_cli(tmp_path, ZH, "-tok", "zh")
    got = harness_scores(ZH, {"bleu": {"tokenize": "zh"}})
    assert got["bleu"][0] == pytest.approx(cli["BLEU"]["score"], abs=1e-5)
    assert got["bleu"][1] == cli["BLEU"]["signature"]
    assert "tok:zh" in got["bleu"][1]


from tests.cjk_pairs import ZH6  # noqa: E402

JA5 = [
    ("今日は良い天気です。", "今日はとても良い天気です。"),
    ("私は東京に住んでいます。", "私は東京に住んでいます。"),
    ("猫が外を見ている。", "猫が窓の外を見ている。"),
    ("明日海に行きます", "明日、私たちは海に行きます。"),
    ("本を読みました。", "昨日その本を読みました。"),
]
KO4 = [
    ("오늘은 날씨가 좋습니다.", "오늘은 날씨가 아주 좋습니다."),
    ("나는 서울에 살고 있습니다.", "나는 서울에 살고 있습니다."),
    ("고양이가 밖을 봅니다.", "고양이가 창밖을 봅니다."),
    ("내일 바다에 갑니다", "내일 우리는 바다에 갑니다."),
]


def language_scores(pairs, direction=None):
    """Harness scores with the options grading derives from the task's language (nothing set by hand)."""
    lang = task_language(direction, [r for _, r in pairs])
    return harness_scores(pairs, options_for_language(MetricOptions(), ["bleu", "chrf", "ter"], lang))


@pytest.mark.parametrize("pairs, direction, tok, module", [
    (ZH6, "en-zh", "zh", None), (ZH6, None, "zh", None),            # by direction and detected
    (JA5, "en-ja", "ja-mecab", "MeCab"), (JA5, None, "ja-mecab", "MeCab"),
    (KO4, "en-ko", "ko-mecab", "mecab_ko"),
])
def test_language_picks_the_tokenizer_sacrebleu_l_picks(tmp_path, pairs, direction, tok, module):
    if module:
        pytest.importorskip(module, reason=f"{tok} needs sacrebleu's optional {module} (pip install 'harness[...]')")
    target = tok.split("-")[0]
    cli = sacrebleu_cli(tmp_path, pairs, "-l", f"en-{target}", *(["--ter-asian-support"] if target != "ko" else []))
    got = language_scores(pairs, direction)
    for ours, theirs in (("bleu", "BLEU"), ("chrf", "chrF2"), ("ter", "TER")):
        assert got[ours][0] == pytest.approx(cli[theirs]["score"], abs=1e-5), ours
        assert got[ours][1] == cli[theirs]["signature"], ours
    assert f"|tok:{tok}" in got["bleu"][1]   # ja-mecab-0.996-IPA: MeCab and dictionary versions
    assert got["bleu"][0] > 10   # with 13a the same outputs score about 0 (next test)


def test_chinese_with_13a_scores_about_zero_and_zh_as_sacrebleu():
    # the trap: an unsegmented Chinese sentence is one 13a token
    from sacrebleu.metrics import BLEU

    hyps, refs = [h for h, _ in ZH6], [[r for _, r in ZH6]]
    assert harness_scores(ZH6)["bleu"][0] == pytest.approx(BLEU().corpus_score(hyps, refs).score)
    assert harness_scores(ZH6)["bleu"][0] < 20
    assert language_scores(ZH6, "en-zh")["bleu"][0] == pytest.approx(BLEU(tokenize="zh").corpus_score(hyps, refs).score)


# Computed with the code before language-aware scoring (commit b8233d8) on FR[:5]: Latin-script
# tasks must keep exactly these numbers and signatures.
TODAY_FR5 = {
    "bleu": (40.24524859104347, "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0"),
    "chrf": (66.09946710745639, "nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|version:2.6.0"),
    "ter": (40.74074074074074, "nrefs:1|case:lc|tok:tercom|norm:no|punct:yes|asian:no|version:2.6.0"),
}


@pytest.mark.parametrize("direction", ["en-fr", None])
def test_latin_script_keeps_todays_scores_and_signatures(direction):
    import sacrebleu

    if sacrebleu.__version__ != "2.6.0":
        pytest.skip("the recorded signatures name sacrebleu 2.6.0")
    got = language_scores(FR[:5], direction)
    for name, (score, sig) in TODAY_FR5.items():
        assert got[name][0] == pytest.approx(score, abs=1e-12), name
        assert got[name][1] == sig, name


def test_bleu_tokenize_is_checked():
    with pytest.raises(ValueError, match=r"bleu: tokenize must be one of none, zh, 13a, .*not 'jieba'"):
        bleu({"tokenize": "jieba"})


def test_corpus_bleu_is_not_mean_of_sentence_bleu():
    (m,) = bleu({})
    st = m.stats(items(FR))
    sentence_mean = np.mean([m.score(row[None, :]) for row in st])
    assert m.score(st) != pytest.approx(sentence_mean)


def test_bleu_and_ter_hand_checked():
    pair = [("the cat sat on the mat", "the cat sat on the red mat")]
    # n-gram precisions 6/6, 4/5, 3/4, 2/3; brevity penalty exp(1 - 7/6)
    expected = 100 * math.exp(1 - 7 / 6) * (1 * 4 / 5 * 3 / 4 * 2 / 3) ** 0.25
    (b,) = bleu({})
    assert b.score(b.stats(items(pair))) == pytest.approx(expected, abs=1e-9)  # 67.318...
    (t,) = ter({})
    assert t.score(t.stats(items(pair))) == pytest.approx(100 / 7)  # one insertion per 7 reference words
    assert t.higher_is_better is False
    (c,) = chrf({})
    assert c.score(c.stats(items([("identical text", "identical text")]))) == pytest.approx(100.0)
    assert b.score(b.stats(items([("", "something")]))) == 0.0


# ------------------------------------------------------------------ perplexity
def test_perplexity_is_token_weighted():
    (m,) = perplexity({})
    its = [GradedItem("a", "", "", nll_sum=2.0, n_tokens=1), GradedItem("b", "", "", nll_sum=10.0, n_tokens=10)]
    st = m.stats(its)
    assert m.score(st) == pytest.approx(math.exp(12 / 11))              # 2.9776...
    assert m.score(st) != pytest.approx(math.exp((2.0 + 1.0) / 2))     # mean of per-sample mean NLLs
    assert m.score(st) != pytest.approx((math.exp(2.0) + math.exp(1.0)) / 2)  # mean of per-sample ppl
    assert m.sample_score(st[0]) == pytest.approx(math.exp(2.0))
    assert math.isnan(m.score(np.array([[0.0, 0.0]])))
    assert m.needs == "likelihood" and m.higher_is_better is False


# ------------------------------------------------------------------ usability
@pytest.mark.parametrize("output, finish, reason", [
    ("", "eos", "empty"),
    ("   \n", "eos", "empty"),
    (None, None, "empty"),
    ("Le chat noir mange", "length", "length"),
    ("le le le le le le", "eos", "repetition"),
    ("Le chat " + "a" * 21, "eos", "repetition"),          # a character run longer than 20
    ("Le chat noir mange.", "eos", ""),
    ("Le chat noir mange.", None, ""),                       # unknown finish reason: not penalised
    ("le chat le chien le rat", "eos", ""),                  # 'le' ×3: below 4 repeats
])
def test_usability_cases(output, finish, reason):
    assert usability_reason(GradedItem("a", "", "", output=output, finish_reason=finish)) == reason


def test_usability_rate_and_details():
    (m,) = usability({})
    its = [GradedItem("a", "", "", output="", finish_reason="eos"),
           GradedItem("b", "", "", output="Le chat", finish_reason="length"),
           GradedItem("c", "", "", output="le le le le le le", finish_reason="eos"),
           GradedItem("d", "", "", output="Le chat noir mange.", finish_reason="eos")]
    assert m.score(m.stats(its)) == pytest.approx(25.0)
    assert m.details(its) == [{"unusable": "empty"}, {"unusable": "length"}, {"unusable": "repetition"}, {}]
