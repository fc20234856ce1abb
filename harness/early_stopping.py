"""Stop when the chosen metric has not improved for `patience` graded epochs.

The metric is the harness's own score ('en-fr/bleu', or 'en-fr/loss'), not only TRL's
eval loss; its direction comes from the metric.
"""
from __future__ import annotations

from typing import Optional


class EarlyStopper:
    def __init__(self, patience: int, min_delta: float = 0.0):
        self.patience, self.min_delta = patience, min_delta
        self.best_epoch: Optional[int] = None
        self.best_score: Optional[float] = None
        self.bad_epochs = 0

    def update(self, epoch: int, score: Optional[float], higher_is_better: bool = True) -> bool:
        """Record one graded epoch; True when training should stop."""
        if score is None:
            return False
        better = self.best_score is None or (
            score > self.best_score + self.min_delta if higher_is_better else score < self.best_score - self.min_delta)
        if better:
            self.best_epoch, self.best_score, self.bad_epochs = epoch, score, 0
            return False
        self.bad_epochs += 1
        return self.bad_epochs >= self.patience
