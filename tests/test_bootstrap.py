"""Bootstrap CIs and the paired bootstrap test on per-sample statistics."""
from __future__ import annotations

import numpy as np
import pytest

from harness.metrics.base import GradedItem
from harness.metrics.bootstrap import bootstrap_ci, paired_bootstrap
from harness.metrics.exact_match import exact_match
from harness.metrics.translation import bleu

EM = exact_match({})[0]  # a MeanMetric: stats are one 0/1 column, score = mean × 100


def binary(n: int, p: float, seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).random(n) < p).astype(float).reshape(n, 1)


def test_ci_contains_corpus_score():
    st = binary(200, 0.6, 1)
    lo, hi = bootstrap_ci(EM, st)
    assert lo < EM.score(st) < hi
    assert 0 <= lo and hi <= 100


def test_ci_hand_checked_constant_and_normal_approximation():
    assert bootstrap_ci(EM, np.ones((10, 1))) == (100.0, 100.0)
    st = np.array([[1.0]] * 50 + [[0.0]] * 50)
    lo, hi = bootstrap_ci(EM, st, samples=2000)
    # normal approximation: 50 ± 1.96 · 100 · sqrt(0.25 / 100) = 50 ± 9.8
    assert lo == pytest.approx(40.2, abs=2.0) and hi == pytest.approx(59.8, abs=2.0)


def test_ci_deterministic_for_seed():
    st = binary(100, 0.5, 2)
    assert bootstrap_ci(EM, st, seed=7) == bootstrap_ci(EM, st, seed=7)
    assert bootstrap_ci(EM, st, seed=7) != bootstrap_ci(EM, st, seed=8)


def test_ci_narrows_with_more_items():
    lo_s, hi_s = bootstrap_ci(EM, binary(50, 0.5, 3))
    lo_l, hi_l = bootstrap_ci(EM, binary(2000, 0.5, 3))
    assert (hi_l - lo_l) < (hi_s - lo_s) / 3  # width ∝ 1/sqrt(n): sqrt(2000/50) ≈ 6.3


def test_ci_edge_cases():
    assert bootstrap_ci(EM, np.ones((1, 1))) is None
    assert bootstrap_ci(EM, binary(10, 0.5, 0), samples=0) is None


def test_ci_on_bleu_reaggregates_counts():
    pairs = [("the cat sat on the mat", "the cat sat on the mat"), ("a dog runs", "the dog runs fast"),
             ("hello there", "hello there my friend"), ("it is raining today", "it rains today")] * 10
    its = [GradedItem(f"x{i}", "", r, output=h) for i, (h, r) in enumerate(pairs)]
    (m,) = bleu({})
    st = m.stats(its)
    lo, hi = bootstrap_ci(m, st, samples=300)
    assert lo <= m.score(st) <= hi


def test_paired_identical_systems():
    st = binary(100, 0.5, 4)
    res = paired_bootstrap(EM, st, st.copy())
    assert res["delta"] == 0.0
    assert res["ci"] == [0.0, 0.0]
    assert res["p_value"] == pytest.approx(1.0)
    assert res["samples"] == 1000


def test_paired_clearly_better_system():
    old = binary(100, 0.5, 5)
    new = old.copy()
    new[:40] = 1.0  # fixes some failures, breaks nothing
    res = paired_bootstrap(EM, new, old)
    assert res["delta"] == pytest.approx(EM.score(new) - EM.score(old))
    assert res["delta"] > 0
    assert res["p_value"] < 0.05
    assert res["ci"][0] > 0
    # and the other direction: negative delta, same significance
    rev = paired_bootstrap(EM, old, new)
    assert rev["delta"] == pytest.approx(-res["delta"]) and rev["p_value"] < 0.05


def test_paired_noise_is_not_significant_and_deterministic():
    old, new = binary(60, 0.5, 6), binary(60, 0.5, 7)
    res = paired_bootstrap(EM, new, old, seed=3)
    assert res == paired_bootstrap(EM, new, old, seed=3)
    assert res["p_value"] > 0.05


def test_paired_needs_aligned_items():
    with pytest.raises(ValueError, match="same items"):
        paired_bootstrap(EM, np.ones((3, 1)), np.ones((4, 1)))
    assert paired_bootstrap(EM, np.ones((1, 1)), np.zeros((1, 1)))["p_value"] is None
