"""`train-and-grade --resume`: what it refuses (fast), and a run killed with SIGKILL after epoch 1,
resumed, ending with the scores of an uninterrupted run (slow, real TRL in subprocesses)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.pipeline import _start
from harness.resume import ResumeError, keep_epochs_up_to, open_for_resume, resume_point, suite_difference
from harness.results import RunDir, write_json
from harness.suite import parse_suite

SUITE = """
name: tiny-resume
models: [{{name: tiny, path: {model}}}]
train:
  data: [{{synthetic: {{kind: translation, direction: en-fr, split: train, n: 24}}}}]
  epochs: {epochs}
  lr: 3.0e-3
  batch_size: 8
  max_seq_len: 96
  logging_steps: 1
tasks:
  - name: en-fr
    data: {{synthetic: {{kind: translation, direction: en-fr, split: val, n: 8}}}}
    generation: {{max_new_tokens: 16, batch_size: 8}}
bootstrap: {{samples: 20}}
"""


def _suite(tmp_path: Path, epochs: int = 3):
    return parse_suite(SUITE.format(model="Qwen/Qwen3-0.6B", epochs=epochs), base_dir=tmp_path)


def _interrupted_run(tmp_path: Path, state: dict | None = None, status: str = "running", **proc) -> Path:
    """A run directory as a killed run leaves it: epochs 0 and 1 graded, its process gone."""
    run, results, save = _start(_suite(tmp_path), str(tmp_path / "run"))
    results["status"] = status
    results["process"].update(proc or {"pid": 2 ** 22 + 7})   # above Linux's pid_max default: not alive
    results["models"].append({"name": "tiny", "epochs": [{"epoch": 0}, {"epoch": 1}, {"epoch": 2}],
                              "train": {"log": [{"step": s, "epoch": s / 3, "loss": 1.0} for s in range(1, 7)]},
                              "resume_state": state, "diagnostics": None})
    if state:
        (run.root / state["path"]).mkdir(parents=True)
        (run.root / state["path"] / "trainer_state.json").write_text("{}")
    save()
    return run.root


def test_an_interrupted_run_opens_and_keeps_epochs_up_to_its_saved_state(tmp_path):
    root = _interrupted_run(tmp_path, {"epoch": 1, "step": 3, "path": ".trainer/tiny/checkpoint-3"})
    run, results = open_for_resume(_suite(tmp_path), str(root))
    record = results["models"][0]
    point = resume_point(record, run)
    assert (point.epoch, point.step, point.path) == (1, 3, root / ".trainer/tiny/checkpoint-3")
    assert keep_epochs_up_to(record, point) == [2]      # graded after the save: graded again
    assert [e["epoch"] for e in record["epochs"]] == [0, 1]
    assert [r["step"] for r in record["train"]["log"]] == [1, 2, 3]


@pytest.mark.parametrize("case, expected", [
    ("missing", "not a directory"),
    ("no_results", "not a run directory"),
    ("other_suite", "different suite (train.epochs: 3 in the run, 4 in the given suite)"),
    ("complete", "already complete"),
    ("live", "still running"),
    ("other_host", "host elsewhere"),
    ("state_missing", "no resumable state"),
    ("old_harness", "no resumable state"),
])
def test_resume_refuses_with_one_line(tmp_path, case, expected):
    suite = _suite(tmp_path)
    state = {"epoch": 1, "step": 3, "path": ".trainer/tiny/checkpoint-3"}
    root = tmp_path / "run"
    if case == "no_results":
        root.mkdir()
    elif case == "other_suite":
        _interrupted_run(tmp_path, state)
        suite = _suite(tmp_path, epochs=4)
    elif case == "complete":
        _interrupted_run(tmp_path, state, status="complete")
    elif case == "live":
        _interrupted_run(tmp_path, state, pid=os.getpid())   # this process: alive on this host
    elif case == "other_host":
        _interrupted_run(tmp_path, state, host="elsewhere")
    elif case == "state_missing":
        _interrupted_run(tmp_path, state)
        (root / state["path"] / "trainer_state.json").unlink()
    elif case == "old_harness":
        _interrupted_run(tmp_path, state)
        results = json.loads((root / "results.json").read_text())
        del results["models"][0]["resume_state"]
        write_json(root / "results.json", results)
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} if root.exists() else {}
    with pytest.raises(ResumeError) as err:
        open_for_resume(suite, str(root))
    line = str(err.value)
    assert expected.replace("host elsewhere", "on host elsewhere") in line and "\n" not in line
    assert err.value.exit_code == 2
    after = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} if root.exists() else {}
    assert after == before                                # a refusal changes nothing


def test_another_host_can_be_forced(tmp_path):
    root = _interrupted_run(tmp_path, None, host="elsewhere")
    run, _ = open_for_resume(_suite(tmp_path), str(root), force=True)
    assert run.root == root


def test_suite_difference_names_the_first_field(tmp_path):
    from harness.suite import dump_suite

    a = _suite(tmp_path)
    assert suite_difference(dump_suite(a), a) is None
    b = parse_suite(SUITE.format(model="Qwen/Qwen3-0.6B", epochs=3).replace("n: 8}", "n: 9}"), base_dir=tmp_path)
    assert suite_difference(dump_suite(a), b) == "tasks[0].data.synthetic.n: 8 in the run, 9 in the given suite"


def test_a_run_from_before_a_new_unset_field_still_resumes(tmp_path):
    """A run whose suite.yaml predates generation.seed: the field, left unset, is no difference;
    set, it is."""
    import yaml

    from harness.suite import dump_suite

    a = _suite(tmp_path)
    old = yaml.safe_load(dump_suite(a))
    for task in old["tasks"]:
        del task["generation"]["seed"]
    stored = yaml.safe_dump(old, sort_keys=False)
    assert suite_difference(stored, a) is None
    a.tasks[0].generation.seed = 4
    assert suite_difference(stored, a) == "tasks[0].generation.seed: only in the given suite"


def _cli(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness.cli", "-q", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "HF_HUB_OFFLINE": "1"})


def _scores(run: Path) -> dict:
    results = json.loads((run / "results.json").read_text())
    return {e["epoch"]: {m: v["score"] for m, v in e["tasks"]["en-fr"]["metrics"].items()}
            for e in results["models"][0]["epochs"]}


@pytest.mark.slow
def test_a_run_killed_after_epoch_1_resumes_to_the_scores_of_an_uninterrupted_run(tiny_model_dir, tmp_path):
    suite = tmp_path / "suite.yaml"
    suite.write_text(SUITE.format(model=tiny_model_dir, epochs=3)
                     + "gates: [{task: en-fr, metric: chrf, min: 0}]\n")
    full, killed = tmp_path / "full", tmp_path / "killed"
    done = _cli("train-and-grade", str(suite), "--run-dir", str(full), "--no-report")
    assert done.returncode == 0, done.stderr[-2000:]

    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "-q", "train-and-grade", str(suite),
                             "--run-dir", str(killed), "--no-report"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline and proc.poll() is None:
        try:   # epoch 1 graded and the Trainer's state saved after it
            model = json.loads((killed / "results.json").read_text())["models"][0]
            if (model.get("resume_state") or {}).get("epoch") == 1:
                break
        except (FileNotFoundError, json.JSONDecodeError, IndexError, KeyError):
            pass
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    stored = json.loads((killed / "results.json").read_text())
    assert stored["status"] == "running" and [e["epoch"] for e in stored["models"][0]["epochs"]] == [0, 1]

    report = _cli("report", str(killed))
    assert report.returncode == 0 and "interrupted" in report.stdout
    html = (killed / "report.html").read_text()
    assert 'class="status s-interrupted"' in html and 'class="status s-running"' not in html
    gate = _cli("gate", str(killed))
    assert "run interrupted" in gate.stdout + gate.stderr and "run running" not in gate.stdout + gate.stderr

    resumed = _cli("train-and-grade", str(suite), "--resume", str(killed), "--no-report")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    results = json.loads((killed / "results.json").read_text())
    assert results["status"] == "complete" and results["resumed"][0]["status_before"] == "interrupted"
    assert results["resumed"][0]["epochs_before"] == {"tiny": [0, 1]}
    a, b = _scores(full), _scores(killed)
    assert list(a) == list(b) == [0, 1, 2, 3]
    for epoch in a:
        assert b[epoch]["bleu"] == pytest.approx(a[epoch]["bleu"], abs=0.5)
        assert b[epoch] == pytest.approx(a[epoch], rel=1e-4)   # greedy, same seed: the same scores
    assert not (killed / ".trainer").exists()                  # the Trainer state goes when the run completes
    again = _cli("train-and-grade", str(suite), "--resume", str(killed))
    assert again.returncode == 2 and again.stderr.strip().count("\n") == 0 and "already complete" in again.stderr
