"""Each diagnostic proven on a run where its fault is really there, and quiet on a clean run.

Real training (TRL) on the project's tiny models; nothing is mocked except the one planted bug
(the fact-4 label builder that pads labels with the pad id instead of -100).

  planted fault                                 caught by
  fine-tune on en→fr only                       forgetting flags fr→en (paired bootstrap)
  8 training rows, many epochs                  inflection on validation loss; early stopping keeps
                                                the best epoch, which is not the last
  padding left in the labels                    label audit fails, the run stops before training
  training rows copied into the validation set  data audit reports leakage, the run stops
  a clean run (both directions trained)         no forgetting flag, no audit failure
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.chat import TokenizedExample
from harness.cli import main
from harness.results import load_results
from harness.synthetic import translation


def write_suite(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "suite.yaml"
    path.write_text(text)
    return path


def audit_checks(run_dir: Path) -> dict:
    results, _ = load_results(run_dir)
    audit = results["models"][0]["audit"]
    return {c["name"]: c for part in ("labels", "template", "data") for c in audit[part]["checks"]} | \
        {"verdict": audit["verdict"]}


# --------------------------------------------------------------------------- label audit
def test_padding_in_labels_fails_the_label_audit_and_stops_the_run(tiny_model_dir, tmp_path, monkeypatch, capsys):
    """Fact 4: labels padded with the pad id (not -100) put padding in the loss."""
    from runners import trl_sft

    real = trl_sft.tokenize_rows

    def padded_labels(tokenizer, rows, train):
        out = []
        for t in real(tokenizer, rows, train):
            n = train.max_seq_len - len(t.input_ids)
            pad = [tokenizer.pad_token_id] * n
            out.append(TokenizedExample(t.input_ids + pad, t.labels + pad, t.assistant_mask + [0] * n,
                                        t.truncated, t.prompt_len, t.full_length))
        return out

    monkeypatch.setattr(trl_sft, "tokenize_rows", padded_labels)
    suite = write_suite(tmp_path, f"""
name: padded
models: [{{name: tiny, path: {tiny_model_dir}}}]
train:
  data: [{{synthetic: {{kind: translation, direction: en-fr, split: train, n: 24}}}}]
  epochs: 1
  batch_size: 8
  max_seq_len: 96
tasks: [{{name: en-fr, data: {{synthetic: {{kind: translation, direction: en-fr, split: val, n: 8}}}}}}]
""")
    code = main(["-q", "train-and-grade", str(suite), "--run-dir", str(tmp_path / "run"), "--no-report"])
    err = capsys.readouterr().err
    assert code == 2 and "pre-training audit failed" in err and "padding_in_loss" in err
    assert "fail_on_error: false" in err
    checks = audit_checks(tmp_path / "run")
    assert checks["padding_in_loss"]["status"] == "fail" and checks["padding_in_loss"]["value"] > 0.3
    assert checks["padding_in_loss"]["examples"]
    # the diagnosis is precise: prompt tokens are still masked, end-of-turn still learned
    assert checks["prompt_tokens_in_loss"]["status"] == "pass"
    assert checks["end_of_turn_learned"]["status"] == "pass"
    results, _ = load_results(tmp_path / "run")
    assert results["status"] == "failed" and results["models"][0]["epochs"] == []


def test_labels_on_the_prompt_fail_when_assistant_only_loss_is_asked(tiny_model_dir, tmp_path, monkeypatch):
    from runners import trl_sft

    real = trl_sft.tokenize_rows

    def labels_everywhere(tokenizer, rows, train):
        return [TokenizedExample(t.input_ids, list(t.input_ids), t.assistant_mask, t.truncated, t.prompt_len,
                                 t.full_length) for t in real(tokenizer, rows, train)]

    monkeypatch.setattr(trl_sft, "tokenize_rows", labels_everywhere)
    suite = write_suite(tmp_path, f"""
name: prompt-labels
models: [{{name: tiny, path: {tiny_model_dir}}}]
train: {{data: [{{synthetic: {{kind: translation, direction: en-fr, split: train, n: 16}}}}], max_seq_len: 96}}
tasks: [{{name: en-fr, data: {{synthetic: {{kind: translation, direction: en-fr, split: val, n: 8}}}}}}]
diagnostics: {{audit: {{fail_on_error: false}}}}
""")
    assert main(["-q", "train-and-grade", str(suite), "--run-dir", str(tmp_path / "run"), "--no-report"]) == 0
    checks = audit_checks(tmp_path / "run")
    assert checks["prompt_tokens_in_loss"]["status"] == "fail" and checks["prompt_tokens_in_loss"]["value"] > 0.5
    assert checks["padding_in_loss"]["status"] == "pass"
    # fail_on_error: false trains anyway and keeps the failed audit in the results
    results, _ = load_results(tmp_path / "run")
    assert results["status"] == "complete" and len(results["models"][0]["epochs"]) == 4


# --------------------------------------------------------------------------- data audit
def leaky_suite(tiny_model_dir, tmp_path: Path) -> Path:
    """40 training rows; a validation set of 20 new rows plus 5 copied from training."""
    pairs = translation.generate_pairs(60, seed=3)
    train = [{"id": f"t{i}", "prompt": f"Translate to French: {en}", "completion": fr}
             for i, (en, fr) in enumerate(pairs[:40])]
    val = [{"id": f"v{i}", "prompt": f"Translate to French: {en}", "completion": fr}
           for i, (en, fr) in enumerate(pairs[40:])] + [dict(r, id=f"copy{i}") for i, r in enumerate(train[:5])]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train))
    (tmp_path / "val.jsonl").write_text("".join(json.dumps(r) + "\n" for r in val))
    return write_suite(tmp_path, f"""
name: leaky
models: [{{name: tiny, path: {tiny_model_dir}}}]
train: {{data: [{{path: train.jsonl}}], max_seq_len: 96}}
tasks: [{{name: en-fr, data: {{path: val.jsonl}}}}]
""")


def test_train_rows_copied_into_validation_are_reported_as_leakage(tiny_model_dir, tmp_path, capsys):
    suite = leaky_suite(tiny_model_dir, tmp_path)
    code = main(["-q", "train-and-grade", str(suite), "--run-dir", str(tmp_path / "run"), "--no-report"])
    assert code == 2 and "en-fr.leakage" in capsys.readouterr().err
    checks = audit_checks(tmp_path / "run")
    leak = checks["en-fr.leakage"]
    assert leak["status"] == "fail" and leak["value"] == pytest.approx(5 / 25)
    assert {e["id"] for e in leak["examples"]} <= {f"copy{i}" for i in range(5)}
    assert leak["examples"][0]["train_id"] == "t0"
    results, _ = load_results(tmp_path / "run")
    assert results["models"][0]["audit"]["data"]["leakage"]["en-fr"]["rows"] == 5


# --------------------------------------------------------------------------- inflection + early stopping
def overfit_suite(tmp_path: Path, model_dir, epochs: int, train_extra: str) -> Path:
    """8 training rows, many epochs: validation loss turns up while training loss keeps falling."""
    return write_suite(tmp_path, f"""
name: overfit
models: [{{name: tiny, path: {model_dir}}}]
train:
  data: [{{synthetic: {{kind: translation, direction: en-fr, split: train, n: 8}}}}]
  epochs: {epochs}
  lr: 3.0e-3
  batch_size: 2
  max_seq_len: 96
  logging_steps: 1
{train_extra}
tasks:
  - name: en-fr
    data: {{synthetic: {{kind: translation, direction: en-fr, split: val, n: 48}}}}
    metrics: [perplexity]
bootstrap: {{samples: 0}}
""")


def test_tiny_training_set_overfits_and_early_stopping_keeps_the_best_epoch(tiny_model_dir, tmp_path):
    suite = overfit_suite(tmp_path, tiny_model_dir, 14, "  keep_checkpoints: 1\n"
                                                        "  early_stopping: {metric: en-fr/loss, patience: 3}")
    assert main(["-q", "train-and-grade", str(suite), "--run-dir", str(tmp_path / "run"), "--no-report"]) == 0
    results, run = load_results(tmp_path / "run")
    model = results["models"][0]
    epochs = [e["epoch"] for e in model["epochs"]]
    losses = [e["tasks"]["en-fr"]["loss"] for e in model["epochs"]]
    best = model["best"]
    assert model["early_stopped"] and epochs[-1] < 14
    assert best["metric"] == "en-fr/loss" and 1 <= best["epoch"] < epochs[-1]
    assert losses[best["epoch"]] == min(losses) and best["epoch"] == epochs[-1] - 3
    # the best checkpoint survives rotation (keep_checkpoints: 1 keeps only the newest otherwise)
    assert best["checkpoint"] and (run.root / best["checkpoint"] / "model.safetensors").exists()
    kept = [e["epoch"] for e in model["epochs"] if e.get("checkpoint")]
    assert kept == [best["epoch"], epochs[-1]]
    # the inflection: validation loss turns up while training loss keeps falling
    inf = model["diagnostics"]["inflection"]
    s = inf["series"]["en-fr/loss"]
    assert s["inflection_epoch"] == best["epoch"] and s["status"] == "inflection"
    assert "en-fr/loss" in inf["inflections"] and inf["verdict"]["status"] == "warn"
    assert f"en-fr/loss is best at epoch {best['epoch']}, then" in inf["verdict"]["summary"] and "higher" in \
        inf["verdict"]["summary"]
    train_loss = {e["epoch"]: e["train_loss"] for e in model["epochs"] if e["epoch"] > 0}
    assert train_loss[epochs[-1]] < train_loss[best["epoch"]]


# --------------------------------------------------------------------------- forgetting (built-in model)
FORGETTING_SUITE = """
name: {name}
models: [{{name: tiny-translator, path: builtin:tiny-translator}}]
train:
  data: {data}
  epochs: 2
  lr: 2.0e-3
  batch_size: 16
  max_seq_len: 96
tasks:
  - name: en-fr
    data: {{synthetic: {{kind: translation, direction: en-fr, split: val, n: 60}}}}
    metrics: [bleu, chrf]
    generation: {{max_new_tokens: 48, batch_size: 60}}
  - name: fr-en
    data: {{synthetic: {{kind: translation, direction: fr-en, split: val, n: 60}}}}
    metrics: [bleu, chrf]
    generation: {{max_new_tokens: 48, batch_size: 60}}
bootstrap: {{samples: 200}}
"""


@pytest.mark.slow
def test_one_direction_fine_tune_flags_the_other_as_forgotten(tmp_path):
    suite = write_suite(tmp_path, FORGETTING_SUITE.format(
        name="one-direction", data="[{synthetic: {kind: translation, direction: en-fr, split: train, n: 800}}]"))
    assert main(["-q", "train-and-grade", str(suite), "--run-dir", str(tmp_path / "run")]) == 0
    results, run = load_results(tmp_path / "run")
    model = results["models"][0]
    f = model["diagnostics"]["forgetting"]
    assert "fr-en/bleu" in f["flagged"] and not any(k.startswith("en-fr/") for k in f["flagged"])
    cell = f["tasks"]["fr-en"]["bleu"]["epochs"]["2"]
    assert cell["forgotten"] and cell["ci"][1] < 0 and cell["p_value"] < 0.05
    assert f["verdict"]["status"] == "fail" and "fr-en/bleu" in f["verdict"]["summary"]
    assert model["audit"]["verdict"]["status"] != "fail"
    report = (run.root / "report.html").read_text()
    assert "fr-en/bleu" in report and "forgotten" in report


def test_clean_run_raises_no_flag(tiny_model_dir, tmp_path):
    """Both directions trained on clean data: both improve, nothing is forgotten, no audit fails."""
    suite = write_suite(tmp_path, f"""
name: clean
models: [{{name: tiny, path: {tiny_model_dir}}}]
train:
  data: [{{synthetic: {{kind: translation, direction: en-fr, split: train, n: 96}}}},
         {{synthetic: {{kind: translation, direction: fr-en, split: train, n: 96}}}}]
  epochs: 2
  lr: 2.0e-3
  batch_size: 16
  max_seq_len: 128
tasks:
  - name: en-fr
    data: {{synthetic: {{kind: translation, direction: en-fr, split: val, n: 32}}}}
    generation: {{max_new_tokens: 32, batch_size: 32}}
  - name: fr-en
    data: {{synthetic: {{kind: translation, direction: fr-en, split: val, n: 32}}}}
    generation: {{max_new_tokens: 32, batch_size: 32}}
bootstrap: {{samples: 0}}
""")
    assert main(["-q", "train-and-grade", str(suite), "--run-dir", str(tmp_path / "run"), "--no-report"]) == 0
    model = load_results(tmp_path / "run")[0]["models"][0]
    for task in ("en-fr", "fr-en"):
        assert model["epochs"][-1]["tasks"][task]["loss"] < model["epochs"][0]["tasks"][task]["loss"]
    forgetting = model["diagnostics"]["forgetting"]
    assert forgetting["flagged"] == [] and forgetting["verdict"]["status"] == "pass"
    assert set(forgetting["tasks"]) == {"en-fr", "fr-en"}
    assert model["audit"]["verdict"]["status"] == "pass"


def test_audit_command_checks_before_any_training(tiny_model_dir, tmp_path, capsys):
    """`harness audit` runs the same audits without loading weights: exit 1 on a failure."""
    suite = leaky_suite(tiny_model_dir, tmp_path)
    assert main(["audit", str(suite), "--json", str(tmp_path / "audit.json")]) == 1
    out = capsys.readouterr().out
    assert "data.en-fr.leakage" in out and "5 of 25 rows (20.0%) are training rows" in out
    (entry,) = json.loads((tmp_path / "audit.json").read_text())
    assert entry["name"] == "tiny" and entry["audit"]["verdict"]["status"] == "fail"
    assert {c["name"] for c in entry["audit"]["labels"]["checks"]} >= {"padding_in_loss", "end_of_turn_learned"}
    assert not (tmp_path / "runs").exists()
    # the same suite without the copied rows audits clean
    val = [json.loads(line) for line in (tmp_path / "val.jsonl").read_text().splitlines()]
    (tmp_path / "val.jsonl").write_text("".join(json.dumps(r) + "\n" for r in val if not r["id"].startswith("copy")))
    assert main(["-q", "audit", str(suite)]) == 0


@pytest.mark.slow
def test_tie_set_early_stopping_keeps_the_earliest_epoch_within_noise(tiny_model_dir, tmp_path, capsys):
    suite = overfit_suite(tmp_path, tiny_model_dir, 10,
                          "  early_stopping: {metric: en-fr/loss, patience: 2, rule: tie_set}")
    assert main(["train-and-grade", str(suite), "--run-dir", str(tmp_path / "run"), "--no-report"]) == 0
    assert "has not improved significantly for 2 epochs" in capsys.readouterr().out
    results, run = load_results(tmp_path / "run")
    model = results["models"][0]
    epochs = [e["epoch"] for e in model["epochs"]]
    assert model["early_stopped"] and epochs[-1] < 10
    # the stopper's best (reported in the log) is tied with every later epoch: none is significantly better
    from harness.diagnose import ItemStats
    from harness.suite import load_suite

    items = ItemStats(run, load_suite(tmp_path / "run" / "suite.yaml"))
    by = {e["epoch"]: e for e in model["epochs"]}
    kept = epochs[-3]
    for later in epochs[-2:]:
        test = items.paired("en-fr", "loss", by[kept]["tasks"]["en-fr"], by[later]["tasks"]["en-fr"], 0.95)
        assert test["p_value"] >= 0.05
