"""Mixing by weight (harness.dataprep.mix): ratios, repetition, seeds."""
from __future__ import annotations

import numpy as np
import pytest

from harness.dataprep.mix import largest_remainder, mix
from harness.dataprep.recipe import MixSpec
from harness.errors import DataError


def _sources(order: np.ndarray, sizes: list[int]) -> np.ndarray:
    return np.searchsorted(np.cumsum(sizes), order, side="right")


def test_interleave_approximates_the_weights_without_repeating_a_row():
    sizes = [3000, 3000, 3000]
    order = mix(sizes, [3, 2, 1], MixSpec(strategy="interleave"), np.random.default_rng(0))
    assert len(set(order.tolist())) == len(order)                      # no repetition
    realised = np.bincount(_sources(order, sizes), minlength=3) / len(order)
    assert realised == pytest.approx([0.5, 1 / 3, 1 / 6], abs=0.02)
    # it stops when the heaviest source runs out: that source is used up, the others are not
    assert np.bincount(_sources(order, sizes))[0] == 3000 and len(order) < 9000


def test_interleave_size_caps_the_mix():
    order = mix([500, 500], [1, 1], MixSpec(strategy="interleave", size=300), np.random.default_rng(1))
    assert len(order) == 300


def test_resample_hits_the_ratios_exactly_with_replacement():
    sizes = [100, 2000, 50]
    order = mix(sizes, [0.5, 0.25, 0.25], MixSpec(strategy="resample", size=1001), np.random.default_rng(0))
    counts = np.bincount(_sources(order, sizes), minlength=3)
    assert counts.tolist() == [501, 250, 250] and len(order) == 1001
    assert len(set(order[_sources(order, sizes) == 0].tolist())) <= 100   # 501 draws from 100 rows: repeats


def test_concat_takes_every_row_once_and_the_seed_fixes_the_order():
    a = mix([10, 20], [1, 5], MixSpec(), np.random.default_rng(7))
    assert sorted(a.tolist()) == list(range(30))
    assert a.tolist() == mix([10, 20], [1, 5], MixSpec(), np.random.default_rng(7)).tolist()
    assert a.tolist() != mix([10, 20], [1, 5], MixSpec(), np.random.default_rng(8)).tolist()


def test_resample_from_an_empty_source_is_an_error():
    with pytest.raises(DataError, match="no rows left"):
        mix([10, 0], [1, 1], MixSpec(strategy="resample"), np.random.default_rng(0))


def test_largest_remainder_sums_to_the_total():
    q = largest_remainder(np.array([1.0, 1.0, 1.0]), 100)
    assert q.sum() == 100 and sorted(q.tolist()) == [33, 33, 34]
