"""Predictions files: `harness grade --predictions FILE` grades outputs made elsewhere.

One JSON object a line: `task`, `id`, `output` (strings; `id` may be an integer), optional
`reference` (replaces the task data's for that item, or adds an item the data lacks, with an
optional `source`). Every malformed line is a `DataError` naming file and line; the checks
against the task data (missing ids, repeated ids) run before any run directory exists.
"""
from __future__ import annotations

import json
from pathlib import Path

from harness.errors import DataError
from harness.files import iter_lines
from harness.grade import LoadedTask
from harness.messages import Example, json_object_line, refuse_lone_surrogates


def load_predictions(path: Path, tasks: list[LoadedTask], allow_partial: bool = False
                     ) -> dict[str, dict[str, dict]]:
    """JSONL with task, id, output (optional reference) → task → id → row.

    Ids of the task data missing from the file are an error naming the first few (with
    `allow_partial`, the task shrinks to the ids given and its coverage is recorded), so a
    partial file cannot quietly shrink the test set; an id twice is an error. A `reference`
    field overrides the task data's reference: counted as `references_overridden`.
    """
    by_task: dict[str, dict[str, dict]] = {t.spec.name: {} for t in tasks}
    first_line: dict[tuple[str, str], int] = {}
    for lineno, line in enumerate(iter_lines(path, "predictions file", DataError), 1):
        if not line.strip():
            continue
        row = _prediction_row(line, f"{path}:{lineno}", by_task)
        key = (row["task"], str(row["id"]))
        if key in first_line:
            raise DataError(f"{path}:{lineno}: duplicate id {key[1]!r} for task {key[0]} (first at line "
                            f"{first_line[key]}): keep one prediction per item")
        first_line[key] = lineno
        by_task[row["task"]][key[1]] = row
    for task in tasks:
        rows = by_task[task.spec.name]
        known = {ex.id for ex in task.examples}
        extra = [i for i in rows if i not in known]
        for i in extra:  # rows with their own reference extend the task
            if "reference" not in rows[i]:
                raise DataError(f"{path}: task {task.spec.name}: id {i!r} is not in the task data and has no 'reference'")
        missing = [ex.id for ex in task.examples if ex.id not in rows]
        if missing and not allow_partial:
            raise DataError(f"{path}: task {task.spec.name}: no prediction for {len(missing)} of "
                            f"{len(task.examples)} items (first: {', '.join(missing[:3])}): give every id, "
                            f"or pass --allow-partial to grade the rest")
        total = len(task.examples)
        overridden = sum(1 for ex in task.examples if ex.id in rows and "reference" in rows[ex.id]
                         and rows[ex.id]["reference"] != ex.reference) + len(extra)
        task.examples = [ex for ex in task.examples if ex.id in rows] + [
            _example_from_prediction(rows[i]) for i in extra]
        for ex in task.examples:
            if "reference" in rows[ex.id]:
                ex.messages = ex.messages[:-1] + [{"role": "assistant", "content": rows[ex.id]["reference"]}]
        if not task.examples:
            raise DataError(f"{path}: no predictions for task {task.spec.name}")
        task.provenance = {"coverage": {"graded": total - len(missing), "total": total},
                           "references_overridden": overridden}
    return by_task


def _prediction_row(line: str, where: str, by_task: dict) -> dict:
    row = json_object_line(line, where, "each line is a JSON object {{task, id, output}}, not {type}")
    missing = [k for k in ("task", "id", "output") if k not in row]
    if missing:
        raise DataError(f"{where}: missing field(s) {', '.join(missing)} (each line needs task, id, output)")
    if not isinstance(row["task"], str) or row["task"] not in by_task:
        raise DataError(f"{where}: unknown task {row['task']!r}; the suite has {', '.join(by_task)}")
    if isinstance(row["id"], bool) or not isinstance(row["id"], (str, int)):
        raise DataError(f"{where}: field 'id' must be a string or an integer, not {json.dumps(row['id'])}")
    for k in ("output", "reference", "source"):
        if k in row and not isinstance(row[k], str):
            raise DataError(f"{where}: field '{k}' must be a string, not {json.dumps(row[k])[:40]}")
    for k in ("id", "output", "reference", "source"):
        if isinstance(row.get(k), str):   # refused before the run directory exists
            refuse_lone_surrogates(row[k], where, f"field '{k}'")
    return row


def _example_from_prediction(row: dict) -> Example:
    return Example(id=str(row["id"]), messages=[{"role": "user", "content": row.get("source", "")},
                                                {"role": "assistant", "content": row["reference"]}],
                   origin="predictions")
