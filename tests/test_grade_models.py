"""`harness grade --model ... [--adapter ...]` on what users actually grade (fast, tiny model):

  * a checkpoint saved by `harness train-and-grade` (full fine-tuning, and LoRA: an adapter
    directory) gives the scores that run recorded for that epoch (greedy decoding);
  * a base model + a PEFT adapter: the adapter is applied (outputs change unless lora_B is
    zero) and its trainable parameters are reported;
  * several models side by side in one run, from repeated --model or from the suite, and
    the HTML report compares them.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from harness.cli import main
from harness.results import load_results, read_jsonl

TRAIN_ROWS = [  # tiny prompt/completion JSONL task next to the synthetic one
    {"id": f"j{i}", "prompt": f"Translate English to French:\n{src}", "completion": ref}
    for i, (src, ref) in enumerate([("The cat sleeps.", "Le chat dort."), ("The dog eats.", "Le chien mange."),
                                    ("A red apple.", "Une pomme rouge."), ("The small house.", "La petite maison.")])
]


def _write_suite(tmp_path: Path, model: str, method: str = "full", epochs: int = 2, models: str | None = None,
                 extra: str = "") -> Path:
    (tmp_path / "extra.jsonl").write_text("".join(json.dumps(r) + "\n" for r in TRAIN_ROWS))
    models = models or f"[{{name: tiny, path: {model}}}]"
    text = f"""
name: grade-models
models: {models}
train:
  data: [{{synthetic: {{kind: translation, direction: en-fr, split: train, n: 48, seed: 1}}}}]
  method: {method}
  lora: {{r: 4, alpha: 8, dropout: 0.0}}
  epochs: {epochs}
  lr: 3.0e-3
  batch_size: 16
  max_seq_len: 96
  logging_steps: 1
tasks:
  - name: en-fr
    data: {{synthetic: {{kind: translation, direction: en-fr, split: val, n: 8}}}}
    metrics: [bleu, chrf, perplexity, usability]
    generation: {{max_new_tokens: 16, batch_size: 8}}
  - name: phrases
    data: {{path: extra.jsonl}}
    metrics: [chrf, perplexity]
    generation: {{max_new_tokens: 12, batch_size: 4}}
bootstrap: {{samples: 50}}
diagnostics: {{audit: {{fail_on_error: false}}}}
{extra}
"""
    path = tmp_path / "suite.yaml"
    path.write_text(text)
    return path


def _scores(epoch: dict) -> dict:
    return {(t, m): v["score"] for t, rec in epoch["tasks"].items() for m, v in rec["metrics"].items()}


def _outputs(run, epoch: dict, task: str) -> dict[str, str]:
    return {r["id"]: r["output"] for r in read_jsonl(run.root / epoch["tasks"][task]["samples"])}


def _assert_same_grading(run_a, epoch_a: dict, run_b, epoch_b: dict) -> None:
    """Same outputs item by item, same scores (greedy decoding of the same weights)."""
    for task in epoch_a["tasks"]:
        assert _outputs(run_a, epoch_a, task) == _outputs(run_b, epoch_b, task), task
    a, b = _scores(epoch_a), _scores(epoch_b)
    assert a.keys() == b.keys()
    for key in a:
        assert b[key] == pytest.approx(a[key], rel=1e-5, abs=1e-6), key


def _model(results: dict, name: str) -> dict:
    return next(m for m in results["models"] if m["name"] == name)


@pytest.fixture(scope="module")
def full_run(tiny_model_dir, tmp_path_factory):
    """`harness train-and-grade` with full fine-tuning, 2 epochs, checkpoints saved (default)."""
    tmp = tmp_path_factory.mktemp("full")
    suite = _write_suite(tmp, str(tiny_model_dir))
    assert main(["-q", "train-and-grade", str(suite), "--run-dir", str(tmp / "train"), "--no-report"]) == 0
    results, run = load_results(tmp / "train")
    return suite, results, run


@pytest.fixture(scope="module")
def lora_adapters(tiny_model_dir, tmp_path_factory):
    """Two adapters made with peft on the tiny model: as initialised (lora_B = 0, a no-op) and
    one whose lora_B is non-zero. Returns (zero dir, non-zero dir, adapter parameter count)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    tmp = tmp_path_factory.mktemp("adapters")
    dirs = []
    for name, scale in (("zero-lora", 0.0), ("my-lora", 0.3)):
        base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
        model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                                task_type="CAUSAL_LM"))
        torch.manual_seed(0)
        n = 0
        for pname, p in model.named_parameters():
            if "lora_" in pname:
                n += p.numel()
                if "lora_B" in pname and scale:
                    torch.nn.init.normal_(p.data, std=scale)
        model.save_pretrained(tmp / name)
        dirs.append(tmp / name)
    return dirs[0], dirs[1], n


# ------------------------------------------------------------------ (a) checkpoints
def test_grading_saved_checkpoints_reproduces_the_training_run(full_run, tmp_path):
    suite, train_results, train_run = full_run
    trained = train_results["models"][0]
    assert [e["epoch"] for e in trained["epochs"]] == [0, 1, 2]
    ckpts = [train_run.root / e["checkpoint"] for e in trained["epochs"][1:]]
    assert [c.relative_to(train_run.root).as_posix() for c in ckpts] == \
        ["checkpoints/tiny/epoch-1", "checkpoints/tiny/epoch-2"]

    # both checkpoints side by side in one grade run
    code = main(["-q", "grade", str(suite), "--model", str(ckpts[0]), "--model", str(ckpts[1]),
                 "--run-dir", str(tmp_path / "grade"), "--no-report"])
    assert code == 0
    results, run = load_results(tmp_path / "grade")
    assert results["status"] == "complete"
    assert [m["name"] for m in results["models"]] == ["tiny/epoch-1", "tiny/epoch-2"]
    for model, epoch in zip(results["models"], trained["epochs"][1:]):
        assert model["path"] == str(train_run.root / epoch["checkpoint"]) and model["adapter"] is None
        assert model["method"] == "none" and [e["epoch"] for e in model["epochs"]] == [0]
        _assert_same_grading(train_run, epoch, run, model["epochs"][0])
        params = model["parameters"]
        assert params["total"] == trained["parameters"]["total"] and params["adapter"] is False
    # the two checkpoints are different models (training moved the weights)
    assert _outputs(run, results["models"][0]["epochs"][0], "en-fr") != \
        _outputs(run, results["models"][1]["epochs"][0], "en-fr") or \
        _scores(results["models"][0]["epochs"][0]) != _scores(results["models"][1]["epochs"][0])
    # one sample file per model, not one overwritten by the other
    assert len({m["epochs"][0]["tasks"]["en-fr"]["samples"] for m in results["models"]}) == 2


def test_grading_a_lora_run_checkpoint(tiny_model_dir, tmp_path):
    """A LoRA run saves adapters; `--model CKPT` finds the base, `--model BASE --adapter CKPT` too."""
    suite = _write_suite(tmp_path, str(tiny_model_dir), method="lora", epochs=1)
    assert main(["-q", "train-and-grade", str(suite), "--run-dir", str(tmp_path / "train"), "--no-report"]) == 0
    train_results, train_run = load_results(tmp_path / "train")
    trained = train_results["models"][0]
    ckpt = train_run.root / trained["epochs"][1]["checkpoint"]
    assert (ckpt / "adapter_config.json").exists() and not (ckpt / "config.json").exists()
    # training actually changed the adapter's outputs or likelihoods
    assert _scores(trained["epochs"][1]) != _scores(trained["epochs"][0])

    code = main(["-q", "grade", str(suite), "--model", str(ckpt), "--model", str(tiny_model_dir), "--adapter",
                 str(ckpt), "--run-dir", str(tmp_path / "grade"), "--no-report"])
    assert code == 0
    results, run = load_results(tmp_path / "grade")
    assert [m["name"] for m in results["models"]] == ["tiny/epoch-1-1", "tiny/epoch-1-2"]
    for model in results["models"]:
        assert model["adapter"] == str(ckpt)
        assert Path(model["path"]).resolve() == Path(tiny_model_dir).resolve()
        _assert_same_grading(train_run, trained["epochs"][1], run, model["epochs"][0])
        params = model["parameters"]
        assert params["adapter"] is True and params["trainable"] == trained["parameters"]["trainable"]
        assert params["total"] == trained["parameters"]["total"] and 0 < params["trainable_share"] < 0.2


# ------------------------------------------------------------------ (b) base + adapter, (c) side by side
def test_base_and_adapters_side_by_side_with_report(full_run, lora_adapters, tiny_model_dir, tmp_path,
                                                    monkeypatch):
    from reports import charts

    suite = full_run[0]
    zero, nonzero, n_adapter = lora_adapters
    drawn: dict[tuple[str, str], list[str]] = {}
    real_chart = charts.metric_chart

    def spy(task, metric, higher, curves, prefix):
        drawn[(task, metric)] = [c.label for c in curves]
        return real_chart(task, metric, higher, curves, prefix)

    monkeypatch.setattr(charts, "metric_chart", spy)
    base = str(tiny_model_dir)
    # --adapter belongs to the --model just before it, whatever the order of the others
    code = main(["-q", "grade", str(suite), "--model", base, "--model", base, "--adapter", str(nonzero),
                 "--model", base, "--adapter", str(zero), "--run-dir", str(tmp_path / "g")])
    assert code == 0
    results, run = load_results(tmp_path / "g")
    names = [m["name"] for m in results["models"]]
    assert names == [Path(base).name, "my-lora", "zero-lora"]
    plain, lora, noop = results["models"]
    assert plain["adapter"] is None and lora["adapter"] == str(nonzero) and noop["adapter"] == str(zero)

    # parameters: the base is all trainable; with an adapter only the adapter is
    assert plain["parameters"]["adapter"] is False
    assert plain["parameters"]["trainable"] == plain["parameters"]["total"]
    assert plain["parameters"]["trainable_share"] == 1.0
    for m in (lora, noop):
        p = m["parameters"]
        assert p["adapter"] is True and p["trainable"] == n_adapter > 0
        assert p["total"] == plain["parameters"]["total"] + n_adapter
        assert 0 < p["trainable_share"] < 1 and p["trainable_share"] == pytest.approx(n_adapter / p["total"])

    # the adapter is really applied: a zero lora_B changes nothing, a non-zero one changes outputs
    e_plain, e_lora, e_noop = (m["epochs"][0] for m in (plain, lora, noop))
    _assert_same_grading(run, e_plain, run, e_noop)
    assert _outputs(run, e_lora, "en-fr") != _outputs(run, e_plain, "en-fr")
    assert e_lora["tasks"]["en-fr"]["loss"] != pytest.approx(e_plain["tasks"]["en-fr"]["loss"], rel=1e-4)

    # the report compares the three: one column group per model in the scores table, one
    # curve per model in every metric chart, and the adapter's parameter share in its card
    html = (run.root / "report.html").read_text()
    groups = re.findall(r'<th colspan="3" class="group"[^>]*>([^<]*)</th>', html)
    assert groups == names
    rows = re.findall(r"<tr><td>([^<]+)</td><td>([^<]+?) <span", html)
    assert ("en-fr", "bleu") in rows and ("phrases", "chrf") in rows
    for task, metric in [("en-fr", "bleu"), ("en-fr", "chrf"), ("en-fr", "perplexity"), ("phrases", "chrf")]:
        assert drawn[(task, metric)] == names
    assert "One graded epoch per model: each point is a model" in html  # points with CIs, not lines
    share = f"{100 * lora['parameters']['trainable_share']:.3g}%"
    assert f"{n_adapter:,} of {lora['parameters']['total']:,} parameters trainable ({share})" in html
    assert f"adapter <code>{nonzero}</code>" in html


def test_suite_listing_two_models_grades_both(lora_adapters, tiny_model_dir, tmp_path):
    """No --model: the suite's models, adapter paths relative to the suite file, distinct names."""
    _, nonzero, _ = lora_adapters
    (tmp_path / "adapters").symlink_to(nonzero.parent, target_is_directory=True)
    models = f"[{{path: {tiny_model_dir}}}, {{path: {tiny_model_dir}, adapter: adapters/{nonzero.name}}}]"
    suite = _write_suite(tmp_path, str(tiny_model_dir), models=models)
    code = main(["-q", "grade", str(suite), "--run-dir", str(tmp_path / "g"), "--no-report"])
    assert code == 0
    results, run = load_results(tmp_path / "g")
    assert [m["name"] for m in results["models"]] == [Path(tiny_model_dir).name, "my-lora"]
    assert results["models"][1]["parameters"]["adapter"] is True
    outs = [_outputs(run, m["epochs"][0], "en-fr") for m in results["models"]]
    assert outs[0] != outs[1]


def test_same_model_twice_gets_distinct_names(tiny_model_dir, tmp_path):
    suite = _write_suite(tmp_path, str(tiny_model_dir))
    code = main(["-q", "grade", str(suite), "--model", str(tiny_model_dir), "--model", str(tiny_model_dir),
                 "--run-dir", str(tmp_path / "g"), "--no-report"])
    assert code == 0
    results, run = load_results(tmp_path / "g")
    name = Path(tiny_model_dir).name
    assert [m["name"] for m in results["models"]] == [f"{name}-1", f"{name}-2"]
    a, b = (m["epochs"][0] for m in results["models"])
    assert a["tasks"]["en-fr"]["samples"] != b["tasks"]["en-fr"]["samples"]
    _assert_same_grading(run, a, run, b)


@pytest.mark.parametrize("args", [["--adapter", "x"], ["--model", "m", "--adapter", "x", "--adapter", "y"]])
def test_adapter_without_its_model_is_one_line_exit_2(tmp_path, capsys, args):
    suite = _write_suite(tmp_path, "builtin:tiny-translator")
    assert main(["grade", str(suite), *args, "--run-dir", str(tmp_path / "g")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--model PATH --adapter DIR" in err
    assert not (tmp_path / "g").exists()
