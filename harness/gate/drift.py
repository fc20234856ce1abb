"""Drift gates (`{drift: nll, max: 0.1}`): a drift signal of diagnostics.drift at the gated checkpoint.

Drift is already a comparison with the base model, tested in the run's Holm family
(harness/diagnose/drift.py), so a drift gate is an absolute bound on the signal's value."""
from __future__ import annotations

from harness.gate.specs import GateError
from harness.results import RunDir


class DriftSide:
    """What an absolute gate reads from a side (`_Side` in harness/gate/evaluation.py), for a drift signal."""

    higher_is_better = False
    signature = None

    def __init__(self, label: str, run: RunDir, model: dict, epoch: dict, signal: str, where: str):
        self.label, self.run, self.model, self.epoch = label, run, model, epoch
        self.task, self.metric = "drift", signal
        self.record = {"samples": None}
        section = ((model.get("diagnostics") or {}).get("drift") or {})
        row = (section.get("signals") or {}).get(signal)
        if row is None:
            have = ", ".join(section.get("signals") or {}) or "none (set diagnostics.probe or diagnostics.drift)"
            raise GateError(f"{where}: drift signal {signal!r} not measured for model {model['name']!r} "
                            f"(measured: {have})")
        cell = row["epochs"].get(str(epoch["epoch"]))
        if cell is None and epoch["epoch"] == 0 and section.get("base_model") == model["name"]:
            cell = {"value": 0.0}   # the base model itself: no drift by definition
        if cell is None:
            raise GateError(f"{where}: drift {signal!r} has no value at epoch {epoch['epoch']} "
                            f"(epochs measured: {', '.join(row['epochs']) or 'none'})")
        self.value = cell["value"]
