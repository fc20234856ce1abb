"""Diagnostics over a graded run: each verdict a statistical claim that states its own noise.

All of them read only what a run writes (results.json and the per-sample statistics in
samples/), so they work the same right after training, on an interrupted run, or later from
`harness report`. One concern a module:
  evidence     the per-item statistics, aligned by item id, and the paired test on them
  power        what each test set can see before any pairing (MDE, items needed)
  forgetting   every task × metric × epoch against epoch 0, Holm-adjusted, with its MDE
  inflection   the best epoch and the overfitting inflection of each series
  checkpoint   the tie set around the best epoch, the checkpoint to keep, its stability
  changes      what changed item by item, and the top regressions
Definitions, thresholds and defaults: docs/diagnostics.md.
"""
from __future__ import annotations

from harness.diagnose.changes import item_changes
from harness.diagnose.checkpoint import checkpoint_choice
from harness.diagnose.evidence import LOSS, ItemStats, TokenLoss
from harness.diagnose.forgetting import forgetting
from harness.diagnose.inflection import inflection, smooth
from harness.diagnose.power import power_lines, power_section
from harness.results import ModelRecord, RunDir
from harness.suite import Suite

__all__ = ["LOSS", "ItemStats", "TokenLoss", "diagnose_model", "power_lines", "power_section", "smooth"]


def diagnose_model(record: ModelRecord, run: RunDir, suite: Suite) -> None:
    """Fill record["diagnostics"]: power, forgetting, inflection, checkpoint and item changes."""
    items = ItemStats(run, suite)
    forgot = forgetting(record, items, suite)
    record["diagnostics"] = {
        "power": power_section(record, items, suite),
        "forgetting": forgot,
        "inflection": inflection(record, items, suite),
        "checkpoint": checkpoint_choice(record, items, suite, forgot),
        "changes": item_changes(record, items, suite),
    }
