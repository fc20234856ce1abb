"""The en→zh generator: deterministic, disjoint splits, Chinese references in Chinese word order,
rows that fit the suite's sequence length in the built-in model's byte-level tokens."""
from __future__ import annotations

from pathlib import Path

import pytest

from harness.data import load_rows
from harness.messages import Example
from harness.metrics.language import task_language
from harness.suite import SyntheticSource, load_suite
from harness.synthetic import generate_rows, split_of

from harness.synthetic.chinese import PLACES, SUBJECTS, TIMES, generate_pairs

REPO = Path(__file__).resolve().parents[1]


def generate_examples(spec):
    return [Example(**r) for r in generate_rows(spec)]


def _rows(split, n, seed=0):
    return generate_examples(SyntheticSource(kind="translation", direction="en-zh", split=split, n=n, seed=seed))


def test_deterministic_and_ids():
    a, b = _rows("val", 20, seed=3), _rows("val", 20, seed=3)
    assert [(e.id, e.messages) for e in a] == [(e.id, e.messages) for e in b]
    assert [e.messages for e in _rows("val", 20, seed=4)] != [e.messages for e in a]
    assert a[0].id == "en-zh-val-00000" and a[0].meta == {"direction": "en-zh"}


def test_splits_are_disjoint_and_rows_distinct():
    src = {split: [e.source_text for e in _rows(split, n, seed=s)]
           for split, n, s in (("train", 1500, 1), ("val", 60, 0), ("test", 60, 0))}
    for split, rows in src.items():
        assert len(set(rows)) == len(rows) and all(split_of(t) == split for t in rows)
    assert not set(src["train"]) & set(src["val"]) and not set(src["val"]) & set(src["test"])


def test_chinese_word_order_time_subject_place_verb():
    lex = {en: zh for en, zh in SUBJECTS + PLACES + TIMES if en}
    for en, zh in generate_pairs(300, seed=5):
        assert zh.endswith("。") and en.endswith(".") and en[0].isupper()
        parts = [p for p in lex if p.lower() in en.lower()]
        # every English phrase has its Chinese one; time before subject before place, as Chinese orders them
        positions = [zh.index(lex[p]) for p in sorted(parts, key=lambda p: en.lower().index(p.lower()))]
        assert all(lex[p] in zh for p in parts)
        time_first = [p for p in parts if p in dict(TIMES)]
        if time_first:
            assert zh.startswith(lex[time_first[0]])
        assert positions[0] == 0 or not time_first
        if " not " in en:
            assert "不" in zh or "没" in zh


def test_references_are_chinese_and_the_task_reads_as_zh():
    refs = [e.reference for e in _rows("val", 60)]
    lang = task_language(None, refs)
    assert lang.language == "zh" and lang.shares["han"] == 1.0


def test_suite_rows_fit_its_sequence_length():
    from harness.builtin import train_tokenizer

    suite = load_suite(REPO / "suites" / "chinese.yaml")
    rows = load_rows(suite.train.data[0], suite)
    # a byte-level BPE trained on English only, as the built-in one is: Chinese costs 3 tokens a character
    tok = train_tokenizer([e.source_text for e in rows[:300]], 512)
    lengths = [len(tok.apply_chat_template(e.messages, tokenize=True, return_dict=True)["input_ids"]) for e in rows]
    assert max(lengths) <= suite.train.max_seq_len
    assert tok.decode(tok(rows[0].reference)["input_ids"]) == rows[0].reference   # bytes round-trip
    assert len(tok(rows[0].reference)["input_ids"]) == 3 * len(rows[0].reference)


def test_unknown_direction_is_refused():
    # refused where the suite is validated, before any generator runs
    with pytest.raises(ValueError, match="Input should be 'en-fr', 'fr-en' or 'en-zh'"):
        SyntheticSource(kind="translation", direction="en-de", split="val", n=1)
