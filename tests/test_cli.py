"""The command line: clear one-line errors with exit code 2, predictions grading, schema."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import main
from harness.results import load_results, read_jsonl

SUITE = """\
name: p
models: [{{path: builtin:tiny-translator}}]
tasks:
  - name: en-fr
    data: {{path: {data}}}
    metrics: [bleu, chrf, perplexity, usability]
output_dir: {out}
{extra}"""


def _write_suite(tmp_path: Path, rows: list[dict], extra: str = "") -> Path:
    data = tmp_path / "val.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    suite = tmp_path / "suite.yaml"
    suite.write_text(SUITE.format(data=data.name, out=tmp_path / "runs", extra=extra))
    return suite


ROWS = [{"id": f"s{i}", "prompt": src, "completion": ref} for i, (src, ref) in enumerate([
    ("The cat sleeps.", "Le chat dort."), ("The dog eats.", "Le chien mange."),
    ("A red apple.", "Une pomme rouge."), ("The small house.", "La petite maison.")])]


def _run_cli(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True)


@pytest.mark.parametrize("suite_text,expect", [
    ("name: x\nmodels: [{path: m}]\ntasks: [{name: a, data: {synthetic: {n: 1}}, metrics: [bleux]}]\n",
     "did you mean 'bleu'"),
    ("name: x\nmodels: [{path: m}]\ntasks: [{name: a, data: {path: nope.jsonl}}]\n", "file not found"),
    ("name: x\nmodels: [{path: m}]\ntasks: [{name: a, data: {synthetic: {n: -3}}}]\n", "tasks.0.data.synthetic.n"),
    ("name: x\nmodels: [{path: m}]\ntasks: [{name: a}]\n", "missing required field 'tasks.0.data'"),
])
def test_bad_suite_is_one_line_exit_2(tmp_path, suite_text, expect):
    f = tmp_path / "bad.yaml"
    f.write_text(suite_text)
    p = _run_cli(["grade", str(f), "--predictions", str(tmp_path / "p.jsonl")])
    assert p.returncode == 2, p.stderr
    out = (p.stdout + p.stderr).strip()
    assert "Traceback" not in out and len(out.splitlines()) == 1 and expect in out and "bad.yaml" in out


def test_bad_data_line_is_one_line_exit_2(tmp_path):
    suite = _write_suite(tmp_path, ROWS)
    with open(tmp_path / "val.jsonl", "a") as f:
        f.write('{"prompt": "x"}\n')
    p = _run_cli(["grade", str(suite), "--predictions", str(tmp_path / "p.jsonl")])
    assert p.returncode == 2
    out = (p.stdout + p.stderr).strip()
    assert "Traceback" not in out and "val.jsonl:5:" in out and "completion" in out


def test_grade_predictions_without_a_model(tmp_path):
    suite = _write_suite(tmp_path, ROWS)
    outputs = ["Le chat dort.", "Le chien dort.", "", "La petite maison. La petite maison."]
    preds = tmp_path / "preds.jsonl"
    preds.write_text("".join(json.dumps({"task": "en-fr", "id": f"s{i}", "output": o}) + "\n"
                             for i, o in enumerate(outputs)))
    code = main(["-q", "grade", str(suite), "--predictions", str(preds), "--run-dir", str(tmp_path / "run"),
                 "--no-report"])
    assert code == 0
    results, run = load_results(tmp_path / "run")
    task = results["models"][0]["epochs"][0]["tasks"]["en-fr"]
    assert task["metrics"]["perplexity"]["score"] is None and "likelihood" in task["metrics"]["perplexity"]["skipped"]
    assert task["metrics"]["usability"]["score"] == pytest.approx(75.0)
    rows = read_jsonl(run.root / task["samples"])
    assert [r["scores"]["bleu"] for r in rows][0] == pytest.approx(100.0)
    assert rows[2]["details"]["usability"] == {"unusable": "empty"}


def test_predictions_with_own_reference_and_bad_lines(tmp_path):
    suite = _write_suite(tmp_path, ROWS)
    preds = tmp_path / "preds.jsonl"
    preds.write_text(json.dumps({"task": "en-fr", "id": "new", "output": "Le petit chat noir dort ici.", "reference": "Le petit chat noir dort ici."}) + "\n")
    assert main(["-q", "grade", str(suite), "--predictions", str(preds), "--run-dir", str(tmp_path / "r"),
                 "--no-report", "--allow-partial"]) == 0   # none of the task's own ids: partial
    results, _ = load_results(tmp_path / "r")
    task = results["models"][0]["epochs"][0]["tasks"]["en-fr"]
    assert task["metrics"]["bleu"]["score"] == pytest.approx(100.0)
    assert task["coverage"] == {"graded": 0, "total": 4} and task["references_overridden"] == 1
    preds.write_text(json.dumps({"task": "de-en", "id": "s0", "output": "x"}) + "\n")
    p = _run_cli(["grade", str(suite), "--predictions", str(preds), "--no-report"])
    assert p.returncode == 2 and "preds.jsonl:1: unknown task 'de-en'" in p.stderr


def test_schema_command(tmp_path):
    assert main(["schema", "-o", str(tmp_path / "s.json")]) == 0
    schema = json.loads((tmp_path / "s.json").read_text())
    assert "train" in schema["properties"] and schema["$schema"].endswith("2020-12/schema")
