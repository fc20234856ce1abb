"""train-and-grade and grade end to end on a tiny local model: real TRL, real sacrebleu."""
from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from rich.console import Console

from harness.progress import Progress
from harness.results import load_results, read_jsonl
from harness.suite import parse_suite

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "multi30k"


def _suite(model_dir: Path, tmp_path: Path, extra: str = "", tasks: str | None = None):
    tasks = tasks or """
tasks:
  - name: en-fr
    data: {synthetic: {kind: translation, direction: en-fr, split: val, n: 16}}
    generation: {max_new_tokens: 24, batch_size: 16}
  - name: fr-en
    data: {synthetic: {kind: translation, direction: fr-en, split: val, n: 16}}
    generation: {max_new_tokens: 24, batch_size: 16}
"""
    text = f"""
name: tiny
models: [{{name: tiny, path: {model_dir}}}]
train:
  data: [{{synthetic: {{kind: translation, direction: en-fr, split: train, n: 64}}}}]
  epochs: 2
  lr: 2.0e-3
  batch_size: 16
  max_seq_len: 96
  logging_steps: 1
{tasks}
bootstrap: {{samples: 50}}
{extra}
"""
    return parse_suite(text, base_dir=tmp_path)


@pytest.fixture(scope="module")
def trained_run(tiny_model_dir, tmp_path_factory):
    from harness.pipeline import train_and_grade

    tmp = tmp_path_factory.mktemp("run")
    log = io.StringIO()   # not a terminal: progress comes as plain lines, as in a CI log
    results, run = train_and_grade(_suite(tiny_model_dir, tmp), log=lambda m: None, run_dir=str(tmp / "run"),
                                   bars=Progress.for_console(Console(file=log, width=200), quiet=False),
                                   measure_memory=True)
    (tmp / "progress.log").write_text(log.getvalue(), encoding="utf-8")   # beside the run, for the test below
    return results, run


def test_progress_in_a_log_is_plain_lines_per_epoch_and_task(trained_run):
    text = (trained_run[1].root.parent / "progress.log").read_text(encoding="utf-8")
    lines = text.splitlines()
    assert "\x1b" not in text and "\r" not in text
    # 64 rows / batch 16 = 4 steps an epoch, one line per step (every ceil(4/10) = 1), loss from step 1
    for epoch in (1, 2):
        steps = [ln for ln in lines if ln.startswith(f"epoch {epoch}/2: ")]
        assert [ln.split(": ")[1].split(" ")[0] for ln in steps] == ["1/4", "2/4", "3/4", "4/4"]
        assert all(", loss " in ln and " steps/s, " in ln for ln in steps)
        assert "ETA " in steps[0] and ", in 0:" in steps[-1]
    for epoch in (0, 1, 2):   # 16 items a task in one batch of 16: one line each
        for task in ("en-fr", "fr-en"):
            done = [ln for ln in lines if ln.startswith(f"grading tiny epoch {epoch}: {task}: ")]
            assert len(done) == 1 and done[0].split(": ")[2].startswith("16/16 items, ")


def test_every_epoch_is_graded_and_saved(trained_run):
    results, run = trained_run
    assert results["status"] == "complete"
    model = results["models"][0]
    assert [e["epoch"] for e in model["epochs"]] == [0, 1, 2]
    assert model["epochs"][0]["checkpoint"] is None
    for e in model["epochs"][1:]:
        assert (run.root / e["checkpoint"] / "model.safetensors").exists()
        # the mean of the losses logged during that epoch (4 steps, logged every step)
        logged = [r["loss"] for r in model["train"]["log"] if e["epoch"] - 1 < r["epoch"] <= e["epoch"] + 1e-9]
        assert len(logged) == 4 and e["train_loss"] == pytest.approx(sum(logged) / 4)
    for e in model["epochs"]:
        for task in ("en-fr", "fr-en"):
            rec = e["tasks"][task]
            rows = read_jsonl(run.root / rec["samples"])
            assert rec["n"] == 16 and rec["loss"] == pytest.approx(
                sum(r["nll_sum"] for r in rows) / sum(r["n_tokens"] for r in rows))
            bleu = rec["metrics"]["bleu"]
            assert bleu["signature"].startswith("nrefs:1|") and bleu["ci"][0] <= bleu["score"] <= bleu["ci"][1]
            assert len(read_jsonl(run.root / rec["samples"])) == 16
    assert len(model["train"]["log"]) == 2 * 4  # 64 rows / batch 16, logged every step
    assert (run.root / "train_log.jsonl").exists() and (run.root / "suite.yaml").exists()
    on_disk, _ = load_results(run.root)
    assert on_disk["models"][0]["epochs"][-1]["tasks"]["en-fr"]["metrics"]["bleu"]["score"] == \
        pytest.approx(model["epochs"][-1]["tasks"]["en-fr"]["metrics"]["bleu"]["score"])


def test_training_changes_en_fr_loss(trained_run):
    model = trained_run[0]["models"][0]
    assert model["epochs"][-1]["tasks"]["en-fr"]["loss"] < model["epochs"][0]["tasks"]["en-fr"]["loss"]


def test_perplexity_is_exp_of_token_weighted_loss(trained_run):
    import math

    results, run = trained_run
    rec = results["models"][0]["epochs"][1]["tasks"]["fr-en"]
    rows = read_jsonl(run.root / rec["samples"])
    nll, n = sum(r["nll_sum"] for r in rows), sum(r["n_tokens"] for r in rows)
    assert rec["metrics"]["perplexity"]["score"] == pytest.approx(math.exp(nll / n))
    assert rec["loss"] == pytest.approx(nll / n)


def test_stored_bleu_and_chrf_equal_sacrebleu_cli(trained_run, tmp_path):
    results, run = trained_run
    rec = results["models"][0]["epochs"][-1]["tasks"]["en-fr"]
    rows = read_jsonl(run.root / rec["samples"])
    (tmp_path / "hyp").write_text("".join(r["output"].replace("\n", " ") + "\n" for r in rows))
    (tmp_path / "ref").write_text("".join(r["reference"] + "\n" for r in rows))
    sacrebleu = Path(sys.executable).parent / "sacrebleu"
    out = subprocess.run([str(sacrebleu), str(tmp_path / "ref"), "-i", str(tmp_path / "hyp"),
                          "-m", "bleu", "chrf", "-b", "-w", "6"], capture_output=True, text=True, check=True)
    cli_bleu, cli_chrf = (float(x) for x in json.loads(out.stdout))
    assert rec["metrics"]["bleu"]["score"] == pytest.approx(cli_bleu, abs=1e-5)
    assert rec["metrics"]["chrf"]["score"] == pytest.approx(cli_chrf, abs=1e-5)


def test_interrupted_run_keeps_graded_epochs(tiny_model_dir, tmp_path, monkeypatch):
    from harness import epoch_loop, pipeline

    real = epoch_loop.grade_epoch

    def grade_then_interrupt(*args, **kw):
        if args[5] == 1:  # epoch
            raise KeyboardInterrupt
        return real(*args, **kw)

    monkeypatch.setattr(epoch_loop, "grade_epoch", grade_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        pipeline.train_and_grade(_suite(tiny_model_dir, tmp_path), log=lambda m: None, run_dir=str(tmp_path / "r"))
    results, _ = load_results(tmp_path / "r")
    assert results["status"] == "interrupted"
    assert [e["epoch"] for e in results["models"][0]["epochs"]] == [0]


def test_one_memory_plan_per_model_and_the_measured_memory_stored(tiny_model_dir, tmp_path, monkeypatch):
    """The fit check, the grading batch and the memory record estimate one plan, built from the
    rows already loaded: the plan reading the data itself would be the same."""
    from harness.memory import plan as plan_module
    from harness.pipeline import train_and_grade
    from runners.trl_sft import load_tokenizer

    builds = []
    real = plan_module.plan_from_suite
    monkeypatch.setattr(plan_module, "plan_from_suite", lambda *a, **k: builds.append(a[1].name) or real(*a, **k))
    suite = _suite(tiny_model_dir, tmp_path, extra="memory: {gpu_memory: 12GiB}")
    results, _ = train_and_grade(suite, log=lambda m: None, run_dir=str(tmp_path / "r"))
    assert builds == ["tiny"]
    rec = load_results(tmp_path / "r")[0]["models"][0]
    reading = real(suite, suite.models[0], sample_tokenizer=load_tokenizer(str(tiny_model_dir)), device="cpu")
    assert rec["memory"]["plan"] == json.loads(json.dumps(reading.describe()))
    assert "tokenized" in rec["memory"]["plan"]["length_source"]
    # what the trainer measured, returned by the job and stored: the exact bytes of the trained state
    assert set(rec["memory"]["measured"]) == {"weights", "gradients", "optimizer", "activations", "logits"}
    assert rec["memory"]["comparison"]["weights+gradients+optimizer"]["ratio"] == pytest.approx(1.0, abs=0.01)
    assert not [k for k in rec if k.startswith("_")]


def test_lora_trains_only_the_adapter(tiny_model_dir, tmp_path):
    from harness.pipeline import train_and_grade

    suite = _suite(tiny_model_dir, tmp_path, tasks="""
tasks:
  - name: en-fr
    data: {synthetic: {kind: translation, direction: en-fr, split: val, n: 8}}
    metrics: [bleu, perplexity]
    generation: {max_new_tokens: 16}
""")
    suite.train.method = "lora"
    suite.train.epochs = 1
    suite.train.lora.r = 4
    results, run = train_and_grade(suite, log=lambda m: None, run_dir=str(tmp_path / "lora"))
    params = results["models"][0]["parameters"]
    assert 0 < params["trainable"] < params["total"] and params["trainable_share"] < 0.2
    ckpt = run.root / results["models"][0]["epochs"][1]["checkpoint"]
    assert (ckpt / "adapter_config.json").exists() and not (ckpt / "model.safetensors").exists()


@pytest.mark.skipif(not SHARED.exists(), reason="shared Multi30k data not present")
def test_real_multi30k_slice_trains_and_grades_both_directions(tiny_model_dir, tmp_path):
    """Real en-fr data through the same pipeline: a few steps, both directions graded."""
    from harness.pipeline import train_and_grade

    text = f"""
name: multi30k
models: [{{name: tiny, path: {tiny_model_dir}}}]
train:
  data:
    - {{parallel: {{source: train.en.gz, target: train.fr.gz}}, direction: en-fr, limit: 48}}
  epochs: 1
  batch_size: 16
  max_seq_len: 128
tasks:
  - name: en-fr
    data: {{parallel: {{source: val.en.gz, target: val.fr.gz}}, direction: en-fr, limit: 12}}
    generation: {{max_new_tokens: 32}}
  - name: fr-en
    data: {{parallel: {{source: val.fr.gz, target: val.en.gz}}, direction: fr-en, limit: 12}}
    generation: {{max_new_tokens: 32}}
bootstrap: {{samples: 20}}
diagnostics: {{audit: {{fail_on_error: false}}}}
"""
    results, run = train_and_grade(parse_suite(text, base_dir=SHARED), log=lambda m: None,
                                   run_dir=str(tmp_path / "m30k"))
    model = results["models"][0]
    assert [e["epoch"] for e in model["epochs"]] == [0, 1]
    rows = read_jsonl(run.root / model["epochs"][1]["tasks"]["fr-en"]["samples"])
    assert rows[0]["reference"] == "A group of men are loading cotton onto a truck"
    from sacrebleu.metrics import BLEU

    for e in model["epochs"]:
        for t in ("en-fr", "fr-en"):
            rows = read_jsonl(run.root / e["tasks"][t]["samples"])
            expected = BLEU().corpus_score([r["output"] for r in rows], [[r["reference"] for r in rows]]).score
            assert e["tasks"][t]["metrics"]["bleu"]["score"] == pytest.approx(expected)


def test_grading_batch_and_grading_memory_are_recorded(trained_run):
    """Every graded epoch keeps the batch it used per task and the grading phase's own peak per term,
    measured (CPU: bytes of live tensors) next to the estimate; the model's memory record sums them up."""
    results, _ = trained_run
    model = results["models"][0]
    for e in model["epochs"]:
        assert {t: r["batch_size"] for t, r in e["tasks"].items()} == {"en-fr": 16, "fr-en": 16}
        g = e["grading_memory"]
        assert g["device"] == "cpu" and g["batch_size"] == 16 and g["batch_size_auto"] is False
        assert g["estimate"]["generation"] > 0 and g["estimate"]["scoring"] > 0
    first, later = model["epochs"][0]["grading_memory"], model["epochs"][1]["grading_memory"]
    assert first["measured"]["generation"] > 0 and first["measured"]["scoring"] > 0      # CPU: the first epoch
    assert first["ratio"]["scoring"] == round(first["measured"]["scoring"] / first["estimate"]["scoring"], 4)
    assert later["measured"] == {"generation": None, "scoring": None} and later["how"].startswith("not measured")
    summary = model["memory"]["grading"]
    assert summary["batch_size"] == 16 and summary["measured"] == first["measured"]


def test_auto_grading_batch_when_grading_a_checkpoint(tiny_model_dir, tmp_path):
    from harness.pipeline import grade_models

    suite = _suite(tiny_model_dir, tmp_path, tasks="""
tasks:
  - name: en-fr
    data: {synthetic: {kind: translation, direction: en-fr, split: val, n: 12}}
    generation: {max_new_tokens: 8}
""")
    assert suite.tasks[0].generation.batch_size == "auto"
    results, _ = grade_models(suite, suite.models, log=lambda m: None, run_dir=str(tmp_path / "g"), measure_memory=True)
    epoch = results["models"][0]["epochs"][0]
    assert epoch["tasks"]["en-fr"]["batch_size"] == 12            # CPU: the bound 32, capped by the 12 rows
    assert epoch["grading_memory"]["batch_size_auto"] is True and epoch["grading_memory"]["measured"]["generation"] > 0
    # without --measure-memory a CPU grading counts nothing (the estimate is kept), and says how to ask
    results, _ = grade_models(suite, suite.models, log=lambda m: None, run_dir=str(tmp_path / "g2"))
    plain = results["models"][0]["epochs"][0]
    assert plain["grading_memory"]["measured"] == {"generation": None, "scoring": None}
    assert plain["grading_memory"]["estimate"]["generation"] > 0 and "--measure-memory" in plain["grading_memory"]["how"]
    assert plain["tasks"]["en-fr"]["metrics"] == epoch["tasks"]["en-fr"]["metrics"]
