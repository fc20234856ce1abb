"""Forgetting and inflection diagnostics on real graded run directories (real metrics, no model).

The planted-fault tests on real training runs are in tests/test_planted_faults.py; these pin
the decision rules: threshold AND significance, best so far, smoothing, loss-vs-metric
disagreement, and what happens without per-item statistics.
"""
from __future__ import annotations

import pytest
from run_fixtures import damage, make_run, sentences

from harness.diagnose import diagnose_model, smooth
from harness.results import load_results
from harness.suite import load_suite

REFS = {"en-fr": sentences(60, seed=1), "fr-en": sentences(60, seed=2)}


def diagnose(root, **suite_overrides):
    results, run = load_results(root)
    suite = load_suite(root / "suite.yaml")
    if suite_overrides:
        suite = suite.model_copy(update=suite_overrides)
    model = results["models"][0]
    diagnose_model(model, run, suite)
    return model["diagnostics"]


def outputs(rates: dict[str, list[float]]) -> dict:
    """{task: [damage rate per epoch]} → make_run's epoch → task → outputs."""
    n = len(next(iter(rates.values())))
    return {ep: {t: damage(REFS[t], r[ep], seed=10 * ep + k) for k, (t, r) in enumerate(rates.items())}
            for ep in range(n)}


def with_train_loss(losses):
    def hook(results):
        for e in results["models"][0]["epochs"]:
            e["train_loss"] = losses[e["epoch"]] if e["epoch"] > 0 else None
    return hook


def test_forgotten_direction_is_flagged_with_interval(tmp_path):
    root = make_run(tmp_path, outputs({"en-fr": [0.7, 0.4, 0.2], "fr-en": [0.1, 0.4, 0.6]}), REFS)
    d = diagnose(root)["forgetting"]
    assert "fr-en/bleu" in d["flagged"] and "fr-en/chrf" in d["flagged"]
    assert not any(k.startswith("en-fr/") for k in d["flagged"])
    cell = d["tasks"]["fr-en"]["bleu"]["epochs"]["2"]
    assert cell["forgotten"] and cell["delta_vs_base"] < -20
    lo, hi = cell["ci"]
    assert lo <= cell["delta_vs_base"] <= hi and hi < 0 and cell["p_value"] < 0.05
    assert d["verdict"]["status"] == "fail" and "fr-en/bleu" in d["verdict"]["summary"]
    # the trained direction improves: no drop, best so far moves forward
    up = d["tasks"]["en-fr"]["bleu"]["epochs"]
    assert up["2"]["best_so_far_epoch"] == 2 and up["2"]["drop_from_best"] == 0 and not up["2"]["forgotten"]


def test_small_or_noisy_drop_is_not_forgetting(tmp_path):
    """Same quality at every epoch (different random damage): drops are noise, not forgetting."""
    root = make_run(tmp_path, outputs({"en-fr": [0.3, 0.3, 0.3], "fr-en": [0.3, 0.3, 0.3]}), REFS)
    d = diagnose(root)["forgetting"]
    # nothing flagged, but 60 items cannot see a 1-point BLEU drop: the verdict says so, never a bare pass
    assert d["flagged"] == [] and d["verdict"]["status"] == "warn"
    assert "underpowered: " in d["verdict"]["summary"] and "(60 items) sees drops ≥" in d["verdict"]["summary"] and "items needed" in d["verdict"]["summary"]
    cell = d["tasks"]["en-fr"]["bleu"]["epochs"]["2"]
    assert cell["status"] == "underpowered" and cell["mde"] > 1.0 and cell["items_needed"] > 60
    # with thresholds above every MDE the same run is a plain pass
    suite = load_suite(root / "suite.yaml")
    wide = suite.diagnostics.model_copy(update={"forgetting": suite.diagnostics.forgetting.model_copy(
        update={"threshold": 60.0, "thresholds": {"loss": 5.0}})})
    assert diagnose(root, diagnostics=wide)["forgetting"]["verdict"]["status"] == "pass"
    # with a zero threshold every noisy dip is tested: the paired bootstrap, not the threshold, keeps it quiet
    suite = load_suite(root / "suite.yaml")
    zero = suite.diagnostics.model_copy(update={"forgetting": suite.diagnostics.forgetting.model_copy(
        update={"threshold": 0.0, "thresholds": {}})})
    d0 = diagnose(root, diagnostics=zero)["forgetting"]
    dips = [c for t in ("en-fr", "fr-en") for c in d0["tasks"][t]["bleu"]["epochs"].values() if c["delta_vs_base"] < 0]
    assert dips and all(c["p_adjusted"] >= 0.05 and not c["forgotten"] for c in dips)
    assert not any(k.endswith("/bleu") for k in d0["flagged"])


def test_threshold_is_per_metric_and_in_metric_units(tmp_path):
    root = make_run(tmp_path, outputs({"en-fr": [0.2, 0.25], "fr-en": [0.2, 0.25]}), REFS)
    loose = load_suite(root / "suite.yaml").diagnostics.forgetting.model_copy(update={"threshold": 50.0})
    d = diagnose(root, diagnostics=load_suite(root / "suite.yaml").diagnostics.model_copy(
        update={"forgetting": loose}))["forgetting"]
    assert d["tasks"]["fr-en"]["bleu"]["threshold"] == 50.0
    assert not any(k.endswith(("/bleu", "/chrf")) for k in d["flagged"])
    # the per-metric table overrides the global threshold: the loss keeps its own (0.05 nats)
    assert d["tasks"]["fr-en"]["loss"]["threshold"] == 0.05 and "fr-en/loss" in d["flagged"]


def test_forgetting_without_sample_stats_is_a_warning_not_a_flag(tmp_path):
    root = make_run(tmp_path, outputs({"en-fr": [0.1, 0.6]}), {"en-fr": REFS["en-fr"]}, samples=False)
    d = diagnose(root)["forgetting"]
    assert d["flagged"] == [] and d["tasks"]["en-fr"]["bleu"]["epochs"]["1"]["forgotten"] is None
    assert d["verdict"]["status"] == "warn"


def test_inflection_found_after_peak_while_train_loss_falls(tmp_path):
    root = make_run(tmp_path, outputs({"en-fr": [0.8, 0.4, 0.1, 0.4, 0.6]}), {"en-fr": REFS["en-fr"]},
                    results_hook=with_train_loss([None, 2.0, 1.5, 1.0, 0.5]))
    inf = diagnose(root)["inflection"]
    s = inf["series"]["en-fr/bleu"]
    assert s["best_epoch"] == 2 and s["inflection_epoch"] == 2 and s["status"] == "inflection"
    assert s["decline"]["p_value"] < 0.05 and s["decline"]["delta"] < 0
    assert "en-fr/bleu" in inf["inflections"] and inf["verdict"]["status"] == "warn"
    assert "en-fr/bleu is best at epoch 2, then" in inf["verdict"]["summary"]
    assert "lower by epoch 4" in inf["verdict"]["summary"]


def test_no_inflection_when_train_loss_rises_too(tmp_path):
    """A metric that falls while training loss also rises is divergence, not overfitting."""
    root = make_run(tmp_path, outputs({"en-fr": [0.8, 0.4, 0.1, 0.4, 0.6]}), {"en-fr": REFS["en-fr"]},
                    results_hook=with_train_loss([None, 2.0, 1.5, 1.8, 2.2]))
    s = diagnose(root)["inflection"]["series"]["en-fr/bleu"]
    assert s["inflection_epoch"] is None and s["status"] == "plateau"


def test_improving_series_and_loss_metric_disagreement(tmp_path):
    def likelihood(task, epoch, i, output, reference):
        n = len(reference.split()) + 1
        return n * [2.0, 1.0, 1.2, 1.4][epoch], n   # loss best at epoch 1, BLEU keeps rising

    root = make_run(tmp_path, outputs({"en-fr": [0.8, 0.5, 0.3, 0.1]}), {"en-fr": REFS["en-fr"]},
                    likelihood=likelihood, results_hook=with_train_loss([None, 2.0, 1.0, 0.5]))
    inf = diagnose(root)["inflection"]
    assert inf["series"]["en-fr/bleu"]["status"] == "improving"
    assert inf["series"]["en-fr/loss"]["best_epoch"] == 1
    assert inf["series"]["en-fr/loss"]["inflection_epoch"] == 1
    assert {"task": "en-fr", "metric": "bleu", "metric_best_epoch": 3, "loss_best_epoch": 1} in inf["disagreements"]
    assert "validation loss is 1" in inf["verdict"]["summary"]


def test_smoothing_is_a_centred_moving_average():
    assert smooth([1.0, 4.0, 1.0, 4.0], 1) == [1.0, 4.0, 1.0, 4.0]
    assert smooth([0.0, 3.0, 6.0, None, 9.0], 3) == [1.5, 3.0, 4.5, None, 9.0]


def test_one_epoch_is_skipped_not_guessed(tmp_path):
    root = make_run(tmp_path, outputs({"en-fr": [0.5]}), {"en-fr": REFS["en-fr"]})
    d = diagnose(root)
    assert d["forgetting"]["verdict"]["status"] == "skipped"
    assert d["inflection"]["verdict"]["status"] == "skipped"


@pytest.mark.parametrize("window", [1, 3])
def test_smoothing_window_is_recorded(tmp_path, window):
    root = make_run(tmp_path, outputs({"en-fr": [0.8, 0.4, 0.1, 0.4]}), {"en-fr": REFS["en-fr"]},
                    results_hook=with_train_loss([None, 2.0, 1.5, 1.0]))
    suite = load_suite(root / "suite.yaml")
    inf = diagnose(root, diagnostics=suite.diagnostics.model_copy(update={"smoothing": window}))["inflection"]
    assert inf["smoothing"]["window"] == window
    assert len(inf["series"]["en-fr/bleu"]["smoothed"]) == 4


def test_report_shows_each_verdict_with_its_evidence(tmp_path):
    from harness.results import write_json
    from reports.html import render_report

    root = make_run(tmp_path, outputs({"en-fr": [0.8, 0.4, 0.1, 0.4], "fr-en": [0.1, 0.4, 0.6, 0.7]}), REFS,
                    results_hook=with_train_loss([None, 2.0, 1.5, 1.0]))
    results, run = load_results(root)
    model = results["models"][0]
    diagnose_model(model, run, load_suite(root / "suite.yaml"))
    model["audit"] = {"labels": {"checks": [{"name": "padding_in_loss", "status": "fail", "value": 0.4,
                                             "rule": "must be 0", "detail": "40.0% of label tokens are padding",
                                             "examples": [{"batch": 0, "row": 1}]}]},
                      "verdict": {"status": "fail", "summary": "labels.padding_in_loss: 40.0%"}}
    write_json(run.results_path, results)
    html = render_report([root]).read_text()
    section = html.split('id="diagnostics"')[1].split("</section>")[0]
    cell = model["diagnostics"]["forgetting"]["tasks"]["fr-en"]["bleu"]["epochs"]["3"]
    assert "fr-en/bleu" in section and "forgotten since epoch 1" in section
    assert f"[{cell['ci'][0]:,.2f}, {cell['ci'][1]:,.2f}]" in section        # the interval, as evidence
    assert "en-fr/bleu" in section and ">inflection<" in section                # the inflection row
    assert "labels.padding_in_loss" in section and "40.0% of label tokens are padding" in section
    header = html.split('id="summary"')[1].split("</section>")[0]
    assert "fr-en/bleu" in header and "overfitting" in header                  # verdict summaries up top


def test_schema_metric_is_rebuilt_with_the_tasks_schema(tmp_path):
    """json_schema_valid needs the task's JSON Schema to re-aggregate: the paired test must load it."""
    import json

    schema = {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}
    (tmp_path / "schema.json").write_text(json.dumps(schema))
    refs = {"person": ['{"name": "Ann"}'] * 30}
    good, bad = ['{"name": "Ann"}'] * 30, ['{"name": 3}'] * 30
    root = make_run(tmp_path / "run", {0: {"person": good}, 1: {"person": bad}}, refs, metrics=("json_validity",),
                    metric_options={"person": {"json_validity": {"schema": schema}}})
    suite = load_suite(root / "suite.yaml")
    suite = suite.model_copy(update={"base_dir": str(tmp_path), "tasks": [
        suite.tasks[0].model_copy(update={"json_schema": "schema.json", "metric_options": {}})]})
    results, run = load_results(root)
    diagnose_model(results["models"][0], run, suite)
    cell = results["models"][0]["diagnostics"]["forgetting"]["tasks"]["person"]["json_schema_valid"]["epochs"]["1"]
    assert cell["delta_vs_base"] == -100 and cell["forgotten"] and cell["p_value"] < 0.05


def test_family_is_every_cell_and_holm_adjusts_each_p(tmp_path):
    root = make_run(tmp_path, outputs({"en-fr": [0.3, 0.3, 0.3], "fr-en": [0.1, 0.5, 0.7]}), REFS)
    d = diagnose(root)["forgetting"]
    cells = [c for ms in d["tasks"].values() for r in ms.values() for c in r["epochs"].values()]
    assert d["family"]["size"] == len(cells) == 2 * 4 * 2        # 2 tasks × (bleu, chrf, usability, loss) × 2 epochs
    assert d["family"]["alpha_per_test"] == pytest.approx(0.05 / 16)
    assert all(c["p_adjusted"] >= c["p_value"] for c in cells)
    ranked = sorted(cells, key=lambda c: c["p_value"])
    assert ranked[0]["p_adjusted"] == pytest.approx(min(1.0, 16 * ranked[0]["p_value"]))
    assert all(c["status"] in ("forgotten", "underpowered", "pass") for c in cells)
    assert d["tasks"]["fr-en"]["bleu"]["epochs"]["2"]["status"] == "forgotten"


def test_power_section_states_the_mde_before_training(tmp_path):
    from harness.diagnose import power_lines

    root = make_run(tmp_path, outputs({"en-fr": [0.3, 0.3], "fr-en": [0.3, 0.3]}), REFS)
    p = diagnose(root)["power"]
    row = p["tasks"]["en-fr"]["bleu"]
    assert row["n"] == 60 and row["mde_unpaired"] > 1.0
    # SE shrinks as 1/sqrt(n): the items needed bring the MDE to the threshold
    assert row["items_needed_unpaired"] == pytest.approx(60 * row["mde_unpaired"] ** 2, rel=0.01)
    lines = power_lines(p)
    assert len(lines) == 2 and lines[0].startswith("power: en-fr (60 items) can see drops of bleu ≥ ")


def test_checkpoint_tie_set_recommendation_and_stability(tmp_path):
    # en-fr improves at epoch 1 and stays there; fr-en is ruined from epoch 2 on
    root = make_run(tmp_path, outputs({"en-fr": [0.6, 0.2, 0.2], "fr-en": [0.1, 0.1, 0.8]}), REFS,
                    best_metric="en-fr/bleu")
    d = diagnose(root)
    c = d["checkpoint"]
    assert c["metric"] == "en-fr/bleu" and c["best_epoch"] in (1, 2)
    assert c["tie_set"] == [1, 2] and 0 not in c["tie_set"]      # epoch 0 is far worse, 1 and 2 are noise apart
    assert 2 in c["forgotten_epochs"] and c["recommended"] == 1
    assert 0.0 < c["stability"] < 1.0
    assert c["verdict"]["status"] == "pass" and c["verdict"]["summary"].startswith("keep epoch 1")


def test_item_changes_count_each_item_and_list_regressions(tmp_path):
    root = make_run(tmp_path, outputs({"en-fr": [0.0, 0.0], "fr-en": [0.0, 0.5]}), REFS)
    ch = diagnose(root)["changes"]["tasks"]
    untouched = ch["en-fr"]["1"]["vs_base"]["bleu"]
    assert untouched == {"improved": 0, "worsened": 0, "unchanged": 60}
    hurt = ch["fr-en"]["1"]["vs_base"]["bleu"]
    assert hurt["worsened"] > 10 and hurt["improved"] == 0 and sum(hurt.values()) == 60
    regs = ch["fr-en"]["1"]["regressions"]
    assert len(regs) == 5 and regs[0]["drop"] >= regs[-1]["drop"] > 0
    assert regs[0]["base_output"] == regs[0]["reference"] != regs[0]["output"]


def test_clusters_in_the_sample_files_make_every_test_resample_whole_clusters(tmp_path):
    import json

    root = make_run(tmp_path, outputs({"en-fr": [0.3, 0.5], "fr-en": [0.3, 0.5]}), REFS)
    plain = diagnose(root)["forgetting"]["tasks"]["en-fr"]["bleu"]["epochs"]["1"]
    for path in (root / "samples").rglob("*.jsonl"):
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        for i, r in enumerate(rows):
            r["cluster"] = f"doc{i // 10}"          # 6 documents of 10 items
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    clustered = diagnose(root)["forgetting"]["tasks"]["en-fr"]["bleu"]["epochs"]["1"]
    assert clustered["score"] == plain["score"] and clustered["se"] != plain["se"]
    assert clustered["test"] == plain["test"] == "one-sided paired bootstrap (normal tail)"
