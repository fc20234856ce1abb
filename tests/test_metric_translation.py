"""BLEU/chrF/TER equal the sacrebleu CLI; perplexity is token-weighted; usability cases."""
from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from harness.metrics import build_metrics
from harness.metrics.base import GradedItem
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
