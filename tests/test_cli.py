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


@pytest.mark.parametrize("how", [["--backend", "vllm"], []])
def test_vllm_missing_is_one_line_exit_2(tmp_path, tiny_model_dir, how):
    try:
        import vllm  # noqa: F401
        pytest.skip("vllm is installed here")
    except ImportError:
        pass
    # without --backend the suite's grading.backend decides
    suite = _write_suite(tmp_path, ROWS, extra="grading: {backend: vllm}\n" if not how else "")
    p = _run_cli(["grade", str(suite), "--model", str(tiny_model_dir), *how, "--no-report"])
    assert p.returncode == 2, p.stderr
    out = p.stderr.strip().splitlines()
    assert "Traceback" not in p.stderr and out[-1].endswith("pip install 'harness[vllm]' (needs CUDA)")


def _preds_for(tmp_path: Path) -> Path:
    preds = tmp_path / "preds.jsonl"
    preds.write_text("".join(json.dumps({"task": "en-fr", "id": r["id"], "output": r["completion"]}) + "\n"
                             for r in ROWS))
    return preds


def _digest(root: Path) -> dict:
    import hashlib

    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_an_existing_run_is_refused_kept_byte_for_byte_and_replaced_only_with_overwrite(tmp_path, capsys):
    suite, preds, run = _write_suite(tmp_path, ROWS), _preds_for(tmp_path), tmp_path / "run"
    grade = ["-q", "grade", str(suite), "--predictions", str(preds), "--run-dir", str(run), "--no-report"]
    assert main(grade) == 0
    before = _digest(run)
    capsys.readouterr()
    assert main(grade) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"error: {run}: --run-dir is an existing run: pass --resume {run} to continue it or "
                   f"--overwrite to replace it, or choose another directory")
    preds.write_text('{"task": "en-fr", "id": "s0", "output": 1}\n')        # a failing --overwrite ...
    assert main(grade + ["--overwrite"]) == 2
    assert _digest(run) == before                                            # ... leaves the run as it was
    _preds_for(tmp_path)
    (run / "stale.txt").write_text("from the old run")
    assert main(grade + ["--overwrite"]) == 0
    assert not (run / "stale.txt").exists() and (run / "results.json").is_file()


def test_preflight_plans_gpu_only_settings_that_train_and_grade_refuses_on_this_cpu(tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("the refusal is for machines without CUDA")
    suite = _write_suite(tmp_path, ROWS, extra="train: {data: [{path: val.jsonl}], method: qlora, precision: fp16}\n")
    assert main(["preflight", str(suite), "--gpu-memory", "80GiB"]) == 0     # planned for a GPU: fine
    capsys.readouterr()
    assert main(["train-and-grade", str(suite), "--no-report"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {suite}:8: field 'train.precision': fp16 needs a CUDA GPU")
    assert not (tmp_path / "runs").exists()


def test_python_dash_m_harness_and_an_ascii_terminal(tmp_path):
    """`python -m harness` is the CLI; text an ASCII stdout cannot encode is escaped, not a crash."""
    import os

    bad = tmp_path / "café" / "results.json"
    env = {**os.environ, "PYTHONIOENCODING": "ascii"}
    p = subprocess.run([sys.executable, "-m", "harness", "gate", str(bad)], capture_output=True, text=True,
                       env=env, encoding="ascii", errors="replace")
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.strip().splitlines() == [f"error: {tmp_path}/caf\\xe9/results.json: results file not found"]
    assert "Traceback" not in p.stderr


def test_command_table_lists_every_subcommand():
    from harness.cli import COMMANDS, _parser

    sub = next(a for a in _parser()._actions if a.dest == "command")
    assert sorted(COMMANDS) == sorted(sub.choices)


def test_a_suite_name_never_escapes_output_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    suite = _write_suite(tmp_path, ROWS)
    suite.write_text(suite.read_text().replace("name: p\n", "name: ../../escaped/p\n"))
    assert main(["-q", "grade", str(suite), "--predictions", str(_preds_for(tmp_path)), "--no-report"]) == 0
    (run,) = (tmp_path / "runs").iterdir()
    assert run.name.startswith("escaped_p-") and (run / "results.json").is_file()
    assert not (tmp_path.parent / "escaped").exists()
