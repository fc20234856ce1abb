"""Diagnostics over a graded run: each verdict a statistical claim that states its own noise.

All of them read only what a run writes (results.json and the per-sample statistics in
samples/), so they work the same right after training, on an interrupted run, or later from
`harness report`. One concern a module:
  evidence     the per-item statistics, aligned by item id, and the paired test on them
  power        what each test set can see before any pairing (MDE, items needed)
  forgetting   every task × metric × epoch against epoch 0, Holm-adjusted, with its MDE
  drift        KL and NLL drift from the base on probes and task prompts, in forgetting's family
  inflection   the best epoch and the overfitting inflection of each series
  checkpoint   the tie set around the best epoch, the checkpoint to keep, its stability
  changes      what changed item by item, and the top regressions
Definitions, thresholds and defaults: docs/diagnostics.md.
"""
from __future__ import annotations

from typing import Optional

from harness.diagnose import drift
from harness.diagnose.changes import item_changes
from harness.diagnose.checkpoint import checkpoint_choice
from harness.diagnose.evidence import LOSS, ItemStats, TokenLoss
from harness.diagnose.forgetting import forgetting
from harness.diagnose.inflection import inflection, smooth
from harness.diagnose.power import power_lines, power_section
from harness.results import ModelRecord, RunDir
from harness.suite import Suite

__all__ = ["LOSS", "ItemStats", "TokenLoss", "diagnose_model", "power_lines", "power_section", "smooth"]


def diagnose_model(record: ModelRecord, run: RunDir, suite: Suite, drift_base: Optional[dict] = None) -> None:
    """Fill record["diagnostics"]: power, forgetting, drift, inflection, checkpoint and item changes.
    `drift_base`: another model's epoch record the drift compares with (`harness grade --drift-base`)."""
    items = ItemStats(run, suite)
    drifted = drift.drift_tests(record, run, suite, drift_base)
    forgot = forgetting(record, items, suite, also=drift.cells(drifted))   # one Holm family for both
    drift.judge(drifted, suite)
    record["diagnostics"] = {
        "power": power_section(record, items, suite),
        "forgetting": forgot,
        "inflection": inflection(record, items, suite),
        "checkpoint": checkpoint_choice(record, items, suite, forgot),
        "changes": item_changes(record, items, suite),
    }
    if drifted:
        record["diagnostics"]["drift"] = drifted
