"""Grading a task: its language measured once at load and stored per task; metric options that
follow from it; refusals before any model work. Through `harness grade --predictions` (no model)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from rouge_score.rouge_scorer import RougeScorer
from sacrebleu.metrics import BLEU, TER

from harness import __version__
from harness.cli import main
from harness.grade import load_tasks
from harness.results import load_results
from harness.suite import load_suite

SUITE = """\
name: lang
models: [{{path: builtin:tiny-translator}}]
tasks:
  - name: {task}
    data: {{path: rows.jsonl}}
    metrics: [bleu, chrf, ter, rouge, usability]
{options}bootstrap: {{samples: 0}}
"""
# (output, reference): free text, no direction anywhere
ZH = [("今天天气很好", "今天天气非常好。"), ("他在看书", "他正在图书馆看书。"),
      ("我们明天去海边。", "明天我们去海边。"), ("这只猫很可爱。", "这只小猫非常可爱。")]
FR = [("Le chat noir mange.", "Le chat noir mange."),
      ("le chien dort dans la maison", "Le chien dort dans la maison."),
      ("Il fait beau aujourd'hui !", "Il fait très beau aujourd'hui."),
      ("", "Nous allons à la plage demain."),
      ("Elle lit un livre rouge.", "Elle lit un gros livre rouge.")]


def _grade(tmp_path: Path, pairs, task="t", options="", report=False) -> tuple[int, dict]:
    (tmp_path / "rows.jsonl").write_text("".join(
        json.dumps({"id": f"r{i}", "prompt": "x", "completion": ref}, ensure_ascii=False) + "\n"
        for i, (_, ref) in enumerate(pairs)), encoding="utf-8")
    (tmp_path / "suite.yaml").write_text(SUITE.format(task=task, options=options), encoding="utf-8")
    (tmp_path / "preds.jsonl").write_text("".join(
        json.dumps({"task": task, "id": f"r{i}", "output": out}, ensure_ascii=False) + "\n"
        for i, (out, _) in enumerate(pairs)), encoding="utf-8")
    code = main(["-q", "grade", str(tmp_path / "suite.yaml"), "--predictions", str(tmp_path / "preds.jsonl"),
                 "--run-dir", str(tmp_path / "run")] + ([] if report else ["--no-report"]))
    if code != 0:
        return code, {}
    results, _ = load_results(tmp_path / "run")
    return code, results["models"][0]["epochs"][0]["tasks"][task]


def test_free_text_chinese_is_detected_stored_and_scored_for_chinese(tmp_path):
    code, task = _grade(tmp_path, ZH, report=True)
    assert code == 0
    assert task["language"] == {"language": "zh", "source": "detected", "script": "han", "shares": {"han": 1.0}}
    hyps, refs = [h for h, _ in ZH], [[r for _, r in ZH]]
    m = task["metrics"]
    assert m["bleu"]["score"] == pytest.approx(BLEU(tokenize="zh").corpus_score(hyps, refs).score, abs=1e-9)
    assert "|tok:zh|" in m["bleu"]["signature"]
    assert m["ter"]["score"] == pytest.approx(TER(asian_support=True).corpus_score(hyps, refs).score, abs=1e-9)
    assert "|asian:yes|" in m["ter"]["signature"]
    chars = type("Chars", (), {"tokenize": lambda self, t: [c for c in t if "\u4e00" <= c <= "\u9fff"]})()
    scorer = RougeScorer(["rouge1"], tokenizer=chars)
    expected = 100 * sum(scorer.score(r, h)["rouge1"].fmeasure for h, r in ZH) / len(ZH)
    assert m["rouge1"]["score"] == pytest.approx(expected) and expected > 60
    assert m["rouge1"]["signature"].startswith("rouge1|tokenizer:char|")
    # the report shows the tokenizer next to the score
    html = (tmp_path / "run" / "report.html").read_text(encoding="utf-8")
    assert "bleu <span class=\"muted\">↑ tok:zh</span>" in html
    assert "ter <span class=\"muted\">↓ tok:tercom+asian</span>" in html
    assert "rouge1 <span class=\"muted\">↑ tok:char</span>" in html


def test_latin_free_text_keeps_todays_scores_and_signatures(tmp_path):
    # values from the code before language-aware scoring (commit b8233d8), same five pairs
    code, task = _grade(tmp_path, FR)
    assert code == 0
    assert task["language"]["language"] is None and task["language"]["script"] == "latin"
    today = {
        "bleu": (40.24524859104347, "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0"),
        "chrf": (66.09946710745639, "nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|version:2.6.0"),
        "ter": (40.74074074074074, "nrefs:1|case:lc|tok:tercom|norm:no|punct:yes|asian:no|version:2.6.0"),
        "rouge1": (74.84848484848484, "rouge1|tokenizer:default|stemmer:no|score:F|agg:mean-of-samples|rouge-score:0.1.2"),
        "rouge2": (65.33333333333333, "rouge2|tokenizer:default|stemmer:no|score:F|agg:mean-of-samples|rouge-score:0.1.2"),
        "rougeL": (74.84848484848484, "rougeL|tokenizer:default|stemmer:no|score:F|agg:mean-of-samples|rouge-score:0.1.2"),
    }
    for name, (score, sig) in today.items():
        assert task["metrics"][name]["score"] == pytest.approx(score, abs=1e-12), name
        assert task["metrics"][name]["signature"] == f"{sig}|harness:{__version__}", name


def test_language_is_measured_once_at_load_with_the_direction_first(tmp_path):
    (tmp_path / "src.txt").write_text("I love Beijing.\nThe weather is good.\n", encoding="utf-8")
    (tmp_path / "tgt.txt").write_text("我爱北京。\n天气很好。\n", encoding="utf-8")
    (tmp_path / "s.yaml").write_text(
        "name: d\nmodels: [{path: builtin:tiny-translator}]\ntasks:\n"
        "  - {name: en-zh, data: {parallel: {source: src.txt, target: tgt.txt}, direction: en-zh},"
        " metrics: [bleu, rouge], metric_options: {bleu: {tokenize: char}}}\n", encoding="utf-8")
    (task,) = load_tasks(load_suite(tmp_path / "s.yaml"))
    assert (task.language.language, task.language.source) == ("zh", "direction")
    sigs = {m.name: m.signature() for m in task.metrics}
    assert "|tok:char|" in sigs["bleu"]                 # explicit option wins over the language
    assert sigs["rougeL"].startswith("rougeL|tokenizer:char|")


def _cli(tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness.cli", "grade", str(tmp_path / "suite.yaml"),
                           "--predictions", str(tmp_path / "preds.jsonl"), "--no-report"],
                          capture_output=True, text=True)


def test_rouge_that_would_drop_the_text_is_refused_before_grading(tmp_path):
    code, _ = _grade(tmp_path, ZH, task="zh", options="    metric_options: {rouge: {tokenizer: default}}\n")
    assert code == 2
    p = _cli(tmp_path)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr.strip() == (
        "error: task 'zh': rouge: the default tokenizer keeps only 0% of the reference characters, "
        "so ROUGE would be near 0: set metric_options.rouge.tokenizer: char")
    assert not (tmp_path / "run").exists()


def test_cyrillic_free_text_is_refused_with_the_fix(tmp_path):
    ru = [("Привет, как дела?", "Привет, как твои дела?"), ("Мы идём на пляж.", "Завтра мы идём на пляж.")]
    code, _ = _grade(tmp_path, ru, task="ru")
    assert code == 2
    assert "set metric_options.rouge.tokenizer: char" in _cli(tmp_path).stderr
    code, task = _grade(tmp_path, ru, task="ru", options="    metric_options: {rouge: {tokenizer: char}}\n")
    assert code == 0 and task["metrics"]["rouge1"]["score"] > 50
    assert task["language"]["script"] == "cyrillic" and task["language"]["language"] is None


# ------------------------------------------------------------------------------ clusters
def _clustered(tmp_path: Path, rows: list[dict], cluster: str = "doc") -> tuple[int, Path]:
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (tmp_path / "suite.yaml").write_text(
        "name: c\nmodels: [{path: builtin:tiny-translator}]\n"
        f"tasks: [{{name: t, data: {{path: rows.jsonl, cluster: {cluster}}}, metrics: [exact_match, chrf]}}]\n"
        "bootstrap: {samples: 400}\n", encoding="utf-8")
    (tmp_path / "preds.jsonl").write_text("".join(
        json.dumps({"task": "t", "id": r["id"], "output": r.get("guess", r["completion"])}) + "\n"
        for r in rows), encoding="utf-8")
    code = main(["-q", "grade", str(tmp_path / "suite.yaml"), "--predictions", str(tmp_path / "preds.jsonl"),
                 "--run-dir", str(tmp_path / "run"), "--no-report"])
    return code, tmp_path / "run"


def test_clustered_items_resample_whole_clusters_and_record_the_design_effect(tmp_path):
    # 10 documents of 8 questions, a document's answers right or wrong together (the odd documents all
    # wrong): as correlated as items get, so 8 items are worth one and the design effect is about 8
    rows = [{"id": f"d{d}q{q}", "prompt": f"doc {d} question {q}", "completion": f"answer {d} {q}",
             "guess": f"answer {d} {q}" + (" x" if d % 2 else ""), "doc": f"doc-{d}" if d % 2 else d}
            for d in range(10) for q in range(8)]
    code, run = _clustered(tmp_path, rows)
    assert code == 0
    results, _ = load_results(run)
    em = results["models"][0]["epochs"][0]["tasks"]["t"]["metrics"]["exact_match"]
    assert em["ci_method"] == "wilson" and em["design_effect"] == pytest.approx(8.0, rel=0.3)
    lo, hi = em["ci"]
    assert hi - lo > 50          # Wilson on 80 / 8 = 10 effective items, not on 80
    # what the test set can see comes from the cluster bootstrap too: 10 documents see only large drops
    power = results["models"][0]["diagnostics"]["power"]["tasks"]["t"]["exact_match"]
    assert power["mde_unpaired"] > 50
    samples = [json.loads(x) for x in (run / results["models"][0]["epochs"][0]["tasks"]["t"]["samples"])
               .read_text().splitlines()]
    assert samples[0]["cluster"] == "0" and samples[8]["cluster"] == "doc-1"


@pytest.mark.parametrize("bad, message", [
    ({"doc": None}, "field 'doc' (data.cluster) must be a string or an integer, not null"),
    ({"doc": [1]}, "must be a string or an integer, not [1]"),
    ("drop", "no field 'doc', which data.cluster names"),
])
def test_a_row_without_a_usable_cluster_field_is_one_error_with_its_line(tmp_path, capsys, bad, message):
    rows = [{"id": f"r{i}", "prompt": "p", "completion": "c", "doc": i // 2} for i in range(6)]
    if bad == "drop":
        del rows[3]["doc"]
    else:
        rows[3].update(bad)
    code, run = _clustered(tmp_path, rows)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and f"rows.jsonl:4: " in err[0] and message in err[0]
    assert not run.exists()


def test_cluster_on_a_source_without_fields_is_refused_at_load(tmp_path, capsys):
    (tmp_path / "suite.yaml").write_text(
        "name: c\nmodels: [{path: builtin:tiny-translator}]\n"
        "tasks: [{name: t, data: {synthetic: {n: 4}, cluster: doc}}]\n", encoding="utf-8")
    assert main(["-q", "grade", str(tmp_path / "suite.yaml"), "--run-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "synthetic data have none" in err and "suite.yaml" in err


def test_two_sampled_gradings_of_one_model_agree_and_record_their_seed(tiny_model_dir, tmp_path, capsys):
    """do_sample grading is seeded by generation.seed (unset: train.seed, else 0): the same outputs twice."""
    import json

    from harness.cli import main

    (tmp_path / "val.jsonl").write_text("".join(
        json.dumps({"id": f"s{i}", "prompt": f"Translate English to French:\n{src}", "completion": ref}) + "\n"
        for i, (src, ref) in enumerate([("The cat sleeps.", "Le chat dort."), ("The dog eats.", "Le chien mange."),
                                        ("A red apple.", "Une pomme rouge."), ("The house.", "La maison.")])))

    def grade(run: str, seed: str = "") -> tuple[list[str], dict]:
        (tmp_path / "s.yaml").write_text(
            f"name: s\nmodels: [{{path: {tiny_model_dir}}}]\ntasks:\n  - name: en-fr\n    data: {{path: val.jsonl}}\n"
            f"    metrics: [chrf]\n    generation: {{do_sample: true, temperature: 2.0, max_new_tokens: 12{seed}}}\n"
            "bootstrap: {samples: 10}\n")
        assert main(["-q", "grade", str(tmp_path / "s.yaml"), "--run-dir", str(tmp_path / run), "--no-report"]) == 0, \
            capsys.readouterr().err
        task = json.loads((tmp_path / run / "results.json").read_text())["models"][0]["epochs"][0]["tasks"]["en-fr"]
        rows = (tmp_path / run / task["samples"]).read_text().splitlines()
        return [json.loads(r)["output"] for r in rows], task

    first, task = grade("a")
    again, _ = grade("b")
    assert again == first and task["generation_seed"] == 0
    other, task = grade("c", ", seed: 5")
    assert other != first and task["generation_seed"] == 5
