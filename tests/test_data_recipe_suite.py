"""A suite that trains from a data recipe, end to end (slow): `train.data: [{recipe: ...}]` builds
the dataset once (reused by hash), results.json records the manifest hash, the report shows it."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.cli import main
from harness.dataprep.export import sha256_file
from harness.results import load_results
from harness.synthetic import translation


@pytest.mark.slow
def test_suite_trains_from_a_recipe_and_records_its_manifest(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    pairs = translation.generate_pairs(90, seed=11)
    (tmp_path / "news.en").write_text("".join(en + "\n" for en, _ in pairs[:60]), encoding="utf-8")
    (tmp_path / "news.fr").write_text("".join(fr + "\n" for _, fr in pairs[:60]), encoding="utf-8")
    chat = [{"messages": [{"role": "user", "content": f"Translate English to French:\n{en}"},
                          {"role": "assistant", "content": fr}]} for en, fr in pairs[50:90]]   # 10 overlap
    (tmp_path / "chat.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in chat),
                                         encoding="utf-8")
    (tmp_path / "recipe.yaml").write_text("""name: en-fr-mix
seed: 1
sources:
  - {name: news, parallel: {source: news.en, target: news.fr, direction: en-fr}, weight: 3}
  - {name: chat, path: chat.jsonl, weight: 2}
mix: {strategy: interleave}
split: {validation: 16, min_validation: 16, stratify: true}
""")
    suite = tmp_path / "suite.yaml"
    suite.write_text(f"""name: from-recipe
models: [{{name: tiny, path: {tiny_model_dir}}}]
train:
  data: [{{recipe: recipe.yaml}}]
  epochs: 1
  lr: 2.0e-3
  batch_size: 16
  max_seq_len: 96
tasks:
  - name: en-fr
    data: {{recipe: recipe.yaml, recipe_split: validation}}
    metrics: [bleu]
    generation: {{max_new_tokens: 24, batch_size: 16}}
bootstrap: {{samples: 0}}
""")
    assert main(["-q", "train-and-grade", str(suite), "--run-dir", str(tmp_path / "run")]) == 0
    results, run = load_results(tmp_path / "run")
    (record,) = results["data"]
    (built,) = list((tmp_path / "cache" / "data").iterdir())          # built once, reused for the task
    assert record["manifest_sha256"] == sha256_file(built / "manifest.json")
    manifest = json.loads((built / "manifest.json").read_text())
    assert manifest["sources"]["chat"]["duplicates_across"] == 10
    assert manifest["stages"]["validation"] == 16 and record["sources"]["news"]["read"] == 60
    model = results["models"][0]
    assert model["epochs"][1]["tasks"]["en-fr"]["n"] == 16
    assert model["audit"]["data"]["leakage"]["en-fr"]["rows"] == 0          # the split shares no row
    html = (run.root / "report.html").read_text()
    assert 'id="data"' in html and "en-fr-mix" in html and record["manifest_sha256"][:16] in html


def test_a_missing_recipe_is_a_suite_error_with_its_line(tmp_path):
    from harness.suite import SuiteError, parse_suite

    text = "name: s\nmodels: [{path: m}]\ntrain:\n  data:\n    - recipe: nope.yaml\ntasks: [{name: t, data: {synthetic: {n: 1}}}]\n"
    with pytest.raises(SuiteError, match=r"^s\.yaml:5: field 'train\.data\.0\.recipe': file not found"):
        parse_suite(text, "s.yaml", tmp_path)
    with pytest.raises(SuiteError, match="exactly one of path, parallel, hf, synthetic, recipe"):
        parse_suite(text.replace("- recipe: nope.yaml", "- {recipe: r.yaml, path: x.jsonl}"), "s.yaml", tmp_path)


def test_a_bad_row_in_a_suites_recipe_stops_before_training(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    (tmp_path / "d.jsonl").write_text('{"prompt": "a", "completion": "b"}\n{"prompt": 1}\n')
    (tmp_path / "r.yaml").write_text("name: r\nsources: [{name: d, path: d.jsonl}]\n")
    (tmp_path / "s.yaml").write_text("name: s\nmodels: [{path: builtin:tiny-translator}]\n"
                                     "train: {data: [{recipe: r.yaml}]}\ntasks: [{name: t, data: {synthetic: {direction: en-fr, n: 2}}}]\n")
    assert main(["train-and-grade", str(tmp_path / "s.yaml"), "--run-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "d.jsonl:2" in err and "on_error: skip" in err and not (tmp_path / "run").exists()
