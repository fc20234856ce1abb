"""Train/validation split (harness.dataprep.split): floor, grouping by prompt, stratification."""
from __future__ import annotations

import numpy as np
import pytest

from harness.dataprep.recipe import SplitSpec
from harness.dataprep.split import split, validation_target
from harness.errors import DataError


def _keys(ids) -> np.ndarray:
    return np.array([int(i).to_bytes(16, "little") for i in ids], dtype="V16")


def test_validation_floor_applies_to_small_sets():
    assert validation_target(1000, SplitSpec()) == 100         # 5% would be 50: the floor wins
    assert validation_target(10_000, SplitSpec()) == 500
    assert validation_target(10_000, SplitSpec(validation=42, min_validation=0)) == 42
    train, val = split(_keys(range(150)), np.zeros(150, np.int16), SplitSpec(), np.random.default_rng(0))
    assert len(val) == 100 and len(train) == 50


def test_too_few_rows_for_the_floor_is_an_error():
    with pytest.raises(DataError, match=r"99 rows .* validation set of 100 rows.*min_validation"):
        split(_keys(range(99)), np.zeros(99, np.int16), SplitSpec(), np.random.default_rng(0))


def test_rows_sharing_a_prompt_stay_on_one_side():
    prompts = np.repeat(np.arange(400), 3)              # 400 prompts, three answers each
    rng = np.random.default_rng(3)
    train, val = split(_keys(prompts), np.zeros(1200, np.int16), SplitSpec(validation=0.1), rng)
    assert set(prompts[train]).isdisjoint(prompts[val])
    assert len(val) >= 120 and len(val) % 3 == 0 and len(train) + len(val) == 1200
    assert sorted(np.concatenate([train, val]).tolist()) == list(range(1200))


def test_stratify_gives_each_source_its_share():
    sources = np.array([0] * 900 + [1] * 100, dtype=np.int16)
    train, val = split(_keys(range(1000)), sources, SplitSpec(validation=200, stratify=True), np.random.default_rng(0))
    assert np.bincount(sources[val]).tolist() == [180, 20]
