"""Predictions files (harness/predictions.py): coverage, overridden references, refusals."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.errors import DataError
from harness.grade import LoadedTask, data_hash
from harness.messages import Example
from harness.suite import parse_suite

SUITE = parse_suite("name: p\nmodels: [{path: builtin:tiny-translator}]\n"
                    "tasks: [{name: t, data: {synthetic: {kind: math, n: 1}}, metrics: [exact_match]}]\n")


def _task(n: int = 4) -> LoadedTask:
    examples = [Example(id=f"s{i}", messages=[{"role": "user", "content": f"q{i}"},
                                              {"role": "assistant", "content": f"a{i}"}]) for i in range(n)]
    return LoadedTask(SUITE.tasks[0], examples, [])


def _write(tmp_path: Path, rows: list[dict]) -> Path:
    p = tmp_path / "p.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return p


def test_references_are_counted_only_where_they_differ_and_added_items_count_too(tmp_path):
    from harness.predictions import load_predictions

    task = _task()
    before = data_hash(task.examples)
    rows = [{"task": "t", "id": f"s{i}", "output": "x"} for i in range(4)]
    rows[0]["reference"] = "a0"            # the same as the data's: not an override
    rows[1]["reference"] = "other"         # an override
    rows.append({"task": "t", "id": "new", "output": "y", "reference": "z", "source": "q"})   # an added item
    preds = load_predictions(_write(tmp_path, rows), [task])
    assert sorted(preds["t"]) == ["new", "s0", "s1", "s2", "s3"]
    assert task.provenance == {"coverage": {"graded": 4, "total": 4}, "references_overridden": 2}
    assert [ex.reference for ex in task.examples] == ["a0", "other", "a2", "a3", "z"]
    assert data_hash(task.examples) != before     # the graded data is not the task data any more


def test_missing_ids_are_an_error_unless_partial_is_allowed(tmp_path):
    from harness.predictions import load_predictions

    rows = [{"task": "t", "id": i, "output": "x"} for i in (1, 3)] + [{"task": "t", "id": "s1", "output": "x"}]
    path = _write(tmp_path, rows[2:])
    with pytest.raises(DataError, match=r"no prediction for 3 of 4 items \(first: s0, s2, s3\)"):
        load_predictions(path, [_task()])
    task = _task()
    load_predictions(path, [task], allow_partial=True)
    assert [ex.id for ex in task.examples] == ["s1"]
    assert task.provenance == {"coverage": {"graded": 1, "total": 4}, "references_overridden": 0}


def test_an_integer_id_and_its_string_are_the_same_item(tmp_path):
    from harness.predictions import load_predictions

    rows = [{"task": "t", "id": "7", "output": "x"}, {"task": "t", "id": 7, "output": "y"}]
    with pytest.raises(DataError, match=r"p.jsonl:2: duplicate id '7' for task t \(first at line 1\)"):
        load_predictions(_write(tmp_path, rows), [_task()])


def test_grade_accepts_the_allowance_its_gate_refusal_names(tmp_path, monkeypatch, capsys):
    """`harness grade` gates with the suite's gates; the refusal of overridden references names a
    flag, and `harness grade` takes that flag."""
    from harness.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "val.jsonl").write_text("".join(json.dumps({"id": f"s{i}", "prompt": f"q{i}", "completion": f"a{i}"})
                                                + "\n" for i in range(3)))
    (tmp_path / "s.yaml").write_text("name: p\nmodels: [{path: builtin:tiny-translator}]\n"
                                     "tasks: [{name: t, data: {path: val.jsonl}, metrics: [exact_match]}]\n"
                                     "gates: [{task: t, metric: exact_match, min: 0}]\nbootstrap: {samples: 10}\n")
    rows = [{"task": "t", "id": f"s{i}", "output": f"a{i}"} for i in range(3)]
    rows[0]["reference"] = "a0 but different"
    preds = _write(tmp_path, rows)
    argv = ["grade", str(tmp_path / "s.yaml"), "--predictions", str(preds), "--no-report"]
    assert main(argv + ["--run-dir", "refused"]) == 2
    err = capsys.readouterr().err
    flag = "--allow-overridden-references"
    assert flag in err
    assert main(argv + ["--run-dir", "allowed", flag]) == 0
    out = capsys.readouterr().out
    assert "overridden" in out and "pass" in out
