"""Stop when the chosen metric has not improved for `patience` graded epochs.

The metric is the harness's own score ('en-fr/bleu', or 'en-fr/loss'), not only TRL's
eval loss; its direction comes from the metric. With `rule: tie_set` an epoch improves only
when it is significantly better than the best so far (the paired test of the checkpoint
diagnostics): an epoch within noise of the best is tied with it, keeps the earlier epoch as the
best, and counts towards the patience.
"""
from __future__ import annotations

from typing import Callable, Optional


class EarlyStopper:
    def __init__(self, patience: int, min_delta: float = 0.0,
                 significantly_better: Optional[Callable[[int, int], bool]] = None):
        """`significantly_better(epoch, best_epoch)`: the tie-set rule's test (None: any improvement counts)."""
        self.patience, self.min_delta = patience, min_delta
        self.significantly_better = significantly_better
        self.best_epoch: Optional[int] = None
        self.best_score: Optional[float] = None
        self.bad_epochs = 0

    def update(self, epoch: int, score: Optional[float], higher_is_better: bool = True) -> bool:
        """Record one graded epoch; True when training should stop."""
        if score is None:
            return False
        better = self.best_score is None or (
            score > self.best_score + self.min_delta if higher_is_better else score < self.best_score - self.min_delta)
        if better and self.best_epoch is not None and self.significantly_better is not None:
            better = self.significantly_better(epoch, self.best_epoch)
        if better:
            self.best_epoch, self.best_score, self.bad_epochs = epoch, score, 0
            return False
        self.bad_epochs += 1
        return self.bad_epochs >= self.patience
