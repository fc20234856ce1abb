"""Several processes (accelerate launch, gloo on CPU): rank 0 alone writes the run directory and
grades every epoch once (alone, or with the items sharded across the ranks); the scores equal
`harness grade` of the saved checkpoints."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

from harness.distributed import Processes, launched_world_size, processes
from tests.serve_fixtures import free_port


def test_single_process_is_free(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    p = processes()
    assert (p.rank, p.world, p.is_main, p.distributed) == (0, 1, True, False)
    assert p.broadcast({"stop": True}) == {"stop": True}
    p.barrier()


def test_world_size_comes_from_the_launcher(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert launched_world_size() == 4
    assert not Processes(3, 4).is_main and Processes(0, 4).is_main


SUITE = """
name: twoproc
output_dir: {out}
models: [{{name: tiny, path: {model}}}]
train:
  data: [{{synthetic: {{kind: translation, direction: en-fr, split: train, n: 64}}}}]
  epochs: 2
  lr: 2.0e-3
  batch_size: 8
  max_seq_len: 96
  logging_steps: 1
  distributed: {{grading: {grading}}}
tasks:
  - name: en-fr
    data: {{synthetic: {{kind: translation, direction: en-fr, split: val, n: 12}}}}
    metrics: [bleu, chrf, perplexity]
    generation: {{max_new_tokens: 16, batch_size: 12}}
bootstrap: {{samples: 30}}
"""


@pytest.mark.slow
@pytest.mark.parametrize("grading", ["rank0", "sharded"])
def test_two_processes_write_once_and_grade_like_harness_grade(tiny_model_dir, tmp_path, grading):
    from harness.pipeline import grade_models
    from harness.suite import ModelSpec, load_suite

    out = tmp_path / "runs"
    suite_file = tmp_path / "s.yaml"
    suite_file.write_text(SUITE.format(out=out, model=tiny_model_dir, grading=grading))
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", str(free_port()),
           "-m", "harness", "train-and-grade", str(suite_file), "--no-report"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr[-4000:]
    runs = list(out.iterdir())
    assert len(runs) == 1                                # rank 1 made no run directory of its own
    run = runs[0]
    for k in range(3):                                   # each epoch graded once, by rank 0
        assert proc.stdout.count(f"epoch {k} graded in") == 1
    assert proc.stdout.count("run directory:") == 1
    results = json.loads((run / "results.json").read_text())
    assert results["status"] == "complete" and results["environment"]["processes"] == 2
    model = results["models"][0]
    assert [e["epoch"] for e in model["epochs"]] == [0, 1, 2]
    assert model["train"]["steps_per_epoch"] == math.ceil(64 / (8 * 2))
    steps = [r["step"] for r in map(json.loads, (run / "train_log.jsonl").read_text().splitlines())]
    assert steps == list(range(1, 2 * 4 + 1))             # one log row per step, written by one process

    suite = load_suite(suite_file)
    for e in model["epochs"][1:]:
        ckpt = run / e["checkpoint"]
        graded, _ = grade_models(suite, [ModelSpec(path=str(ckpt), name="ckpt")], log=lambda m: None,
                                 run_dir=str(tmp_path / f"grade-{e['epoch']}"))
        want = e["tasks"]["en-fr"]
        got = graded["models"][0]["epochs"][0]["tasks"]["en-fr"]
        for m in ("bleu", "chrf"):
            assert got["metrics"][m]["score"] == want["metrics"][m]["score"], (e["epoch"], m)
        assert math.isclose(got["loss"], want["loss"], rel_tol=1e-9)
