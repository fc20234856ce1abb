"""Start-up: the commands that read files (gate, report, schema, data check of a file) import no
torch, transformers or TRL; results' environment() reads versions from package metadata; the
synthetic generators' rows come back the same from their cache. How long start-up takes is
measured by benchmarks/grading_overhead.py, never asserted here."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from report_fixtures import make_report_run

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "transformers", "trl", "peft", "optuna", "mlflow")


def _imported_by(args: list[str], tmp_path: Path) -> tuple[int, list[str], str]:
    """(exit code, heavy modules imported, output) of `harness ARGS` run in a fresh interpreter."""
    script = ("import json, sys; from harness.cli import main\n"
              f"code = main({args!r})\n"
              f"print('RESULT', json.dumps([code, [m for m in {HEAVY!r} if m in sys.modules]]))")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HARNESS_CACHE": str(tmp_path / "cache"),
           "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=120)
    assert "RESULT" in proc.stdout, proc.stdout[-2000:] + proc.stderr[-2000:]
    code, heavy = json.loads(proc.stdout.split("RESULT", 1)[1])
    return code, heavy, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def report_run(tmp_path_factory) -> Path:
    return make_report_run(tmp_path_factory.mktemp("startup") / "run", epochs=1, n=12, bootstrap=20)


def test_gate_report_and_schema_import_no_torch(report_run, tmp_path):
    gates = tmp_path / "gates.yaml"
    gates.write_text("gates:\n  - {task: en-fr, metric: bleu, min: 0}\n")
    for args in (["-q", "gate", str(report_run), "--gates", str(gates)], ["-q", "report", str(report_run), "-o", str(tmp_path / "r.html")],
                 ["schema", "-o", str(tmp_path / "schema.json")]):
        code, heavy, out = _imported_by(args, tmp_path)
        assert code in (0, 1), out[-2000:]      # gate: 1 when a gate fails; what matters is what it imported
        assert heavy == [], f"harness {args[1] if args[0] == '-q' else args[0]} imported {heavy}"
    assert (tmp_path / "r.html").stat().st_size > 0 and json.loads((tmp_path / "schema.json").read_text())


def test_data_check_of_a_file_imports_no_torch(tmp_path):
    rows = [{"messages": [{"role": "user", "content": f"Translate: the cat {i}"},
                          {"role": "assistant", "content": f"le chat {i}"}]} for i in range(5)]
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    code, heavy, out = _imported_by(["data", "check", str(data)], tmp_path)
    assert code == 0 and heavy == [], out[-2000:]


def test_environment_versions_come_from_metadata_without_importing_torch(tmp_path):
    script = ("import json, sys; from harness.pipeline import environment; env = environment(); "
              "print('RESULT', json.dumps([env, 'torch' in sys.modules]))")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60).stdout
    record, imported = json.loads(out.split("RESULT", 1)[1])
    import importlib.metadata as md

    assert record["torch"] == md.version("torch") and record["transformers"] == md.version("transformers")
    assert imported is False
    assert record["device"] in ("cpu", "cuda") and (record["gpu"] is None) == (record["device"] == "cpu")


def test_synthetic_rows_are_the_same_from_the_cache_and_a_changed_spec_is_a_new_entry(tmp_path, monkeypatch):
    from harness import synthetic
    from harness.suite import SyntheticSource

    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path))
    spec = SyntheticSource(kind="translation", direction="en-fr", split="val", n=30, seed=4)
    made = synthetic.generate_rows(spec)
    entries = list((tmp_path / "synthetic").iterdir())
    assert len(entries) == 1
    assert synthetic.generate_rows(spec) == made == list(synthetic.GENERATORS["translation"](spec))
    other = synthetic.generate_rows(spec.model_copy(update={"seed": 5}))
    assert other != made and len(list((tmp_path / "synthetic").iterdir())) == 2
    entries[0].write_text("{not json")           # a damaged entry is made again, never an error
    assert synthetic.generate_rows(spec) == made


def _run_entry(tmp_path: Path, prelude: str, args: list[str]) -> subprocess.CompletedProcess:
    """`harness ARGS` through the command's entry point (harness.__main__.run), after `prelude`."""
    script = f"import sys\n{prelude}\nsys.argv = ['harness'] + {args!r}\nfrom harness.__main__ import run\nrun()\n"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HARNESS_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=120)


def test_the_command_leaves_without_torchs_teardown_but_as_python_would_up_to_it(tmp_path):
    """With torch loaded the entry point skips the interpreter's teardown: the exit code is main()'s,
    the exit handlers ran, everything printed (buffered, to a pipe) came out, the file was written."""
    prelude = ("import atexit, torch\n"
               f"atexit.register(lambda: open({str(tmp_path / 'handler-ran')!r}, 'w').write('yes'))\n"
               "print('printed before main', end='')")
    proc = _run_entry(tmp_path, prelude, ["schema", "-o", "schema.json"])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("printed before main") and (tmp_path / "handler-ran").read_text() == "yes"
    assert json.loads((tmp_path / "schema.json").read_text())["title"]
    bad = _run_entry(tmp_path, "import torch", ["gate", str(tmp_path / "missing")])
    assert bad.returncode == 2 and "error" in bad.stderr


def test_a_live_non_daemon_thread_gets_pythons_normal_exit(tmp_path):
    """Python waits for non-daemon threads at exit; so does the command: the thread's work is done."""
    prelude = ("import threading, time, torch\n"
               "def late():\n"
               "    time.sleep(0.5)\n"
               f"    open({str(tmp_path / 'thread-done')!r}, 'w').write('yes')\n"
               "threading.Thread(target=late).start()")
    proc = _run_entry(tmp_path, prelude, ["schema", "-o", "schema.json"])
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "thread-done").read_text() == "yes"
