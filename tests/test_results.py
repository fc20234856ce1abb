"""results.run_state: how report and gate read a run's status (a killed run is not 'running')."""
from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from harness.results import process_record, run_state


def test_a_live_process_on_this_host_is_running():
    state = run_state({"status": "running", "process": process_record()})
    assert state.status == "running" and "still running" in state.detail


def test_a_dead_process_on_this_host_is_interrupted():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    import psutil

    proc = {"pid": child.pid, "host": socket.gethostname(), "started": psutil.Process(child.pid).create_time()}
    assert run_state({"status": "running", "process": proc}).status == "running"
    child.kill()
    child.wait()
    state = run_state({"status": "running", "process": proc})
    assert state.status == "interrupted"
    assert f"pid {child.pid}" in state.detail and "--resume" in state.detail


def test_a_reused_pid_is_not_the_run():
    proc = process_record()
    proc["started"] -= 3600   # the run started an hour before this process did: its pid was reused
    assert run_state({"status": "running", "process": proc}).status == "interrupted"


def test_another_host_or_no_process_is_unknown_not_running():
    proc = dict(process_record(), host="some-other-host")
    state = run_state({"status": "running", "process": proc})
    assert state.status == "unknown" and "some-other-host" in state.detail and "stale" in state.detail
    assert run_state({"status": "running"}).status == "unknown"


def test_finished_statuses_are_kept_and_a_failure_says_why():
    assert run_state({"status": "complete", "process": {"pid": 1, "host": "x"}}).status == "complete"
    state = run_state({"status": "failed", "failure": {"reason": "out of memory", "message": "training ran out"}})
    assert (state.status, state.detail) == ("failed", "training ran out")


# ------------------------------------------------------------------ typed records
# A task record's keys and the values a file without them reads as (no timing is asserted).
TASK_DEFAULTS = {"n": 0, "loss": None, "seconds": None, "samples": None}
def _write(tmp_path: Path, models: list) -> Path:
    import json

    (tmp_path / "results.json").write_text(json.dumps({"schema_version": 1, "models": models}))
    return tmp_path


def test_a_sparse_file_reads_with_every_key_of_each_record(tmp_path):
    """A hand-written or older file: the constructors fill the keys readers index directly."""
    from harness.results import load_results

    root = _write(tmp_path, [{"name": "m", "epochs": [
        {"epoch": 0, "tasks": {"t": {"metrics": {"bleu": {"score": 12.5}, "chrf": {"skipped": "no outputs"}}}}}]}])
    results, _ = load_results(root)
    model = results["models"][0]
    assert (model["path"], model["adapter"], model["method"], model["best"], model["early_stopped"]) == \
        ("", None, "none", None, False)
    assert model["train"] is None and model["audit"] is None and model["diagnostics"] is None
    assert "resume_state" not in model        # absent stays absent: such a run cannot be resumed
    epoch = model["epochs"][0]
    assert (epoch["step"], epoch["checkpoint"], epoch["train_loss"]) == (0, None, None)
    task = epoch["tasks"]["t"]
    assert {k: task[k] for k in TASK_DEFAULTS} == TASK_DEFAULTS
    assert task["metrics"]["bleu"] == {"score": 12.5, "ci": None, "signature": None, "higher_is_better": None}
    assert task["metrics"]["chrf"] == {"score": None, "skipped": "no outputs"}


def test_keys_the_constructors_do_not_know_are_kept(tmp_path):
    from harness.results import load_results

    root = _write(tmp_path, [{"name": "m", "future": {"x": 1}, "resume_state": None, "epochs": [
        {"epoch": 1, "grading_memory": {"device": "cpu"}, "tasks": {"t": {
            "n": 3, "coverage": {"graded": 3, "total": 3}, "metrics": {"em": {"score": 1.0, "extra": 7}}}}}]}])
    model = load_results(root)[0]["models"][0]
    assert model["future"] == {"x": 1} and model["resume_state"] is None
    epoch = model["epochs"][0]
    assert epoch["grading_memory"] == {"device": "cpu"} and epoch["tasks"]["t"]["coverage"]["graded"] == 3
    assert epoch["tasks"]["t"]["metrics"]["em"]["extra"] == 7


def test_one_constructor_per_record_sets_every_key():
    from harness.results import epoch_record, gate_record, metric_record, model_record, task_record

    assert set(model_record("m", "p")) == {"name", "path", "adapter", "method", "parameters", "train", "epochs",
                                          "best", "early_stopped", "audit", "memory", "diagnostics"}
    assert set(epoch_record(2)) == {"epoch", "step", "checkpoint", "train_loss", "tasks"}
    assert set(task_record(5, {})) == {*TASK_DEFAULTS, "metrics"}
    assert metric_record(1.0, (0.5, 1.5), "sig", False) == {"score": 1.0, "ci": [0.5, 1.5], "signature": "sig",
                                                             "higher_is_better": False}
    g = gate_record("t/m min 1", "t", "m", "model", "best", 3, True, 0.95, "min", 2.0, 1.0)
    assert g["p_value"] is None and g["reference"] is None and g["epoch"] == 3
