"""results.run_state: how report and gate read a run's status (a killed run is not 'running')."""
from __future__ import annotations

import socket
import subprocess
import sys

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
