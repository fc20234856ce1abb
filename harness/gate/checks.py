"""Refusals before any verdict: a gate that passes must mean what it says.

Each is bad input (GateError, exit 2) unless the user allows it by name (`harness gate
--allow-NAME`); an allowed one is named in the verdict's summary instead:

    incomplete              the run (or the baseline) has a status other than `complete`
    overridden-references   predictions brought their own `reference` for some items
    partial                 predictions covered only part of a task's items (`--allow-partial`)
    different-data          a regression gate's baseline was graded on other items or references
                            (the tasks' `data_hash` differ)
"""
from __future__ import annotations

from typing import Collection, Optional

from harness.gate.specs import GateError
from harness.results import run_state


def _flag(name: str) -> str:
    return f"--allow-{name}"


def run_refusals(results: dict, source: str, model: dict, allow: Collection[str], label: str = "run") -> list[str]:
    """GateError for the first refused property of a run's `model`; notes for the allowed ones."""
    notes = []
    state = run_state(results)   # a 'running' run whose process is gone reads 'interrupted'
    status = state.status
    if status != "complete":
        detail = f" ({state.detail})" if state.detail else ""
        msg = (f"{source}: {label} {status}{detail}, not complete: gate a finished run "
               f"(or pass {_flag('incomplete')})")
        if "incomplete" not in allow:
            raise GateError(msg)
        notes.append(f"{label} {status}, allowed")
    for epoch in model["epochs"]:
        for task, rec in epoch["tasks"].items():
            overridden = rec.get("references_overridden") or 0
            if overridden:
                if "overridden-references" not in allow:
                    raise GateError(f"{source}: model {model['name']!r} task {task!r}: {overridden} of {rec['n']} "
                                    f"references came from the predictions file, not the task data: fix the "
                                    f"predictions (or pass {_flag('overridden-references')})")
                notes.append(f"{task}: {overridden} overridden references, allowed")
            coverage = rec.get("coverage")
            if coverage and coverage.get("graded", 0) < coverage.get("total", 0):
                if "partial" not in allow:
                    raise GateError(f"{source}: model {model['name']!r} task {task!r}: predictions covered "
                                    f"{coverage['graded']} of {coverage['total']} items: give them all "
                                    f"(or pass {_flag('partial')})")
                notes.append(f"{task}: {coverage['graded']}/{coverage['total']} items, allowed")
    return notes


def same_data(record: dict, ref_record: dict, where: str, baseline: str, allow: Collection[str]) -> Optional[str]:
    """GateError when two graded tasks were scored on different items or references (data
    hashes differ); a note when that is allowed or when a side predates the hash."""
    mine, theirs = record.get("data_hash"), ref_record.get("data_hash")
    if mine is None or theirs is None:
        return "data hash missing on one side (older results): test data not compared"
    if mine == theirs:
        return None
    if "different-data" not in allow:
        raise GateError(f"{where}: the baseline {baseline} was graded on different items or references "
                        f"(data_hash {theirs[:19]} vs {mine[:19]}): regrade both on the same data "
                        f"(or pass {_flag('different-data')})")
    return "graded on different data, allowed"
