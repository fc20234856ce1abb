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
