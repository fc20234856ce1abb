"""Out of GPU memory, simulated by raising torch.OutOfMemoryError: grading halves its batch and
scores the same; training ends with exit 3, the preflight's remedy and every graded epoch kept."""
from __future__ import annotations

import json

import pytest
import torch

from harness.out_of_memory import GradingOutOfMemory, call_halving_batch


def test_the_batch_halves_until_a_call_fits():
    tried = []

    def call(batch):
        tried.append(batch)
        if batch > 3:
            raise torch.OutOfMemoryError("CUDA out of memory")
        return batch * 10

    assert call_halving_batch(call, 16, "task x") == (20, 2, 3)
    assert tried == [16, 8, 4, 2]


def test_at_batch_1_it_is_a_clear_error_and_other_errors_pass_through():
    def never(batch):
        raise torch.OutOfMemoryError("CUDA out of memory")

    with pytest.raises(GradingOutOfMemory) as err:
        call_halving_batch(never, 5, "grading task en-fr")
    assert "grading task en-fr: out of GPU memory even at batch 1 (from 5)" in str(err.value)
    assert err.value.exit_code == 3

    def broken(batch):
        raise ValueError("not memory")

    with pytest.raises(ValueError):
        call_halving_batch(broken, 8, "x")


@pytest.fixture(scope="module")
def graded_task(tiny_model_dir):
    """The tiny translator, one en-fr task of 12 items, graded at batch 12 with no memory trouble."""
    from harness.backends.transformers_backend import TransformersBackend
    from harness.grade import grade_task, load_tasks
    from harness.suite import parse_suite

    suite = parse_suite(f"""
name: oom
models: [{{path: {tiny_model_dir}}}]
tasks:
  - name: en-fr
    data: {{synthetic: {{kind: translation, direction: en-fr, split: val, n: 12}}}}
    generation: {{max_new_tokens: 16, batch_size: 12}}
bootstrap: {{samples: 20}}
""")
    task = load_tasks(suite)[0]
    backend = TransformersBackend.from_spec(suite.models[0], str(tiny_model_dir))
    return backend, task, suite, grade_task(backend, task, suite.bootstrap)


def test_grading_out_of_memory_halves_the_batch_and_scores_the_same(graded_task, monkeypatch):
    from harness.grade import grade_task

    backend, task, suite, (normal, normal_rows) = graded_task
    assert normal["batch"] == {"requested": 12, "used": 12, "halvings": 0}
    real_generate, real_nll = backend.model.generate, backend._reference_nll
    seen = []

    def generate(*, input_ids, **kw):   # the model runs out of memory on more than 3 prompts at once
        seen.append(len(input_ids))
        if len(input_ids) > 3:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_generate(input_ids=input_ids, **kw)

    def reference_nll(examples, batch_size, *rest):
        if batch_size > 2:
            raise torch.OutOfMemoryError("CUDA out of memory")
        return real_nll(examples, batch_size, *rest)

    monkeypatch.setattr(backend.model, "generate", generate)
    monkeypatch.setattr(backend, "_reference_nll", reference_nll)
    backend.model.train()   # as during training: grading must hand the model back in train mode
    record, rows = grade_task(backend, task, suite.bootstrap)
    assert backend.model.training
    backend.model.eval()
    assert seen[:2] == [12, 6] and set(seen[2:]) == {3}
    # generation fitted at 3 (two halvings), the likelihood then needed 1 more (3 → 1)
    assert record["batch"] == {"requested": 12, "used": 1, "halvings": 3}
    assert [r["output"] for r in rows] == [r["output"] for r in normal_rows]
    for name, m in normal["metrics"].items():
        assert record["metrics"][name]["score"] == pytest.approx(m["score"], rel=1e-5), name
    assert normal["metrics"]["chrf"]["score"] > 0


@pytest.mark.slow
def test_training_out_of_memory_exits_3_with_the_remedy_and_keeps_graded_epochs(tiny_model_dir, tmp_path,
                                                                             monkeypatch, capsys):
    from trl import SFTTrainer

    from harness import cli

    real_step = SFTTrainer.training_step

    def training_step(self, *args, **kw):   # epoch 2's first step (3 steps an epoch) runs out of memory
        if self.state.global_step >= 3:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.50 GiB")
        return real_step(self, *args, **kw)

    monkeypatch.setattr(SFTTrainer, "training_step", training_step)
    suite = tmp_path / "suite.yaml"
    suite.write_text(f"""
name: oom
models: [{{name: tiny, path: {tiny_model_dir}}}]
train:
  data: [{{synthetic: {{kind: translation, direction: en-fr, split: train, n: 24}}}}]
  epochs: 3
  batch_size: 8
  max_seq_len: 96
tasks:
  - name: en-fr
    data: {{synthetic: {{kind: translation, direction: en-fr, split: val, n: 8}}}}
    generation: {{max_new_tokens: 16, batch_size: 8}}
bootstrap: {{samples: 20}}
""")
    run = tmp_path / "run"
    code = cli.main(["-q", "train-and-grade", str(suite), "--run-dir", str(run), "--no-report"])
    err = capsys.readouterr().err   # also holds the libraries' progress bars
    assert code == 3 and "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith(("does not fit:", "error:"))]
    assert len(lines) == 1, err[-3000:]
    err = lines[0]
    assert "training tiny ran out of GPU memory after epoch 1 (graded epochs [0, 1] are kept" in err
    assert "the preflight's remedy: " in err
    results = json.loads((run / "results.json").read_text())
    assert results["status"] == "failed" and results["failure"]["reason"] == "out of memory"
    model = results["models"][0]
    assert [e["epoch"] for e in model["epochs"]] == [0, 1]
    assert all((run / t["samples"]).exists() for e in model["epochs"] for t in e["tasks"].values())
    assert model["resume_state"]["epoch"] == 1   # still resumable once memory is freed
