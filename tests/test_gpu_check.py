"""benchmarks/gpu_check.py --dry-run: the GPU check's whole code path on CPU with tiny configs, so it
cannot rot while no GPU is lent (docs/gpu_check.md). Every section must succeed and report what
the GPU run reports."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow   # four Python processes (torch, transformers, TRL): ~80 s of CPU on 2 cores
def test_dry_run_passes_every_section_and_prints_the_docs_rows(tmp_path):
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--dry-run",
                           "--out", str(tmp_path / "out"), "--work", str(tmp_path / "work")],
                          capture_output=True, text=True, timeout=600, cwd=REPO)
    result = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    failed = {k: v["error"][-1500:] for k, v in result["sections"].items() if "error" in v}
    assert proc.returncode == 0 and not failed, (failed, proc.stderr[-3000:])
    s = {k: v["result"] for k, v in result["sections"].items()}
    assert result["dry_run"] and s["setup"]["device"] == "cpu" and not s["setup"]["missing"]

    # the shipped configs, shrunk, with a vocabulary larger than the built-in tokenizer's
    assert {m["vocab_size"] for m in s["models"].values()} == {2048}

    for case, method in (("google/gemma-3-270m", "full"), ("Qwen/Qwen3-0.6B", "lora")):
        r = s[f"train_and_grade:{case} {method}"]
        assert r["exit_code"] == 0 and r["status"] == "complete" and r["epochs"] == [0, 1, 2]
        assert r["graded_items"] == {"en-fr": result["plan"]["graded_items"]}
        assert r["grading_batch_auto"] is True and r["grading_batch"] >= 1
        for phase in ("training: weights+gradients+optimizer", "grading: generation", "grading: scoring"):
            row = r["phases"][phase]
            assert row["estimate"] > 0 and row["measured"] > 0 and row["ratio"] > 0, (case, phase, row)
        assert r["phases"]["training: weights+gradients+optimizer"]["ratio"] == 1.0   # exact bytes
        assert r["grading_le_training"] is True
        assert Path(r["last_checkpoint"]).is_dir()

    eng = s["engines"]
    assert eng["trained"] and [row["engine"] for row in eng["rows"]] == ["padded", "static", "continuous"]
    for row in eng["rows"]:
        assert "error" not in row and row["items_per_s"] > 0
        assert row["identical"] == row["items"], row          # greedy: the engines agree item by item

    oom = s["out_of_memory"]                                  # CPU: the stand-in raises above batch 3
    assert oom["simulated"] and oom["batch"] == {"requested": 16, "used": 2, "halvings": 3}

    launch = s["accelerate_launch"]
    assert launch["exit_code"] == 0 and launch["status"] == "complete" and launch["epochs"] == [0, 1]

    md = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--markdown",
                         str(tmp_path / "out" / "gpu_check.json")], capture_output=True, text=True, check=True).stdout
    assert "DRY RUN on CPU" in md and "| google/gemma-3-270m full | grading: generation |" in md
    assert "| continuous |" in md and "worked at 2 after 3 halvings" in md


def test_a_missing_wheel_folder_or_result_is_one_line_and_exit_2(tmp_path):
    script = str(REPO / "benchmarks" / "gpu_check.py")
    (tmp_path / "empty").mkdir()
    (tmp_path / "bad.json").write_text("{not json")
    for args, what in ((["--dry-run", "--wheels", str(tmp_path / "empty")], "no .whl files there"),
                       (["--markdown", str(tmp_path / "bad.json")], "not a readable gpu_check JSON")):
        proc = subprocess.run([sys.executable, script, *args], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and what in proc.stderr, proc.stderr
