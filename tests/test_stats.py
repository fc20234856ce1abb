"""The statistics behind the verdicts (harness/stats/): hand-checked values, exact coverage, paired tests."""
from __future__ import annotations

import math

import numpy as np
import pytest

from harness.metrics.base import GradedItem
from harness.metrics.exact_match import exact_match
from harness.metrics.translation import bleu
from harness.stats.family import holm
from harness.stats.intervals import BCA, WILSON, bca_interval, score_interval
from harness.stats.paired import BOOTSTRAP_TEST, MCNEMAR_TEST, compare_worse
from harness.stats.power import (items_needed, mde_from_se, paired_discordance, rate_items_needed, rate_mde,
                                 unpaired_discordance)
from harness.stats.rates import (binomial_upper_tail, mcnemar_worse, poisson_lower, smallest_detectable_count,
                                 wilson_interval)
from harness.stats.resampling import (cluster_members, finite, percentile_interval, resample_indices,
                                      resample_scores, resample_weights)

EM = exact_match({})[0]          # a rate: one 0/1 column, score = mean × 100
(BLEU,) = bleu({})


def binary(n: int, p: float, seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).random(n) < p).astype(float).reshape(n, 1)


def bleu_stats(n: int, seed: int, noise: float = 0.3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    words = "the cat sat on a mat with dog and bird in garden".split()
    items = []
    for i in range(n):
        ref = " ".join(rng.choice(words, 8))
        hyp = " ".join(w if rng.random() > noise else rng.choice(words) for w in ref.split())
        items.append(GradedItem(f"x{i}", "", ref, output=hyp))
    return BLEU.stats(items)


# ------------------------------------------------------------------------------ resampling
def test_resamples_are_seeded_and_cluster_resamples_keep_clusters_whole():
    a, b = resample_indices(50, 20, 3), resample_indices(50, 20, 3)
    assert all((x == y).all() for x, y in zip(a, b))
    assert not all((x == y).all() for x, y in zip(a, resample_indices(50, 20, 4)))
    clusters = [i // 5 for i in range(50)]          # 10 documents of 5 questions
    for idx in resample_indices(50, 30, 0, clusters):
        assert len(idx) == 50
        blocks = idx.reshape(10, 5)                 # every drawn cluster appears whole, in order
        assert all((blk == blk[0] + np.arange(5)).all() and blk[0] % 5 == 0 for blk in blocks)
    assert [m.tolist() for m in cluster_members(["b", "a", "b"])] == [[0, 2], [1]]


def test_design_effect_of_duplicated_items_is_the_cluster_size():
    base = binary(40, 0.5, 1)
    stats = np.repeat(base, 4, axis=0)               # every item copied 4 times: 40 clusters of 4
    clusters = np.repeat(np.arange(40), 4)
    got = score_interval(EM, stats, samples=2000, clusters=clusters)
    assert got["design_effect"] == pytest.approx(4.0, rel=0.2)
    naive = score_interval(EM, stats, samples=2000)
    assert naive["design_effect"] is None
    assert got["ci"][1] - got["ci"][0] > 1.6 * (naive["ci"][1] - naive["ci"][0])   # ~sqrt(4) wider


# ------------------------------------------------------------------------------- intervals
def test_rate_interval_is_wilson_and_never_zero_width():
    perfect = score_interval(EM, np.ones((100, 1)))
    assert perfect["method"] == WILSON
    assert perfect["ci"][0] == pytest.approx(96.30, abs=0.01) and perfect["ci"][1] == 100.0
    half = score_interval(EM, np.array([[1.0]] * 50 + [[0.0]] * 50))
    assert half["ci"] == pytest.approx([40.38, 59.62], abs=0.01)   # Wilson 1927 by hand: 50 ± 9.62
    none = score_interval(EM, np.zeros((100, 1)))
    assert none["ci"][0] == 0.0 and none["ci"][1] == pytest.approx(3.70, abs=0.01)


def test_wilson_edge_correction_uses_poisson_bounds():
    assert poisson_lower(1, 0.05) == pytest.approx(-math.log(0.95), rel=1e-9)      # P(N>=1) = 1 - e^-λ
    lo, hi = wilson_interval(99, 100)
    assert hi == pytest.approx(1 - poisson_lower(1, 0.05) / 100, rel=1e-12)
    plain_hi = 0.998   # the uncorrected Wilson upper bound at 99/100 stops short of 0.999
    assert hi > 0.999 > plain_hi


@pytest.mark.parametrize("n", [100, 400])
def test_wilson_exact_coverage_is_nominal_or_conservative(n):
    """Exact coverage (sum of binomial probabilities), no simulation: never below 93% from p = 0.5 to 0.999."""
    for p in (0.5, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999):
        cov = sum(math.comb(n, x) * p ** x * (1 - p) ** (n - x)
                  for x in range(n + 1) if wilson_interval(x, n)[0] <= p <= wilson_interval(x, n)[1])
        assert cov >= 0.93, (n, p, cov)


def test_corpus_metric_interval_is_bca():
    st = bleu_stats(80, 1)
    got = score_interval(BLEU, st, samples=500, seed=2)
    assert got["method"] == BCA
    assert got["ci"][0] < BLEU.score(st) < got["ci"][1]
    assert got == score_interval(BLEU, st, samples=500, seed=2)
    assert score_interval(BLEU, st[:1])["ci"] is None and score_interval(BLEU, st, samples=0)["ci"] is None


class Median:
    """A metric with no column-total form: resampling and the jackknife score each subset's rows."""

    higher_is_better, rate = True, False

    def score(self, stats):
        return float(np.median(stats[:, 0])) if len(stats) else float("nan")

    def scores_from_totals(self, totals, counts):
        return None


def test_bca_by_hand_on_a_skewed_mean():
    """Efron's BCa on a mean of skewed values: z0 from the share below the estimate, a from the jackknife."""
    from statistics import NormalDist

    rng = np.random.default_rng(0)
    st = rng.exponential(1.0, size=(60, 1))
    idx = resample_indices(60, 2000, 1)
    values = finite(resample_scores(EM, st, idx))
    theta = EM.score(st)
    z0 = NormalDist().inv_cdf(np.mean(values < theta))
    jack = np.array([EM.score(np.delete(st, i, axis=0)) for i in range(60)])
    d = jack.mean() - jack
    a = np.sum(d ** 3) / (6 * np.sum(d ** 2) ** 1.5)
    want = [np.quantile(values, NormalDist().cdf(z0 + (z0 + z) / (1 - a * (z0 + z))))
            for z in (NormalDist().inv_cdf(0.025), NormalDist().inv_cdf(0.975))]
    assert bca_interval(EM, st, values, 0.95) == pytest.approx(want, rel=1e-12)
    assert a > 0 and want[1] - theta > theta - want[0]          # skewed right: the interval leans right
    # no totals form: the same interval from the rows themselves
    values_m = finite(resample_scores(Median(), st, idx))
    assert len(values_m) == 2000 and bca_interval(Median(), st, values_m, 0.95) is not None
    assert bca_interval(EM, np.ones((5, 1)), np.full(10, 100.0), 0.95) == percentile_interval(np.full(10, 100.0), 0.95)


@pytest.mark.parametrize("name", ["bleu", "chrf", "ter", "perplexity", "exact_match", "rouge", "usability"])
def test_scores_from_totals_equal_scoring_each_resample(name):
    from harness.metrics import METRICS
    from harness.metric_options import NoOptions

    metric = METRICS[name].from_options(METRICS[name].options() if METRICS[name].options is not NoOptions
                                        else NoOptions())[0]
    rng = np.random.default_rng(3)
    items = [GradedItem(f"i{i}", "", ref, output=out, finish_reason="eos", nll_sum=float(rng.random() * 30),
                        n_tokens=int(rng.integers(1, 20)))
             for i, (out, ref) in enumerate([("the cat sat", "the cat sat down"), ("a dog", "the dog runs"),
                                             ("", "nothing here"), ("same words", "same words")] * 6)]
    st = metric.stats(items)
    idx = resample_indices(len(st), 50, 4) + [np.array([], dtype=int)]
    fast = resample_scores(metric, st, idx)
    slow = [metric.score(st[i]) if len(i) else float("nan") for i in idx]
    assert fast == pytest.approx(slow, rel=1e-9, nan_ok=True)
    assert resample_weights(idx[:2], len(st)).sum(axis=1).tolist() == [len(st), len(st)]


# ------------------------------------------------------------------------------ paired tests
def test_mcnemar_counts_only_the_items_that_changed():
    rng = np.random.default_rng(0)
    old = (rng.random(100) < 0.5).astype(float).reshape(-1, 1)
    new = old.copy()
    new[np.flatnonzero(old[:, 0] == 1)[:15], 0] = 0.0       # 15 break, none fixed
    res = compare_worse(EM, new, old)
    assert res["test"] == MCNEMAR_TEST and (res["worse"], res["better"]) == (15, 0)
    assert res["p_value"] == pytest.approx(0.5 ** 15) and res["delta"] == pytest.approx(-15.0)
    assert compare_worse(EM, old, new)["p_value"] == 1.0     # the other direction is an improvement
    assert compare_worse(EM, old, old.copy())["p_value"] == 1.0
    assert mcnemar_worse(np.array([1, 0]), np.array([0, 1]), higher_is_better=False) == \
        {"worse": 1, "better": 1, "p_value": 0.75}


def test_binomial_tail_and_smallest_count_by_hand():
    assert binomial_upper_tail(3, 5) == pytest.approx((10 + 5 + 1) / 32)
    assert binomial_upper_tail(0, 7) == 1.0 and binomial_upper_tail(2, 0) == 1.0
    assert smallest_detectable_count(0.05) == 5                # 2^-5 = 0.031 < 0.05 <= 2^-4
    assert smallest_detectable_count(1 / 8) == 4               # 2^-3 is not < 1/8
    assert smallest_detectable_count(0.05 / 40) == 10


def test_bootstrap_paired_test_on_bleu():
    old = bleu_stats(100, 5, noise=0.2)
    worse = bleu_stats(100, 5, noise=0.5)        # same references and item order, more noise
    res = compare_worse(BLEU, worse, old, samples=500)
    assert res["test"] == BOOTSTRAP_TEST and res["drop"] > 10 and res["p_value"] < 1e-6
    assert res["ci"][1] < 0 and res["se"] > 0
    better = compare_worse(BLEU, old, worse, samples=500)
    assert better["p_value"] > 0.99
    same = compare_worse(BLEU, old, old.copy(), samples=200)
    assert same["p_value"] == 1.0 and same["se"] == 0.0
    with pytest.raises(ValueError, match="same items"):
        compare_worse(BLEU, old[:3], old[:4])
    assert compare_worse(BLEU, old[:1], old[:1])["p_value"] is None


def test_clustered_rate_comparison_falls_back_to_the_cluster_bootstrap():
    old = np.repeat(binary(30, 0.7, 3), 3, axis=0)
    new = old.copy()
    new[:9] = 0.0
    res = compare_worse(EM, new, old, samples=300, clusters=np.repeat(np.arange(30), 3))
    assert res["test"] == BOOTSTRAP_TEST and "worse" not in res


# ----------------------------------------------------------------------------------- power
def test_mde_and_items_needed_by_hand():
    assert mde_from_se(1.0, 0.05, 0.8) == pytest.approx(1.6449 + 0.8416, abs=1e-3)
    assert mde_from_se(None, 0.05, 0.8) is None
    assert items_needed(100, 2.0, 1.0) == 400 and items_needed(100, 0.5, 1.0) == 100
    assert items_needed(100, 2.0, 0.0) is None
    # rates: no drop of fewer than 10 items can reach p < 0.05/40, whatever the discordance
    assert rate_mde(100, 0.0001, 0.05 / 40, 0.8, 100) == pytest.approx(10.0)
    assert rate_items_needed(100, 0.0001, 0.05 / 40, 0.8, 100, threshold=1.0) == 1000
    assert unpaired_discordance(100, 100) > 0 and paired_discordance(0, 100) > 0


# ---------------------------------------------------------------------------------- family
def test_holm_by_hand():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.2, None, 0.01]) == [0.2, None, 0.02]
    assert holm([0.6, 0.7]) == [1.0, 1.0]
    assert holm([]) == []


@pytest.mark.parametrize("options", [{"smooth_method": "none"}, {"smooth_method": "floor", "smooth_value": 0.1},
                                     {"smooth_method": "add-k"}, {"effective_order": True}, {"max_ngram_order": 2}])
def test_vectorised_bleu_and_chrf_equal_sacrebleu_under_every_setting(options):
    from harness.metrics.translation import chrf

    rng = np.random.default_rng(5)
    words = "a b c d e f g h".split()
    items = [GradedItem(f"i{i}", "", " ".join(rng.choice(words, rng.integers(1, 9))),
                        output=" ".join(rng.choice(words, rng.integers(0, 9)))) for i in range(40)]
    for metric in (bleu(options)[0], chrf({"eps_smoothing": True})[0], chrf({"word_order": 2})[0]):
        st = metric.stats(items)
        idx = resample_indices(len(st), 200, 6) + [np.array([3]), np.array([], dtype=int)]
        fast = resample_scores(metric, st, idx)
        assert fast == pytest.approx([metric.score(st[i]) if len(i) else float("nan") for i in idx],
                                     rel=1e-9, abs=1e-9, nan_ok=True)
