"""Drift probes (harness/drift, harness/diagnose/drift.py): sources, base capture, truncated KL
against the exact KL on the built-in model, the verdict in a real train-and-grade run, gates."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.drift.probe import ProbeItem, builtin_items, load_probe, tokenize_probe
from harness.drift.scoring import BaseDistributions, exact_kl_per_item, score_probe
from harness.drift.spec import ProbeSpec
from harness.errors import DataError
from harness.suite import GateSpec, parse_suite

REPO = Path(__file__).resolve().parents[1]
SUITE = """
name: drift-test
models: [{name: tiny, path: builtin:tiny-translator}]
tasks:
  - name: en-fr
    data: {synthetic: {kind: translation, direction: en-fr, split: val, n: 8}}
    metrics: [bleu]
"""


def _suite(tmp_path: Path, extra: str = ""):
    return parse_suite(SUITE + extra, str(tmp_path / "suite.yaml"), tmp_path)


@pytest.fixture(scope="module")
def builtin_model():
    from harness.backends.transformers_backend import load_model_and_tokenizer
    from harness.builtin import resolve_model_path

    return load_model_and_tokenizer(resolve_model_path("builtin:tiny-translator", log=lambda m: None))


def _fine_tuned(model, tokenizer, steps: int = 3, lr: float = 1e-3):
    """A copy of `model` after a few real optimiser steps on en→fr (what a fine-tune does)."""
    import copy

    from harness.chat import tokenize_conversation
    from harness.suite import SyntheticSource
    from harness.synthetic import generate_rows

    tuned = copy.deepcopy(model)
    tuned.train()
    opt = torch.optim.AdamW(tuned.parameters(), lr=lr)
    rows = generate_rows(SyntheticSource(kind="translation", direction="en-fr", split="train", n=8 * steps))
    for s in range(steps):
        for row in rows[8 * s: 8 * s + 8]:
            ex = tokenize_conversation(tokenizer, [{"role": "user", "content": "Translate English to French:\n"
                                                    + row["messages"][0]["content"]}, row["messages"][1]], 128)
            ids = torch.tensor([ex.input_ids])
            loss = tuned(input_ids=ids, labels=torch.tensor([ex.labels])).loss / 8
            loss.backward()
        opt.step()
        opt.zero_grad()
    return tuned.eval()


# ----------------------------------------------------------------------------- sources
def test_builtin_probe_has_both_languages_and_no_translation_pairs():
    from harness.suite import SyntheticSource
    from harness.synthetic import generate_rows

    items = builtin_items("translation", 20)
    assert [i.group for i in items].count("en") == 10 and [i.group for i in items].count("fr") == 10
    assert all([m["role"] for m in i.content] == ["user", "assistant"] for i in items)
    pairs = {(r["messages"][0]["content"], r["messages"][1]["content"])
             for r in generate_rows(SyntheticSource(kind="translation", direction="en-fr", split="test", n=20))}
    english = {en for en, _ in pairs}
    for i in items:
        user, reply = i.content[0]["content"], i.content[1]["content"]
        assert (reply in english) == (i.group == "en") and (user in english) != (reply in english)
        assert (user, reply) not in pairs and (reply, user) not in pairs   # never the user turn's translation
    assert len({i.content[1]["content"] for i in items}) == 20


def test_text_and_messages_sources(tmp_path, builtin_model):
    _, tok = builtin_model
    (tmp_path / "probe.txt").write_text("The cat eats.\n\nLe chien dort.\nA third line.\n")
    (tmp_path / "probe.jsonl").write_text(json.dumps({"messages": [{"role": "user", "content": "Hello there"},
                                                                   {"role": "assistant", "content": "Bonjour"}]}) + "\n")
    text = load_probe(ProbeSpec(data={"text": "probe.txt"}, n=2), _suite(tmp_path))
    assert [i.content for i in text] == ["The cat eats.", "Le chien dort."]   # blank lines skipped, first n
    msgs = load_probe(ProbeSpec(data={"path": "probe.jsonl"}), _suite(tmp_path))
    tp = tokenize_probe(tok, msgs, 128)
    rendered = tok.decode(tp.input_ids[0])
    assert "Hello there" in rendered and "Bonjour" in rendered   # every turn is scored (KL), not only the answer
    # NLL: the reply's tokens only (the assistant turn given the user's); a text line: every token
    reply = [t for t, m in zip(tp.input_ids[0][1:], tp.replies[0]) if m]
    assert "Bonjour" in tok.decode(reply) and "Hello" not in tok.decode(reply)
    assert tokenize_probe(tok, text, 128).replies == [None, None]


def test_hub_dataset_source_reads_a_text_column(tmp_path):
    """The hub path (datasets.load_dataset), on a local dataset directory: no network in tests."""
    (tmp_path / "hub").mkdir()
    rows = [{"text": "First probe sentence."}, {"text": "  "}, {"text": "Deuxième phrase."}]
    (tmp_path / "hub" / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    items = load_probe(ProbeSpec(data={"hf": {"name": str(tmp_path / "hub"), "split": "train", "field": "text"}}),
                       _suite(tmp_path))
    assert [i.content for i in items] == ["First probe sentence.", "Deuxième phrase."]
    with pytest.raises(DataError, match="no field 'body'"):
        load_probe(ProbeSpec(data={"hf": {"name": str(tmp_path / "hub"), "split": "train", "field": "body"}}),
                   _suite(tmp_path))


@pytest.mark.parametrize("content, expected", [
    (None, "probe text file (diagnostics.probe.data.text) not found"),
    ("\n  \n", "has no items"),
])
def test_missing_or_empty_probe_is_one_clean_line(tmp_path, content, expected):
    if content is not None:
        (tmp_path / "probe.txt").write_text(content)
    with pytest.raises(DataError) as e:
        load_probe(ProbeSpec(data={"text": "probe.txt"}), _suite(tmp_path))
    assert expected in str(e.value) and "\n" not in str(e.value)
    assert "probe.txt" in str(e.value)


def test_bad_probe_on_the_command_line_exits_2(tmp_path):
    """Through `harness train-and-grade`: a missing probe file is refused before any model work."""
    suite = SUITE + """
train:
  data: [{synthetic: {kind: translation, direction: en-fr, split: train, n: 8}}]
  epochs: 1
diagnostics:
  probe: {data: {text: nowhere.txt}}
"""
    (tmp_path / "suite.yaml").write_text(suite)
    run = subprocess.run([sys.executable, "-m", "harness", "train-and-grade", str(tmp_path / "suite.yaml"),
                          "--run-dir", str(tmp_path / "run")], capture_output=True, text=True, cwd=REPO,
                         env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"})
    assert run.returncode == 2, run.stderr
    lines = [x for x in run.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and "nowhere.txt" in lines[0] and "Traceback" not in run.stderr


def test_probe_longer_than_max_seq_len_names_the_fix(builtin_model):
    from harness.drift.probe import check_truncation

    _, tok = builtin_model
    tp = tokenize_probe(tok, [ProbeItem("a", "word " * 200), ProbeItem("b", "short line")], 32)
    assert tp.truncated == 1 and len(tp.input_ids[0]) == 32
    with pytest.raises(DataError, match=r"probe.txt: 1 of 2 probe items are longer than max_seq_len \(32 tokens\)"):
        check_truncation(tp, "probe.txt", 32, 0.05)
    check_truncation(tp, "probe.txt", 32, 0.5)   # within the audit's share: counted, not refused


def test_suite_blocks_validate(tmp_path):
    s = _suite(tmp_path, "diagnostics:\n  probe: {data: {builtin: translation}, n: 64, top_k: 16}\n"
                         "  drift: {kl_warn: 0.01, kl_fail: 0.05}\n")
    assert s.diagnostics.probe.top_k == 16 and s.diagnostics.drift.kl_fail == 0.05
    with pytest.raises(Exception, match="exactly one of"):
        _suite(tmp_path, "diagnostics:\n  probe: {data: {text: a.txt, builtin: translation}}\n")
    with pytest.raises(Exception, match="kl_fail must be >= kl_warn"):
        _suite(tmp_path, "diagnostics:\n  drift: {kl_warn: 0.5, kl_fail: 0.1}\n")


def test_drift_gate_spec():
    g = GateSpec.model_validate({"drift": "nll", "max": 0.1})
    assert (g.task, g.metric) == ("drift", "nll")
    assert GateSpec.model_validate(g.model_dump()).drift == "nll"   # what results.json stores reads back
    with pytest.raises(Exception, match="min or max"):
        GateSpec.model_validate({"drift": "kl", "max_drop_from_base": 0.1})
    with pytest.raises(Exception, match="needs task and metric"):
        GateSpec.model_validate({"metric": "bleu", "min": 1})


# ----------------------------------------------------------------------------- scoring
def test_base_capture_round_trips_and_scores_itself_as_zero(tmp_path, builtin_model):
    model, tok = builtin_model
    tp = tokenize_probe(tok, builtin_items("translation", 12), 128)
    base = score_probe(model, tp, 5, top_k=8)
    assert base.base.top_ids.shape == (int(base.tokens.sum()), 8)
    base.base.save(tmp_path / "base.npz")
    back = BaseDistributions.load(tmp_path / "base.npz")
    again = score_probe(model, tp, 3, base=back)   # another batching: the same items
    assert np.allclose(again.kl, 0, atol=1e-5) and np.allclose(again.nll, base.nll, rtol=1e-5)
    # the NLL is the model's own loss on the reply (the assistant turn), as training counts it;
    # KL counts every position, both turns
    from harness.chat import tokenize_conversation

    ex = tokenize_conversation(tok, builtin_items("translation", 12)[0].content, 128, assistant_only=True)
    assert ex.input_ids == tp.input_ids[0]
    with torch.no_grad():
        loss = model(input_ids=torch.tensor([ex.input_ids]), labels=torch.tensor([ex.labels])).loss.item()
    assert again.nll_tokens[0] == sum(lab != -100 for lab in ex.labels[1:]) < again.tokens[0]
    assert again.nll[0] / again.nll_tokens[0] == pytest.approx(loss, rel=1e-4)


def test_truncated_kl_is_a_lower_bound_within_2_percent_of_exact(builtin_model):
    """On the built-in model after real fine-tuning steps, at the built-in suite's top_k."""
    from harness.suite import load_suite

    model, tok = builtin_model
    k = load_suite(REPO / "suites" / "translation-drift.yaml").diagnostics.probe.top_k
    tp = tokenize_probe(tok, builtin_items("translation", 32), 128)
    base_full, tuned_full = [], []
    base = score_probe(model, tp, 16, top_k=k, full_logprobs=base_full)
    tuned = _fine_tuned(model, tok)
    got = score_probe(tuned, tp, 16, base=base.base, full_logprobs=tuned_full)
    exact, positions = exact_kl_per_item(base_full, tuned_full, len(tp.ids))
    assert (positions == got.tokens).all()
    assert (got.kl <= exact + 1e-9).all()                # data-processing inequality, item by item
    assert exact.sum() / positions.sum() > 0.01          # the fine-tune moved the model
    assert got.kl.sum() / exact.sum() >= 0.98


# ----------------------------------------------------------------------------- end to end
E2E = """
name: drift-e2e
models: [{{name: tiny, path: {model}}}]
train:
  data: [{{synthetic: {{kind: translation, direction: en-fr, split: train, n: 48, seed: 1}}}}]
  epochs: 1
  lr: {lr}
  batch_size: 16
  max_seq_len: 96
  logging_steps: 1
tasks:
  - name: en-fr
    data: {{synthetic: {{kind: translation, direction: en-fr, split: val, n: 6}}}}
    metrics: [bleu]
    generation: {{max_new_tokens: 12, batch_size: 6}}
diagnostics:
  probe: {{data: {{builtin: translation}}, n: 24, top_k: 16}}
  drift: {{prompts: 6, kl_warn: 0.002, kl_fail: 0.005}}
bootstrap: {{samples: 200, seed: 0}}
"""


@pytest.fixture(scope="module")
def drift_run(tiny_model_dir, tmp_path_factory):
    from harness.pipeline import train_and_grade

    root = tmp_path_factory.mktemp("drift-run")
    suite = parse_suite(E2E.format(model=tiny_model_dir, lr=3e-3), str(root / "suite.yaml"), root)
    results, run = train_and_grade(suite, log=lambda m: None, run_dir=str(root / "run"))
    return suite, results, run


@pytest.mark.slow
def test_train_and_grade_measures_drift_every_epoch(drift_run):
    suite, results, run = drift_run
    rec = results["models"][0]
    e0, e1 = rec["epochs"]
    assert e0["drift"]["sets"]["probe"]["items"] == 24 and e0["drift"]["sets"]["prompts"]["items"] == 6
    assert set(e0["drift"]["sets"]["probe"]["groups"]) == {"en", "fr"}
    assert e0["drift"]["sets"]["probe"]["kl"] == 0 and e1["drift"]["sets"]["probe"]["kl"] > 0
    assert (run.root / e0["drift"]["base"]).is_file() and (run.root / e1["drift"]["stats"]).is_file()
    drift = rec["diagnostics"]["drift"]
    assert set(drift["signals"]) == {"kl", "kl_prompts", "nll"}
    kl = drift["signals"]["kl"]["epochs"]["1"]
    assert kl["value"] == pytest.approx(e1["drift"]["sets"]["probe"]["kl"])
    assert kl["ci"][0] <= kl["value"] <= kl["ci"][1] and kl["significant"] and kl["status"] == "fail"
    assert drift["verdict"]["status"] == "fail" and "builtin:translation" in drift["verdict"]["summary"]
    nll = drift["signals"]["nll"]
    assert set(nll["groups"]) == {"en", "fr"}
    assert nll["epochs"]["1"]["value"] == max(g["1"]["value"] for g in nll["groups"].values())
    # one family: forgetting's size counts the drift tests (3 signals' cells, NLL per group)
    forgetting = rec["diagnostics"]["forgetting"]
    own = sum(1 for ms in forgetting["tasks"].values() for r in ms.values() for c in r["epochs"].values()
              if c["p_value"] is not None)
    assert forgetting["family"]["size"] == own + 4


@pytest.mark.slow
def test_drift_gates_report_and_summary(drift_run):
    from rich.console import Console

    from harness.cli import _summary
    from harness.gate import evaluate_gates
    from reports.html import render_report

    suite, results, run = drift_run
    verdict = evaluate_gates(results, run, [{"drift": "kl", "max": 1e-6, "checkpoint": "last"},
                                            {"drift": "kl", "max": 100, "checkpoint": "last"},
                                            {"drift": "nll", "max": 0, "checkpoint": 0}])   # the base: no drift
    assert [g["status"] for g in verdict["gates"]] == ["fail", "pass", "pass"]
    assert verdict["gates"][0]["task"] == "drift" and verdict["gates"][0]["metric"] == "kl"
    from harness.gate.specs import GateError

    with pytest.raises(GateError, match="not measured"):
        evaluate_gates({**results, "models": [{**results["models"][0], "diagnostics": {}}]}, run,
                       [{"drift": "nll", "max": 0.1}])
    html = Path(render_report([run.root]))
    assert "Drift from the base model" in html.read_text() and 'data-chart="drift"' in html.read_text()
    console = Console(record=True, width=200)
    _summary(results, console)
    assert "drift: fail drifted beyond the fail threshold" in console.export_text()


@pytest.mark.slow
def test_grade_drift_base_matches_the_training_runs_drift(drift_run, tiny_model_dir, tmp_path):
    """`harness grade --model BASE --model EPOCH1 --drift-base BASE`: the checkpoint's KL against the
    base is the one the training run measured at epoch 1."""
    from harness.pipeline import grade_models
    from harness.suite import ModelSpec

    suite, results, run = drift_run
    ckpt = run.root / results["models"][0]["epochs"][1]["checkpoint"]
    out, _ = grade_models(suite, [ModelSpec(name="tuned", path=str(ckpt)), ModelSpec(name="base", path=str(tiny_model_dir))],
                          log=lambda m: None, run_dir=str(tmp_path / "g"), drift_base="base")
    by = {m["name"]: m for m in out["models"]}
    assert [m["name"] for m in out["models"]] == ["base", "tuned"]   # the base graded first
    assert "drift" not in by["base"]["diagnostics"]
    got = by["tuned"]["diagnostics"]["drift"]
    assert got["base_model"] == "base"
    trained = results["models"][0]["diagnostics"]["drift"]["signals"]["kl"]["epochs"]["1"]["value"]
    assert got["signals"]["kl"]["epochs"]["0"]["value"] == pytest.approx(trained, rel=1e-3)
    with pytest.raises(Exception, match="--drift-base nobody: not one of the graded models"):
        grade_models(suite, [ModelSpec(name="base", path=str(tiny_model_dir))], log=lambda m: None,
                     run_dir=str(tmp_path / "h"), drift_base="nobody")
