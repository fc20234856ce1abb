"""Exact and near-duplicate detection (harness.dataprep.dedup), and the audit's use of it."""
from __future__ import annotations

import json
import os

import numpy as np

from harness.dataprep.dedup import NearDuplicateIndex, first_occurrence, jaccard, near_duplicates, shingles
from harness.dataprep.normalise import KEY_BYTES
from harness.synthetic import translation


def _row(q: str, a: str) -> list[dict]:
    return [{"role": "user", "content": q}, {"role": "assistant", "content": a}]


def test_first_occurrence_keeps_the_first_of_each_key():
    keys = np.frombuffer(os.urandom(KEY_BYTES * 5), dtype=f"V{KEY_BYTES}")
    seq = keys[[0, 1, 0, 2, 1, 1, 3, 4]]
    assert first_occurrence(seq).tolist() == [True, True, False, True, False, False, True, True]
    assert first_occurrence(seq[:0]).tolist() == []


def test_near_duplicates_with_punctuation_or_one_word_changed_are_found():
    pairs = translation.generate_pairs(200, seed=5)
    base = [_row(f"Translate English to French:\n{en}", fr) for en, fr in pairs]
    index = NearDuplicateIndex(threshold=0.8)
    for i, r in enumerate(base):
        index.add(i, shingles(r))
    long = [i for i, (en, _) in enumerate(pairs) if len(en.split()) >= 9][:10]
    for i in long:
        en, fr = pairs[i]
        punct = _row(f"Translate English to French:\n{en.rstrip('.')}!", fr.rstrip(".") + " !")
        words = fr.split()
        words[len(words) // 2] = "zzz"
        one_word = _row(f"Translate English to French:\n{en}", " ".join(words))
        assert index.find(shingles(punct))[0] == i
        hit = index.find(shingles(one_word))
        assert hit is not None and hit[0] == i and 0.8 <= hit[1] < 1
    # distinct sentences from the same generator and template are not near-duplicates
    fresh = translation.generate_pairs(260, seed=5)[200:]
    found = [index.find(shingles(_row(f"Translate English to French:\n{en}", fr))) for en, fr in fresh]
    assert sum(h is not None for h in found) <= 1


def test_jaccard_is_exact_on_the_shingle_sets():
    a, b = shingles(_row("a b c", "d")), shingles(_row("a b x", "d"))
    # {a, b, c, d, a b, b c} vs {a, b, x, d, a b, b x}: 4 shared of 8
    assert jaccard(a, b) == 4 / 8 and jaccard(a, a) == 1.0


def test_near_duplicates_over_json_lines_points_at_the_earlier_row():
    rows = [_row("the quick brown fox jumps over the lazy dog today", "ok"),
            _row("a completely different sentence about cooking pasta at home", "fine"),
            _row("The quick brown fox jumps over the lazy dog, today!", "ok")]
    lines = [json.dumps({"messages": r}) for r in rows]
    assert near_duplicates(lines, 0.8, 128) == [(2, 0, 1.0)]


def test_audit_leakage_reports_near_copies_of_training_rows():
    """A validation row that is a training row with a word or punctuation changed was 'no overlap'."""
    from harness.audit import data_audit
    from harness.messages import Example
    from harness.suite import parse_suite

    suite = parse_suite("name: s\nmodels: [{path: x}]\ntasks: [{name: t, data: {synthetic: {n: 1}}}]\n")
    pairs = translation.generate_pairs(60, seed=9)
    train = [Example(f"t{i}", _row(f"Translate to French: {en}", fr)) for i, (en, fr) in enumerate(pairs[:40])]
    long = [i for i, (en, _) in enumerate(pairs[:40]) if len(en.split()) >= 9][:3]
    near = []
    for k, i in enumerate(long):
        en, fr = pairs[i]
        near.append(Example(f"near{k}", _row(f"Translate to French: {en.replace(' the ', ' a ', 1)}", fr + "!")))
    val = [Example(f"v{i}", _row(f"Translate to French: {en}", fr)) for i, (en, fr) in enumerate(pairs[40:])] + near
    audit = data_audit(train, [], {"t": val}, suite)
    leak = next(c for c in audit["checks"] if c["name"] == "t.leakage")
    assert audit["leakage"]["t"]["rows"] == 0 and audit["leakage"]["t"]["near_rows"] == len(long) == 3
    assert leak["status"] == "warn" and "3 more are near copies" in leak["detail"]
    assert {e["id"] for e in leak["examples"]} == {"near0", "near1", "near2"}
    assert {e["train_id"] for e in leak["examples"]} == {f"t{i}" for i in long}
