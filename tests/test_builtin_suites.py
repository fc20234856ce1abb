"""The other built-in suites end to end, exactly as a user runs them (slow: 15-25 s each on 2 cores,
once the built-in model is cached; building it takes about 2 minutes more on first use).

`harness train-and-grade suites/X.yaml` on the built-in model, offline: every epoch graded
with scores, confidence intervals and per-sample files, the report written, and training
visibly teaching the task. (translation.yaml is covered by test_default_suite.py.)
"""
from __future__ import annotations

import math
from pathlib import Path

import pytest

from harness.cli import main
from harness.results import load_results, read_jsonl
from harness.suite import load_suite

REPO = Path(__file__).resolve().parents[1]

# suite -> (task, the metric names its results must hold)
EXPECTED = {
    "json_extraction": ("person", ["json_valid", "json_schema_valid", "exact_match", "perplexity", "usability"]),
    "summarisation": ("reports", ["rouge1", "rouge2", "rougeL", "perplexity", "usability"]),
    "math": ("word-problems", ["exact_match", "perplexity", "usability"]),
    "chinese": ("en-zh", ["bleu", "chrf", "rouge1", "rouge2", "rougeL", "perplexity", "usability"]),
}


def _run(name: str, tmp_path: Path, monkeypatch) -> tuple[dict, object, dict, list[dict]]:
    monkeypatch.chdir(REPO)
    code = main(["-q", "train-and-grade", f"suites/{name}.yaml", "--run-dir", str(tmp_path / "run")])
    assert code == 0
    results, run = load_results(tmp_path / "run")
    assert results["status"] == "complete"
    suite = load_suite(REPO / "suites" / f"{name}.yaml")
    model = results["models"][0]
    epochs = model["epochs"]
    assert [e["epoch"] for e in epochs] == list(range(suite.train.epochs + 1))

    task, metrics = EXPECTED[name]
    n = suite.task(task).data.synthetic.n
    for e in epochs:
        rec = e["tasks"][task]
        rows = read_jsonl(run.root / rec["samples"])
        assert rec["n"] == n and rec["loss"] == pytest.approx(
            sum(r["nll_sum"] for r in rows) / sum(r["n_tokens"] for r in rows))
        assert list(rec["metrics"]) == metrics
        for metric, v in rec["metrics"].items():
            assert v["score"] is not None and math.isfinite(v["score"]), (e["epoch"], metric)
            lo, hi = v["ci"]
            assert lo - 1e-9 <= v["score"] <= hi + 1e-9, (e["epoch"], metric, v)
            assert v["signature"]
        rows = read_jsonl(run.root / rec["samples"])
        assert len(rows) == n and len({r["id"] for r in rows}) == n
        assert all(set(r["scores"]) == set(metrics) for r in rows)
        assert all(isinstance(r["output"], str) for r in rows)
        if e["epoch"] > 0:   # the mean of the losses logged during that epoch
            logged = [r["loss"] for r in model["train"]["log"] if e["epoch"] - 1 < r["epoch"] <= e["epoch"] + 1e-9]
            assert logged and e["train_loss"] == pytest.approx(sum(logged) / len(logged))
            assert (run.root / e["checkpoint"] / "model.safetensors").exists()
    # the training loss fell, and the graded (validation) loss with it
    log = model["train"]["log"]
    assert log[-1]["loss"] < log[0]["loss"]
    assert epochs[-1]["tasks"][task]["loss"] < epochs[0]["tasks"][task]["loss"]
    best_metric = model["best"]["metric"]
    assert best_metric == f"{task}/{metrics[0]}"    # the first generated metric of the first task
    scored = [(e["tasks"][task]["metrics"][metrics[0]]["score"], e["epoch"]) for e in epochs]
    higher = epochs[0]["tasks"][task]["metrics"][metrics[0]]["higher_is_better"]
    top = (max if higher else min)(s for s, _ in scored)
    assert model["best"]["epoch"] == next(ep for s, ep in scored if s == top)
    report = (run.root / "report.html").read_text()
    assert task in report and "<script src=" not in report
    return results, run, model, epochs


def _score(epoch: dict, task: str, metric: str) -> float:
    return epoch["tasks"][task]["metrics"][metric]["score"]


@pytest.mark.slow
def test_json_extraction_suite_end_to_end(tmp_path, monkeypatch):
    results, run, model, epochs = _run("json_extraction", tmp_path, monkeypatch)
    first, last = epochs[0], epochs[-1]
    # the base model (pre-trained on translation) writes no JSON; after training nearly all is
    assert _score(first, "person", "json_valid") < 10
    assert _score(last, "person", "json_valid") > 80
    assert _score(last, "person", "json_schema_valid") > _score(first, "person", "json_schema_valid") + 50
    assert model["best"]["metric"] == "person/json_valid" and model["best"]["epoch"] >= 1


@pytest.mark.slow
def test_summarisation_suite_end_to_end(tmp_path, monkeypatch):
    results, run, model, epochs = _run("summarisation", tmp_path, monkeypatch)
    first, last = epochs[0], epochs[-1]
    for metric in ("rouge1", "rougeL"):
        assert _score(last, "reports", metric) > _score(first, "reports", metric) + 10
    assert model["best"]["metric"] == "reports/rouge1" and model["best"]["epoch"] >= 1


@pytest.mark.slow
def test_math_suite_end_to_end(tmp_path, monkeypatch):
    results, run, model, epochs = _run("math", tmp_path, monkeypatch)
    first, last = epochs[0], epochs[-1]
    # the format is learned: a short answer that ends (the base model rambles in French) ...
    assert _score(first, "word-problems", "usability") < 50
    assert _score(last, "word-problems", "usability") > 95
    # ... and the reference answers become far more likely
    assert _score(last, "word-problems", "perplexity") < _score(first, "word-problems", "perplexity") / 10
    rows = read_jsonl(run.root / last["tasks"]["word-problems"]["samples"])
    assert sum(any(ch.isdigit() for ch in r["output"]) for r in rows) > 0.9 * len(rows)


@pytest.mark.slow
def test_chinese_suite_end_to_end(tmp_path, monkeypatch):
    """The language-aware path with a model that really generates Chinese: the byte-level
    tokenizer of the built-in model (trained on English/French) learns to emit Chinese
    characters as 3 byte tokens each, and BLEU/ROUGE are tokenized for Chinese."""
    from sacrebleu.metrics import BLEU

    results, run, model, epochs = _run("chinese", tmp_path, monkeypatch)
    first, last = epochs[0], epochs[-1]
    rec = last["tasks"]["en-zh"]
    assert rec["language"]["language"] == "zh" and rec["language"]["source"] == "direction"
    assert "|tok:zh|" in rec["metrics"]["bleu"]["signature"]
    assert rec["metrics"]["rouge1"]["signature"].startswith("rouge1|tokenizer:char|")
    # the base model writes no Chinese; after training most output characters are Chinese ...
    rows = read_jsonl(run.root / rec["samples"])
    han = sum(sum("\u4e00" <= ch <= "\u9fff" for ch in r["output"]) for r in rows)
    assert han > 0.8 * sum(len(r["output"].strip()) for r in rows)
    assert _score(first, "en-zh", "bleu") < 5
    # ... and the scores are real: equal to sacrebleu's zh tokenizer on the stored outputs, and
    # far above what the English default (13a: a sentence is one token) would give
    hyps, refs = [r["output"] for r in rows], [[r["reference"] for r in rows]]
    assert _score(last, "en-zh", "bleu") == pytest.approx(BLEU(tokenize="zh").corpus_score(hyps, refs).score)
    assert _score(last, "en-zh", "bleu") > 30
    assert BLEU().corpus_score(hyps, refs).score < _score(last, "en-zh", "bleu") / 2
    assert _score(last, "en-zh", "rouge1") > _score(first, "en-zh", "rouge1") + 40
    report = (run.root / "report.html").read_text(encoding="utf-8")
    assert 'bleu <span class="muted">↑ tok:zh</span>' in report
