from harness.early_stopping import EarlyStopper


def test_stops_after_patience_and_keeps_best_not_last():
    s = EarlyStopper(patience=2)
    stops = [s.update(e, v) for e, v in enumerate([10, 20, 25, 24, 23])]
    assert stops == [False, False, False, False, True]
    assert s.best_epoch == 2 and s.best_score == 25


def test_lower_is_better_and_min_delta():
    s = EarlyStopper(patience=1, min_delta=0.5)
    assert not s.update(0, 3.0, higher_is_better=False)
    assert s.update(1, 2.8, higher_is_better=False)  # not better by 0.5
    assert s.best_epoch == 0


def test_tie_set_rule_counts_only_significant_gains_and_keeps_the_earlier_tied_epoch():
    asked = []

    def significant(epoch: int, best: int) -> bool:
        asked.append((epoch, best))
        return epoch == 1            # only epoch 1's gain over epoch 0 survives the paired test

    s = EarlyStopper(patience=2, significantly_better=significant)
    stops = [s.update(e, v) for e, v in enumerate([10, 20, 21, 22])]
    assert stops == [False, False, False, True]     # 21 and 22 are within noise of 20: patience runs out
    assert s.best_epoch == 1 and s.best_score == 20
    assert asked == [(1, 0), (2, 1), (3, 1)]
    plain = EarlyStopper(patience=2)
    assert [plain.update(e, v) for e, v in enumerate([10, 20, 21, 22])] == [False] * 4 and plain.best_epoch == 3
