"""`harness gate` on real run directories graded with the real metric objects (tests/run_fixtures.py)."""
from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from harness.gate import GateError, evaluate_gates, load_gates_file, render_markdown, run_gate, write_junit
from harness.metrics.exact_match import exact_match
from harness.results import load_results
from run_fixtures import damage, make_run, sentences

N = 40
REFS = {"en-fr": sentences(N, seed=1), "fr-en": sentences(N, seed=2)}


def outputs(enfr_rate: float, fren_rate: float, seed: int) -> dict:
    return {"en-fr": damage(REFS["en-fr"], enfr_rate, seed), "fr-en": damage(REFS["fr-en"], fren_rate, seed + 100)}


def training_run(root: Path, *, forget: float = 0.12, enfr_final: float = 0.15, seed: int = 0, **kw) -> Path:
    """en-fr improves over 2 epochs (it is trained); fr-en stays near epoch 0 or degrades by `forget`."""
    return make_run(root, {0: outputs(0.6, 0.1, seed), 1: outputs(0.3, 0.1 + forget / 2, seed + 1),
                           2: outputs(enfr_final, 0.1 + forget, seed + 2)}, REFS, **kw)


def gate(tmp_path: Path, results: Path, **kw) -> tuple[int, str, Path, Path]:
    out, err = io.StringIO(), io.StringIO()   # the table on stdout, errors on stderr: both read here
    junit, md = tmp_path / "gate.xml", tmp_path / "gate.md"
    code = run_gate(results, junit=junit, markdown=md, console=Console(file=out, width=240),
                    errors=Console(file=err, width=240), **kw)
    return code, out.getvalue() + err.getvalue(), junit, md


def verdicts_of(root: Path) -> dict:
    return load_results(root)[0]["gates"]


def parse_junit(path: Path) -> ET.Element:
    root = ET.fromstring(path.read_bytes())  # well-formed, with the XML declaration
    assert root.tag == "testsuites"
    (suite,) = root.findall("testsuite")
    cases = suite.findall("testcase")
    for attr in ("tests", "failures", "errors", "skipped"):
        assert int(suite.get(attr)) == int(root.get(attr))
    assert int(suite.get("tests")) == len(cases)
    assert int(suite.get("failures")) == sum(c.find("failure") is not None for c in cases)
    assert int(suite.get("errors")) == sum(c.find("error") is not None for c in cases)
    assert int(suite.get("skipped")) == sum(c.find("skipped") is not None for c in cases)
    for c in cases:
        assert c.get("name") and c.get("classname") and float(c.get("time")) >= 0
        for child in c:
            assert child.tag in ("failure", "error", "skipped", "system-out")
            if child.tag in ("failure", "error", "skipped"):
                assert child.get("message")
    return suite


def markdown_table(text: str) -> list[list[str]]:
    """Render with a GFM table parser; return header + body rows as lists of cell texts."""
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").enable("table").parse(text)
    assert [t.type for t in tokens].count("table_open") == 1
    rows, row = [], None
    for t in tokens:
        if t.type == "tr_open":
            row = []
        elif t.type == "inline" and row is not None:
            row.append(t.content)
        elif t.type == "tr_close":
            rows.append(row)
            row = None
    assert len({len(r) for r in rows}) == 1, "every row has as many cells as the header"
    return rows


# --------------------------------------------------------------------------------- verdicts
def test_pass_writes_junit_markdown_and_verdicts(tmp_path):
    root = training_run(tmp_path / "run", forget=0.0, gates=[
        {"task": "en-fr", "metric": "bleu", "min": 25},
        {"task": "fr-en", "metric": "bleu", "max_drop_from_base": 5},
        {"task": "en-fr", "metric": "ter", "max": 60, "max_drop_from_base": 0},
    ], metrics=("bleu", "chrf", "ter"))
    code, out, junit, md = gate(tmp_path, root)
    assert code == 0, out
    assert "PASS" in out and "en-fr/bleu >= 25 (best)" in out
    suite = parse_junit(junit)
    assert len(suite.findall("testcase")) == 4 and suite.get("failures") == "0"
    rows = markdown_table(md.read_text())
    assert rows[0][:2] == ["result", "gate"] and len(rows) == 1 + 4
    assert all(r[0].endswith("pass") for r in rows[1:])
    stored = verdicts_of(root)
    assert stored["verdict"]["status"] == "pass" and stored["passed"] is True
    assert [g["kind"] for g in stored["gates"]] == ["min", "max_drop_from_base", "max", "max_drop_from_base"]
    for g in stored["gates"]:
        assert set(g) >= {"name", "task", "metric", "model", "checkpoint", "epoch", "kind", "value", "threshold",
                          "reference_value", "delta", "p_value", "passed", "mode", "message"}
        assert g["epoch"] == 2 and g["checkpoint"] == "best"
    ter = stored["gates"][3]  # ter fell (improved) on the trained direction: a negative drop
    assert ter["delta"] < 0 and ter["drop"] < 0 and ter["mode"] == "paired-test" and ter["p_value"] > 0.5


def test_fail_on_threshold(tmp_path):
    root = training_run(tmp_path / "run", gates=[{"task": "en-fr", "metric": "bleu", "min": 90},
                                                 {"task": "en-fr", "metric": "chrf", "min": 10}])
    code, out, junit, md = gate(tmp_path, root)
    assert code == 1
    suite = parse_junit(junit)
    failing = [c for c in suite.findall("testcase") if c.find("failure") is not None]
    assert [c.get("name") for c in failing] == ["en-fr/bleu >= 90 (best)"]
    assert "< min 90" in failing[0].find("failure").get("message")
    rows = markdown_table(md.read_text())
    assert rows[1][0].endswith("fail") and rows[2][0].endswith("pass")
    stored = verdicts_of(root)
    assert stored["verdict"]["status"] == "fail"
    assert stored["verdict"]["summary"].startswith("1 of 2 gates failed: en-fr/bleu")


def test_fail_on_significant_regression(tmp_path):
    gates = [{"task": "en-fr", "metric": "bleu", "max_drop_from_baseline": 1}]
    base = training_run(tmp_path / "base", enfr_final=0.15, seed=0, gates=gates)
    new = training_run(tmp_path / "new", enfr_final=0.5, seed=10, gates=gates)
    code, out, junit, _ = gate(tmp_path, new, baseline_path=base)
    assert code == 1, out
    (g,) = verdicts_of(new)["gates"]
    assert g["mode"] == "paired-test" and not g["passed"]
    assert g["drop"] > 1 and g["p_value"] < 0.05 and g["paired_items"] == N
    assert g["reference"] == "baseline epoch 2" and "significant" in g["message"]
    assert parse_junit(junit).get("failures") == "1"


def test_a_file_that_does_not_say_the_direction_gets_the_metrics_own(tmp_path):
    """TER is lower-is-better: read as higher-is-better, the regression below would pass."""
    gates = [{"task": "en-fr", "metric": "ter", "max_drop_from_baseline": 1}]
    base = training_run(tmp_path / "base", enfr_final=0.15, seed=0, metrics=("bleu", "ter"), gates=gates)
    new = training_run(tmp_path / "new", enfr_final=0.5, seed=10, metrics=("bleu", "ter"), gates=gates)
    for root in (base, new):
        raw = json.loads((root / "results.json").read_text())
        for e in raw["models"][0]["epochs"]:
            for m in e["tasks"]["en-fr"]["metrics"].values():
                del m["higher_is_better"]
        (root / "results.json").write_text(json.dumps(raw))
    code, out, _, _ = gate(tmp_path, new, baseline_path=base)
    assert code == 1, out
    (g,) = verdicts_of(new)["gates"]
    assert g["higher_is_better"] is False and g["drop"] > 1 and not g["passed"]


def _few_changed(rate: float, k: int) -> dict:
    """Baseline epoch-2 outputs with `k` items made worse."""
    outs = outputs(0.15, 0.1, 2)
    outs["en-fr"] = outs["en-fr"][:]
    worse = damage(REFS["en-fr"], 0.9, seed=99)
    for i in range(k):
        outs["en-fr"][i * 7] = worse[i * 7]
    return outs


@pytest.mark.parametrize("variant", ["different-seed", "few-changed-items"])
def test_pass_on_insignificant_difference(tmp_path, variant):
    gates = [{"task": "en-fr", "metric": "bleu", "max_drop_from_baseline": 0.0}]
    base = make_run(tmp_path / "base", {0: outputs(0.6, 0.1, 0), 2: outputs(0.15, 0.1, 2)}, REFS, gates=gates)
    if variant == "different-seed":  # same model quality, other sampling noise
        new_epochs = {0: outputs(0.6, 0.1, 0), 2: outputs(0.15, 0.1, 5)}
    else:  # two of forty outputs changed for the worse
        new_epochs = {0: outputs(0.6, 0.1, 0), 2: _few_changed(0.15, 2)}
    new = make_run(tmp_path / "new", new_epochs, REFS, gates=gates)
    code, out, _, _ = gate(tmp_path, new, baseline_path=base)
    (g,) = verdicts_of(new)["gates"]
    assert g["drop"] > 0, "the new run is observed worse, so only the test can pass it"
    assert code == 0, out
    assert g["passed"] and g["mode"] == "paired-test" and g["p_value"] >= 0.05
    assert "not significant" in g["message"]

    # The same comparison without per-sample data falls back to the plain threshold, and says so.
    flat = make_run(tmp_path / "flat", new_epochs, REFS, gates=gates, samples=False)
    code, out, _, md = gate(tmp_path, flat, baseline_path=base)
    (g,) = verdicts_of(flat)["gates"]
    assert code == 1 and g["mode"] == "threshold-only" and g["p_value"] is None
    assert "no per-sample data" in g["message"] and "no significance test" in g["message"]
    assert "without significance test" in verdicts_of(flat)["verdict"]["summary"]
    assert "threshold-only" in md.read_text()


def test_forgetting_budget_exceeded(tmp_path):
    root = training_run(tmp_path / "run", forget=0.35, gates=[
        {"task": "fr-en", "metric": "bleu", "max_drop_from_base": 2},
        {"task": "fr-en", "metric": "perplexity", "max_drop_from_base": 0.05},  # lower is better: a rise drops
        {"task": "fr-en", "metric": "chrf", "max_drop_from_base": 100},
    ], metrics=("bleu", "chrf", "perplexity"))
    code, out, junit, _ = gate(tmp_path, root)
    assert code == 1
    bleu_g, ppl_g, chrf_g = verdicts_of(root)["gates"]
    assert not bleu_g["passed"] and bleu_g["reference"] == "epoch 0" and bleu_g["delta"] < -2
    assert bleu_g["mode"] == "paired-test" and bleu_g["p_value"] < 0.05
    assert not ppl_g["passed"] and ppl_g["delta"] > 0.05 and ppl_g["drop"] == pytest.approx(ppl_g["delta"])
    assert chrf_g["passed"], "within a generous budget"
    assert parse_junit(junit).get("failures") == "2"


def test_paired_gates_share_one_false_alarm_rate(tmp_path):
    """Holm over every gate that ran a paired test: each decides on its adjusted p, the raw one is kept."""
    from harness.stats.family import holm

    root = training_run(tmp_path / "run", forget=0.35, gates=[
        {"task": "fr-en", "metric": "bleu", "max_drop_from_base": 2},
        {"task": "fr-en", "metric": "chrf", "max_drop_from_base": 0},
        {"task": "en-fr", "metric": "bleu", "max_drop_from_base": 0},
        {"task": "fr-en", "metric": "usability", "max_drop_from_base": 0},
    ])
    gate(tmp_path, root)
    gates = verdicts_of(root)["gates"]
    tested = [g for g in gates if g["mode"] == "paired-test"]
    assert len(tested) == 4
    assert [g["p_adjusted"] for g in tested] == pytest.approx(holm([g["p_value"] for g in tested]))
    assert all(g["p_adjusted"] >= g["p_value"] for g in tested)
    assert "Holm-adjusted over 4 gate tests" in tested[0]["message"]
    usab = next(g for g in tested if g["metric"] == "usability")
    assert usab["test"] == "one-sided exact McNemar"
    assert not gates[0]["passed"] and gates[2]["passed"]       # fr-en forgotten, en-fr (trained) improved


def test_regression_gate_without_baseline_is_skipped(tmp_path):
    root = training_run(tmp_path / "run", gates=[{"task": "en-fr", "metric": "bleu", "min": 10,
                                                  "max_drop_from_baseline": 1}])
    code, out, junit, md = gate(tmp_path, root)
    assert code == 0
    skipped = verdicts_of(root)["gates"][1]
    assert skipped["status"] == "skipped" and "--baseline" in skipped["message"]
    suite = parse_junit(junit)
    assert suite.get("skipped") == "1"
    assert "1 skipped" in verdicts_of(root)["verdict"]["summary"]
    assert markdown_table(md.read_text())[2][0].endswith("skipped")


def test_checkpoint_best_last_and_named(tmp_path):
    # en-fr peaks at epoch 1 (best by the default en-fr/bleu), epoch 2 is worse.
    root = make_run(tmp_path / "run", {0: outputs(0.6, 0.1, 0), 1: outputs(0.1, 0.1, 1), 2: outputs(0.4, 0.1, 2)},
                    REFS)
    results, run = load_results(root)
    assert results["models"][0]["best"]["epoch"] == 1
    specs = [{"task": "en-fr", "metric": "bleu", "min": 0, "checkpoint": c} for c in ("best", "last", 0)]
    v = evaluate_gates(results, run, specs)
    assert [g["epoch"] for g in v["gates"]] == [1, 2, 0]
    scores = [e["tasks"]["en-fr"]["metrics"]["bleu"]["score"] for e in results["models"][0]["epochs"]]
    assert [g["value"] for g in v["gates"]] == [scores[1], scores[2], scores[0]]
    with pytest.raises(GateError, match=r"gate 1 \(en-fr/bleu\): model 'tiny-translator' has no epoch 7"):
        evaluate_gates(results, run, [{"task": "en-fr", "metric": "bleu", "min": 0, "checkpoint": 7}])


# ------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("spec, message", [
    ({"task": "de-en", "metric": "bleu", "min": 1}, "task 'de-en' not in the results"),
    ({"task": "en-fr", "metric": "blue", "min": 1}, "metric 'blue' not graded on task 'en-fr' in the results; "
                                                    "did you mean 'bleu'?"),
])
def test_missing_task_or_metric_is_bad_input(tmp_path, spec, message):
    root = training_run(tmp_path / "run", gates=[{"task": "en-fr", "metric": "bleu", "min": 1}, spec])
    code, out, junit, md = gate(tmp_path, root)
    assert code == 2
    assert message in out and "gate 2 (" in out
    assert len(out.strip().splitlines()) == 1, "one line, no traceback"
    assert verdicts_of(root) is None, "nothing stored on bad input"
    suite = parse_junit(junit)  # CI still shows why
    assert suite.get("errors") == "1" and message in suite.find("testcase/error").get("message")
    assert markdown_table(md.read_text())[1][0].endswith("error")


def test_missing_metric_in_baseline_is_bad_input(tmp_path):
    gates = [{"task": "en-fr", "metric": "ter", "max_drop_from_baseline": 1}]
    base = training_run(tmp_path / "base", metrics=("bleu",))
    new = training_run(tmp_path / "new", metrics=("bleu", "ter"), gates=gates)
    code, out, _, _ = gate(tmp_path, new, baseline_path=base)
    assert code == 2 and "metric 'ter' not graded on task 'en-fr' in the baseline" in out


@pytest.mark.parametrize("which", ["results", "baseline"])
def test_newer_schema_version_is_a_clear_error(tmp_path, which):
    gates = [{"task": "en-fr", "metric": "bleu", "min": 1, "max_drop_from_baseline": 1}]
    newer = training_run(tmp_path / "newer", gates=gates, schema_version=99)
    ok = training_run(tmp_path / "ok", gates=gates)
    results, baseline = (newer, ok) if which == "results" else (ok, newer)
    code, out, _, _ = gate(tmp_path, results, baseline_path=baseline)
    assert code == 2
    assert "results schema version 99 is newer than this harness reads (1): upgrade harness" in out
    assert str(newer / "results.json") in out


def test_unversioned_or_missing_results_are_bad_input(tmp_path):
    (tmp_path / "x.json").write_text(json.dumps({"models": []}))
    assert gate(tmp_path, tmp_path / "x.json")[0] == 2
    code, out, _, _ = gate(tmp_path, tmp_path / "nope")
    assert code == 2 and "results file not found" in out


def test_no_gates_is_bad_input(tmp_path):
    root = training_run(tmp_path / "run")
    code, out, _, _ = gate(tmp_path, root)
    assert code == 2 and "defines no gates" in out and "--gates" in out


def test_signature_mismatch_with_baseline_is_bad_input(tmp_path):
    gates = [{"task": "en-fr", "metric": "bleu", "max_drop_from_baseline": 1}]
    base = training_run(tmp_path / "base", metric_options={"en-fr": {"bleu": {"tokenize": "char"}}})
    new = training_run(tmp_path / "new", gates=gates)
    code, out, _, _ = gate(tmp_path, new, baseline_path=base)
    assert code == 2 and "signatures differ" in out and "tok:char" in out


@pytest.mark.parametrize("old_version, said", [("|harness:0.0.9", "0.0.9"), ("", "before 0.1.0")])
def test_a_baseline_from_another_harness_version_is_compared_with_a_note(tmp_path, old_version, said):
    """The signature's harness part says who computed a score, not how: only that part differs."""
    from harness import __version__

    gates = [{"task": "en-fr", "metric": "bleu", "max_drop_from_baseline": 1}]
    base, new = training_run(tmp_path / "base"), training_run(tmp_path / "new", gates=gates)
    path = base / "results.json"
    raw = json.loads(path.read_text())
    for e in raw["models"][0]["epochs"]:
        for m in e["tasks"]["en-fr"]["metrics"].values():
            assert m["signature"].endswith(f"|harness:{__version__}")
            m["signature"] = m["signature"].replace(f"|harness:{__version__}", old_version)
    path.write_text(json.dumps(raw))
    code, out, _, _ = gate(tmp_path, new, baseline_path=base)
    assert code == 0, out
    assert f"baseline graded by harness {said}, results by {__version__}" in verdicts_of(new)["verdict"]["summary"]


# ---------------------------------------------------------------------------- gates file
def test_gates_file_yaml_and_json_override_suite_gates(tmp_path):
    root = training_run(tmp_path / "run", gates=[{"task": "en-fr", "metric": "bleu", "min": 99}])
    yml = tmp_path / "gates.yaml"
    yml.write_text("gates:\n  - task: en-fr\n    metric: bleu\n    min: 20\n    checkpoint: last\n")
    code, _, _, _ = gate(tmp_path, root, gates_path=yml)
    assert code == 0 and verdicts_of(root)["source"] == str(yml)
    js = tmp_path / "gates.json"
    js.write_text(json.dumps({"gates": [{"task": "en-fr", "metric": "chrf", "min": 99}]}))
    assert gate(tmp_path, root, gates_path=js)[0] == 1
    assert gate(tmp_path, root)[0] == 1  # the suite's own gate


@pytest.mark.parametrize("text, message", [
    ("gates:\n  - task: en-fr\n    metric: bleu\n    mni: 3\n", "gates.yaml:4: unknown key 'gates.0.mni': did you mean 'min'?"),
    ("gates:\n  - task: en-fr\n    metric: bleu\n    min: high\n", "gates.yaml:4: field 'gates.0.min'"),
    ("gates:\n  - task: en-fr\n    metric: bleu\n", "gates.yaml:2: gate 'gates.0' (en-fr/bleu) sets none of min"),
    ("gates:\n  - task: en-fr\n    metric: bleu\n    min: 1\n    checkpoint: first\n", "gates.yaml:5: field 'gates.0.checkpoint': checkpoint is 'best', 'last' or an epoch number (got 'first')"),
    ("gates: []\n", "gates.yaml: `gates` is empty"),
    ("- task: en-fr\n", "gates.yaml: a gates file is a mapping with a top-level `gates:` list"),
    ("gates: [\n", "gates.yaml:2: not valid YAML"),
])
def test_gates_file_errors_name_file_line_and_field(tmp_path, text, message):
    p = tmp_path / "gates.yaml"
    p.write_text(text)
    with pytest.raises(GateError) as e:
        load_gates_file(p)
    assert message in str(e.value) and "\n" not in str(e.value)
    root = training_run(tmp_path / "run")
    code, out, _, _ = gate(tmp_path, root, gates_path=p)
    assert code == 2 and message in out


# ------------------------------------------------------------------------------- pairing
def test_pairs_items_by_id_and_says_when_some_differ(tmp_path):
    gates = [{"task": "en-fr", "metric": "bleu", "max_drop_from_baseline": 1}]
    base = training_run(tmp_path / "base")
    renamed = [f"en-fr-{i:05d}" for i in range(N)]
    renamed[:3] = ["new-a", "new-b", "new-c"]
    new = training_run(tmp_path / "new", seed=0, gates=gates, ids={"en-fr": renamed})
    code, out, _, _ = gate(tmp_path, new, baseline_path=base)
    (g,) = verdicts_of(new)["gates"]
    assert code == 0 and g["paired_items"] == N - 3
    assert f"paired on {N - 3} shared item ids only (3 only in the gated run, 3 only in the reference)" in g["message"]
    # identical outputs on the shared items: no difference at all
    assert g["paired_delta"] == pytest.approx(0.0) and g["p_value"] == pytest.approx(1.0)


def test_rows_are_paired_by_id_not_by_position(tmp_path):
    gates = [{"task": "en-fr", "metric": "bleu", "max_drop_from_baseline": 0}]
    base = make_run(tmp_path / "base", {0: outputs(0.3, 0.1, 0)}, REFS)
    order = list(range(N))[::-1]
    rev_refs = {"en-fr": [REFS["en-fr"][i] for i in order], "fr-en": REFS["fr-en"]}
    outs = outputs(0.3, 0.1, 0)
    new = make_run(tmp_path / "new", {0: {"en-fr": [outs["en-fr"][i] for i in order], "fr-en": outs["fr-en"]}},
                   rev_refs, ids={"en-fr": [f"en-fr-{i:05d}" for i in order]}, gates=gates)
    assert gate(tmp_path, new, baseline_path=base)[0] == 0
    (g,) = verdicts_of(new)["gates"]
    assert g["paired_delta"] == pytest.approx(0.0) and g["p_value"] == pytest.approx(1.0) and g["paired_items"] == N


# ---------------------------------------------------------------------------- formats etc
def test_markdown_escapes_pipes_and_stays_one_table():
    v = {"passed": False, "verdict": {"status": "fail", "summary": "a | b"}, "model": "m|x", "suite_name": "s",
         "gates": [{"name": "t|1/bleu >= 1 (best)", "task": "t|1", "metric": "bleu", "checkpoint": "best", "epoch": 2,
                    "kind": "min", "value": 0.5, "threshold": 1.0, "reference_value": None, "delta": None,
                    "p_value": None, "passed": False, "status": "fail", "mode": "threshold-only",
                    "message": "bleu 0.50 < min 1 | with\na newline"}]}
    rows = markdown_table(render_markdown(v))
    assert len(rows) == 2 and "bleu 0.50 < min 1 | with a newline" in rows[1][-1]


def test_junit_escapes_markup(tmp_path):
    v = {"passed": False, "verdict": {"status": "fail", "summary": "<&>"},
         "gates": [{"name": 'a<b & "c"', "task": "t", "status": "fail", "message": "x < y & z", "passed": False}]}
    suite = parse_junit(write_junit(v, tmp_path / "j.xml"))
    case = suite.find("testcase")
    assert case.get("name") == 'a<b & "c"' and case.find("failure").get("message") == "x < y & z"


def test_cli_gate_exit_codes(tmp_path):
    from harness.cli import main

    root = training_run(tmp_path / "run", gates=[{"task": "en-fr", "metric": "bleu", "min": 25}])
    junit = tmp_path / "cli.xml"
    assert main(["gate", str(root), "--junit", str(junit), "--markdown", str(tmp_path / "cli.md")]) == 0
    assert parse_junit(junit).get("tests") == "1"
    gates = tmp_path / "g.yaml"
    gates.write_text("gates:\n  - {task: en-fr, metric: bleu, min: 99}\n")
    assert main(["gate", str(root / "results.json"), "--gates", str(gates)]) == 1
    assert main(["gate", str(root), "--baseline", str(tmp_path / "missing")]) == 2


def test_write_back_keeps_results_readable_and_report_verdict(tmp_path):
    from reports.collect import verdict

    root = training_run(tmp_path / "run", gates=[{"task": "en-fr", "metric": "bleu", "min": 99}])
    before = load_results(root)[0]
    assert gate(tmp_path, root)[0] == 1
    after = load_results(root)[0]
    assert after["models"] == before["models"] and after["suite"] == before["suite"]
    assert verdict(after["gates"])["status"] == "fail"
    assert gate(tmp_path, root, write_back=False)[0] == 1 and load_results(root)[0]["gates"] == after["gates"]


# ------------------------------------------------------------------------- any metric, models
def test_every_metric_is_reaggregated_from_stats_for_the_paired_test(tmp_path):
    refs = {"extract": [json.dumps({"name": f"item {i}", "qty": i}) for i in range(30)]}
    good = refs["extract"]
    bad = [r if i % 3 else r[:-3] for i, r in enumerate(good)]  # every third output is broken JSON
    schema = {"type": "object", "required": ["name", "qty"]}
    names = ["json_valid", "json_schema_valid", "rouge1", "rouge2", "rougeL", "exact_match", "chrf", "usability",
             "perplexity", "loss"]
    gates = [{"task": "extract", "metric": m, "max_drop_from_base": 0, "checkpoint": "last"} for m in names]
    root = make_run(tmp_path / "run", {0: {"extract": good}, 1: {"extract": bad}}, refs, gates=gates,
                    metrics=("json_validity", "rouge", "exact_match", "chrf", "usability", "perplexity"),
                    metric_options={"extract": {"json_validity": {"schema": schema}}},
                    finish_reason=lambda task, epoch, i, out: "length" if epoch == 1 and i % 3 == 0 else "eos")
    code, out, _, _ = gate(tmp_path, root)
    assert code == 1
    got = {g["metric"]: g for g in verdicts_of(root)["gates"]}
    assert set(got) == set(names)
    for m, g in got.items():
        assert g["mode"] == "paired-test", (m, g["message"])
        assert g["drop"] > 0 and g["p_value"] < 0.05 and not g["passed"], (m, g["message"])
    assert got["json_valid"]["value"] == pytest.approx(200 / 3)
    assert got["perplexity"]["delta"] > 0 and got["loss"]["delta"] > 0  # lower is better: rises are drops


def test_gates_the_named_model_and_matches_the_baseline_model_by_name(tmp_path):
    gates = [{"task": "en-fr", "metric": "bleu", "min": 50, "max_drop_from_baseline": 1}]
    good, bad = {0: outputs(0.1, 0.1, 0)}, {0: outputs(0.6, 0.1, 0)}
    root = make_run(tmp_path / "run", None, REFS, models={"a": bad, "b": good}, gates=gates)
    base = make_run(tmp_path / "base", None, REFS, models={"b": good, "a": good})
    assert gate(tmp_path, root, baseline_path=base)[0] == 1  # the first model, "a", is the bad one
    v = verdicts_of(root)
    assert v["model"] == "a" and all(g["model"] == "a" for g in v["gates"])
    assert gate(tmp_path, root, baseline_path=base, model="b")[0] == 0
    assert verdicts_of(root)["gates"][1]["paired_delta"] == pytest.approx(0.0)
    code, out, _, _ = gate(tmp_path, root, model="zzz")
    assert code == 2 and "no model 'zzz' in results (have: a, b)" in out
    other = make_run(tmp_path / "other", None, REFS, models={"c": good, "d": good})
    code, out, _, _ = gate(tmp_path, root, baseline_path=other)
    assert code == 2 and "baseline has no model 'a'" in out


def test_grade_runs_the_suite_gates_and_stores_them(tmp_path):
    """`harness grade` of a predictions file (no model) gates with the suite's gates; the report's
    header verdict then reads them from results.json."""
    from harness.cli import main

    rows = [{"id": f"s{i}", "prompt": f"source {i}", "completion": r} for i, r in enumerate(REFS["en-fr"][:12])]
    (tmp_path / "val.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    suite = tmp_path / "suite.yaml"
    suite.write_text("name: g\nmodels: [{path: builtin:tiny-translator}]\n"
                     "tasks: [{name: en-fr, data: {path: val.jsonl}, metrics: [bleu, perplexity]}]\n"
                     "gates: [{task: en-fr, metric: bleu, min: 50}, {task: en-fr, metric: bleu, max_drop_from_base: 1}]\n")
    preds = tmp_path / "preds.jsonl"
    preds.write_text("".join(json.dumps({"task": "en-fr", "id": r["id"], "output": r["completion"]}) + "\n"
                             for r in rows))
    run_dir = tmp_path / "run"
    assert main(["-q", "grade", str(suite), "--predictions", str(preds), "--run-dir", str(run_dir),
                 "--no-report"]) == 0
    stored = verdicts_of(run_dir)
    assert stored["verdict"]["status"] == "pass" and [g["epoch"] for g in stored["gates"]] == [0, 0]
    # perplexity was skipped (no likelihood): gating it is bad input with the reason
    bad = tmp_path / "bad.yaml"
    bad.write_text("gates: [{task: en-fr, metric: perplexity, max: 10}]\n")
    code, out, _, _ = gate(tmp_path, run_dir, gates_path=bad)
    assert code == 2 and "metric 'perplexity' on task 'en-fr' was not computed" in out and "likelihood" in out


# ---------------------------------------------------------------- refusals (harness/gate/checks.py)
def _graded(tmp_path: Path, name: str, refs: list[str], outputs: list[str], *, extra: list[dict] = (),
            gates: str = "", args: tuple = ()) -> tuple[int, Path]:
    """A real run of `harness grade --predictions` (no model): data from `refs`, outputs as given."""
    from harness.cli import main

    d = tmp_path / name
    d.mkdir()
    (d / "val.jsonl").write_text("".join(json.dumps({"id": f"s{i}", "prompt": f"source {i}", "completion": r}) + "\n"
                                         for i, r in enumerate(refs)))
    (d / "suite.yaml").write_text("name: g\nmodels: [{path: builtin:tiny-translator}]\n"
                                  "tasks: [{name: en-fr, data: {path: val.jsonl}, metrics: [bleu]}]\n" + gates)
    (d / "preds.jsonl").write_text("".join(json.dumps({"task": "en-fr", "id": f"s{i}", "output": o}) + "\n"
                                           for i, o in enumerate(outputs))
                                   + "".join(json.dumps(r) + "\n" for r in extra))
    code = main(["-q", "grade", str(d / "suite.yaml"), "--predictions", str(d / "preds.jsonl"),
                 "--run-dir", str(d / "run"), "--no-report", *args])
    return code, d / "run"


def _cli(capsys, *argv) -> tuple[int, str, str]:
    from harness.cli import main

    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


DROP = "gates: [{task: en-fr, metric: bleu, max_drop_from_baseline: 5}]\n"


def test_gate_refuses_a_run_that_is_not_complete_unless_allowed(tmp_path, capsys):
    root = training_run(tmp_path / "run", gates=[{"task": "en-fr", "metric": "bleu", "min": 1}])
    results = json.loads((root / "results.json").read_text())
    results["status"] = "running"
    (root / "results.json").write_text(json.dumps(results))
    code, out, err = _cli(capsys, "gate", str(root))
    assert code == 2 and out == ""
    # 'running' with no process record (written by hand here): its state is unknown, not live
    assert err.strip() == f"error: {root / 'results.json'}: run unknown (says running but records no process " \
                          f"(older harness): it may be stale), not complete: gate a finished run " \
                          f"(or pass --allow-incomplete)"
    code, out, err = _cli(capsys, "gate", str(root), "--allow-incomplete")
    assert code == 0 and err == ""
    assert verdicts_of(root)["verdict"]["summary"] == "all 1 gate passed; run unknown, allowed"
    assert verdicts_of(root)["allowed"] == ["incomplete"]


def test_gate_refuses_a_baseline_graded_on_other_items_or_references(tmp_path, capsys):
    refs = REFS["en-fr"][:12]
    code, base = _graded(tmp_path, "base", refs, refs, gates=DROP)
    assert code == 0
    same_code, same = _graded(tmp_path, "same", refs, damage(refs, 0.1, seed=3), gates=DROP)
    other_refs = refs[:11] + ["Une toute autre phrase de référence."]
    other_code, other = _graded(tmp_path, "other", other_refs, damage(refs, 0.1, seed=3), gates=DROP)
    hashes = [load_results(r)[0]["models"][0]["epochs"][0]["tasks"]["en-fr"]["data_hash"] for r in (base, same, other)]
    assert hashes[0] == hashes[1] != hashes[2] and hashes[0].startswith("sha256:") and len(hashes[0]) == 71

    assert _cli(capsys, "gate", str(same), "--baseline", str(base))[0] in (0, 1)   # same data: a verdict
    code, out, err = _cli(capsys, "gate", str(other), "--baseline", str(base))
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "was graded on different items or references" in err and "--allow-different-data" in err
    code, out, err = _cli(capsys, "gate", str(other), "--baseline", str(base), "--allow-different-data")
    assert code in (0, 1) and "graded on different data, allowed" in verdicts_of(other)["verdict"]["summary"]


def test_predictions_with_their_own_references_are_recorded_flagged_and_refused_by_the_gate(tmp_path, capsys):
    from reports.collect import load_series, verdicts

    refs = REFS["en-fr"][:12]
    outputs = damage(refs, 0.2, seed=1)
    gates = "gates: [{task: en-fr, metric: bleu, min: 1}]\n"
    rows = [{"task": "en-fr", "id": f"s{i}", "output": o} for i, o in enumerate(outputs)]
    rows[0]["reference"] = outputs[0]    # s0 graded against its own output
    d = tmp_path / "own2"
    d.mkdir()
    (d / "val.jsonl").write_text("".join(json.dumps({"id": f"s{i}", "prompt": "p", "completion": r}) + "\n"
                                         for i, r in enumerate(refs)))
    (d / "suite.yaml").write_text("name: g\nmodels: [{path: builtin:tiny-translator}]\n"
                                  "tasks: [{name: en-fr, data: {path: val.jsonl}, metrics: [bleu]}]\n" + gates)
    (d / "preds.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    code, out, err = _cli(capsys, "-q", "grade", str(d / "suite.yaml"), "--predictions", str(d / "preds.jsonl"),
                          "--run-dir", str(d / "run"), "--no-report")
    assert code == 2 and "1 of 12 references came from the predictions file" in err   # the suite's gate refused
    task = load_results(d / "run")[0]["models"][0]["epochs"][0]["tasks"]["en-fr"]
    assert task["references_overridden"] == 1 and task["coverage"] == {"graded": 12, "total": 12}
    flagged = [v for v in verdicts(load_series([d / "run"])[0]) if v["name"] == "predictions"]
    assert flagged == [{"name": "predictions", "status": "warn",
                        "summary": "en-fr: 1 of 12 references from the predictions file"}]
    code, out, err = _cli(capsys, "gate", str(d / "run"), "--allow-overridden-references")
    assert code == 0 and "en-fr: 1 overridden references, allowed" in verdicts_of(d / "run")["verdict"]["summary"]


def test_partial_predictions_need_allow_partial_to_grade_and_to_gate(tmp_path, capsys):
    refs = REFS["en-fr"][:12]
    gates = "gates: [{task: en-fr, metric: bleu, min: 1}]\n"
    code, run = _graded(tmp_path, "part", refs, refs[:9], gates=gates)
    assert code == 2 and "no prediction for 3 of 12 items (first: s9, s10, s11)" in capsys.readouterr().err
    assert not run.exists()
    code, run = _graded(tmp_path, "part2", refs, refs[:9], gates=gates, args=("--allow-partial",))
    assert code == 0     # grade's own gate was told: the same --allow-partial
    task = load_results(run)[0]["models"][0]["epochs"][0]["tasks"]["en-fr"]
    assert task["coverage"] == {"graded": 9, "total": 12} and task["n"] == 9
    code, out, err = _cli(capsys, "gate", str(run))
    assert code == 2 and "predictions covered 9 of 12 items" in err and out == ""
    assert _cli(capsys, "gate", str(run), "--allow-partial")[0] == 0
