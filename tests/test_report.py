"""reports/: render from run directories, sections optional, hostile text escaped, comparison."""
from __future__ import annotations

import html as html_lib
import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest

from harness.cli import main as cli_main
from harness.results import load_results, read_jsonl, write_json
from reports import render_report
from reports.collect import forgetting_matrix, load_series, metric_keys
from reports.samples import sample_sets, script_json
from report_fixtures import make_diagnosed_run, make_report_run

HOSTILE = [
    "<script>window.__pwned = 1</script>",
    "</textarea><img src=x onerror=\"window.__pwned = 2\">",
    "</script><script>window.__pwned = 3</script>",
    "<!-- <script>window.__pwned = 4</script>",
    "\u2028]]>&amp;<svg onload=window.__pwned=5>",
]


class _Tags(HTMLParser):
    """Every start tag the way a browser's tokenizer sees it, with script bodies."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"
        if self._in_script:
            self.scripts.append("")

    def handle_endtag(self, tag):
        self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.scripts[-1] += data


def _parse(html: str) -> _Tags:
    p = _Tags()
    p.feed(html)
    return p


def _sample_data(html: str) -> dict:
    p = _parse(html)
    [(i, _)] = [(i, a) for i, (t, a) in enumerate(t for t in p.tags if t[0] == "script")
                if a.get("type") == "application/json"]
    return json.loads(p.scripts[i])


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    return make_report_run(tmp_path_factory.mktemp("report") / "run", epochs=3, n=30)


@pytest.fixture(scope="module")
def page(run) -> str:
    return render_report([run]).read_text(encoding="utf-8")


def test_single_run_writes_run_report_with_every_section(run, page):
    assert (run / "report.html").is_file()
    charts = re.findall(r'<figure class="chart[^"]*" data-chart="(\w+)"', page)
    # loss, 2 tasks x 4 metrics, the forgetting matrix, the memory breakdown
    assert charts.count("loss") == 1 and charts.count("metric") == 8
    assert charts.count("forgetting") == 1 and charts.count("memory") == 1
    for verdict in ("forgetting", "inflection", "audits", "gates", "memory fit"):
        assert f'<span class="vname">{verdict}</span>' in page
    assert 'class="verdict v-fail"><span class="vname">gates' in page
    assert "nrefs:1|case:mixed" in page              # the sacrebleu signature
    assert "sacrebleu" in page and "cpu_count" in page
    assert "3 of 3 trained" in page


def test_page_is_offline_and_locked_down(page):
    tags = _parse(page).tags
    assert not [t for t, a in tags if t in ("link", "img", "iframe", "object", "embed")]
    assert not [a for _, a in tags if "src" in a]              # nothing is fetched
    [csp] = [a["content"] for t, a in tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
    assert "default-src 'none'" in csp and "'unsafe-inline'" not in csp.split("script-src")[1].split(";")[0]
    # each SVG's ids are prefixed, so many inline SVGs never share one
    ids = re.findall(r'\bid="([^"]+)"', page)
    assert len(ids) == len(set(ids))


def test_render_is_deterministic(run, page, tmp_path):
    again = render_report([run], tmp_path / "again.html").read_text(encoding="utf-8")
    assert again == page


def test_sample_browser_rows_pair_epochs_by_id(run, page):
    data = _sample_data(page)
    [en_fr] = [s for s in data["sets"] if s["task"] == "en-fr"]
    assert en_fr["epochs"] == [0, 1, 2, 3]
    rows3 = {r["id"]: r for r in read_jsonl(run / en_fr["files"][3])}
    i = en_fr["ids"].index("en-fr-00007")
    assert en_fr["output"][3][i] == rows3["en-fr-00007"]["output"]
    assert en_fr["scores"]["bleu"][3][i] == pytest.approx(rows3["en-fr-00007"]["scores"]["bleu"], abs=0.01)
    assert {m["name"]: m["higher"] for m in en_fr["metrics"]}["perplexity"] is False


def test_script_json_cannot_close_its_tag():
    obj = {"x": HOSTILE}
    text = script_json(obj)
    assert not set("<>&") & set(text)
    assert json.loads(text) == obj


def test_hostile_outputs_names_and_files_are_text(tmp_path):
    def hostile_output(task, epoch, i, out):
        return HOSTILE[i % len(HOSTILE)] if i < 10 else out

    def hostile_names(results):
        m = results["models"][0]
        m["name"] = "<script>window.__pwned=6</script>"
        m["path"] = "</textarea><b>model</b>"
        results["suite"]["train"]["data"][0]["synthetic"]["kind"] = "<img src=x onerror=alert(1)>"
        results["environment"]["gpu"] = "</pre><script>window.__pwned=7</script>"
        m["diagnostics"]["forgetting"]["verdict"]["summary"] = "<i>forgotten</i>"

    run = make_report_run(tmp_path / "run<script>", epochs=1, n=12, output_hook=hostile_output,
                          results_hook=hostile_names)
    (run / "suite.yaml").write_text("name: </pre><script>window.__pwned=8</script>\n", encoding="utf-8")
    html = render_report([run]).read_text(encoding="utf-8")
    p = _parse(html)
    assert [t for t, _ in p.tags].count("script") == 2          # the data block and the page's own script
    assert not [t for t, _ in p.tags if t in ("img", "textarea", "b", "i", "svg") and t != "svg"]
    assert "__pwned" not in p.scripts[1]                         # the executable script is ours alone
    assert "&lt;script&gt;window.__pwned=6&lt;/script&gt;" in html
    assert "&lt;i&gt;forgotten&lt;/i&gt;" in html
    data = _sample_data(html)
    outputs = {o for s in data["sets"] for epoch in s["output"] for o in epoch}
    assert set(HOSTILE) <= outputs                               # shown exactly, as data
    assert data["sets"][0]["label"] == "<script>window.__pwned=6</script>"


def test_absent_sections_render_not_run(tmp_path):
    def grade_only(results):
        results["models"][0]["train"] = None
        del results["models"][0]["audit"]

    run = make_report_run(tmp_path / "bare", epochs=0, n=8, sections=False, results_hook=grade_only)
    html = render_report([run]).read_text(encoding="utf-8")
    assert html.count('<span class="vstatus">not run</span>') == 5
    assert "training: not run" in html and "memory: not run" in html
    assert "not run (needs at least one trained epoch" in html
    assert "no training data" not in html   # the suite still names its training data


def test_forgetting_matrix_from_scores_when_no_diagnostics(tmp_path):
    run = make_report_run(tmp_path / "run", epochs=2, n=10, sections=False)
    [s] = load_series([run])
    m = forgetting_matrix(s)
    assert m.source == "scores" and m.epochs == [1, 2] and not any(map(any, m.forgotten))
    e = s.model["epochs"]
    i = m.rows.index("fr-en/perplexity")
    expected = e[2]["tasks"]["fr-en"]["metrics"]["perplexity"]["score"] - e[0]["tasks"]["fr-en"]["metrics"]["perplexity"]["score"]
    assert m.delta[i][1] == pytest.approx(expected)
    assert m.gain[i][1] == pytest.approx(-expected)               # lower perplexity is better


@pytest.mark.parametrize("as_dict", [False, True])
def test_forgetting_matrix_reads_diagnostics(tmp_path, as_dict):
    def edit(results):
        cells = results["models"][0]["diagnostics"]["forgetting"]["tasks"]["fr-en"]["bleu"]
        cells["epochs"][1]["forgotten"] = True
        cells["epochs"][1]["delta_vs_base"] = -42.0
        if as_dict:
            cells["epochs"] = {str(c["epoch"]): c for c in cells["epochs"]}

    run = make_report_run(tmp_path / "run", epochs=2, n=10, results_hook=edit)
    m = forgetting_matrix(load_series([run])[0])
    i = m.rows.index("fr-en/bleu")
    assert m.source == "diagnostics" and m.delta[i][1] == -42.0 and m.forgotten[i][1]
    assert m.computed[m.rows.index("fr-en/perplexity")] and not m.computed[i]


def test_samples_are_capped_and_long_texts_cut(tmp_path):
    long = "x" * 5000

    run = make_report_run(tmp_path / "run", epochs=1, n=20,
                          output_hook=lambda t, e, i, out: long if i == 0 else out)
    sets = sample_sets(load_series([run]), max_samples=5, max_chars=100)
    s = sets[0]
    assert s["n_total"] == 20 and s["n_shown"] == 5 and len(s["ids"]) == 5
    assert s["n_truncated"] == 2                                    # epoch 0 and epoch 1 outputs of item 0
    assert s["output"][1][0].startswith("x" * 100) and "truncated: 5,000 characters" in s["output"][1][0]


def test_sample_files_outside_the_run_are_not_read(tmp_path):
    secret = tmp_path / "secret.jsonl"
    secret.write_text(json.dumps({"id": "s", "source": "SECRET", "reference": "", "output": ""}) + "\n")

    def escape(results):
        for e in results["models"][0]["epochs"]:
            for rec in e["tasks"].values():
                rec["samples"] = "../secret.jsonl"

    run = make_report_run(tmp_path / "run", epochs=1, n=5, results_hook=escape)
    assert sample_sets(load_series([run])) == []
    assert "SECRET" not in render_report([run]).read_text(encoding="utf-8")


def test_missing_keys_are_tolerated(tmp_path):
    run = make_report_run(tmp_path / "run", epochs=1, n=5)
    results, _ = load_results(run)
    m = results["models"][0]
    m["memory"] = {"verdict": {"status": "warn", "summary": "tight"}}   # no numbers
    m["diagnostics"] = {"forgetting": {"tasks": "?"}, "inflection": {"series": None}}
    m.pop("parameters")
    m["epochs"][1]["tasks"]["en-fr"]["metrics"]["bleu"] = {"score": None, "skipped": "no outputs"}
    results.pop("environment")
    write_json(run / "results.json", results)
    html = render_report([run]).read_text(encoding="utf-8")
    assert "memory: not run" in html and "v-warn" in html


def test_cli_compares_two_runs_in_one_page(tmp_path, capsys):
    a = make_report_run(tmp_path / "lr-1e-3", epochs=2, n=10, lr=1e-3)
    b = make_report_run(tmp_path / "lr-2e-4", epochs=2, n=10, lr=2e-4, seed=1)
    out = tmp_path / "compare.html"
    assert cli_main(["report", str(a), str(b), "-o", str(out)]) == 0
    assert str(out) in capsys.readouterr().out
    html = out.read_text(encoding="utf-8")
    series = load_series([a, b])
    assert [s.label for s in series] == ["lr-1e-3", "lr-2e-4"]
    # one chart per task/metric with both runs on it, not one per run
    assert html.count('data-chart="metric"') == len(metric_keys(series)) == 8
    assert html.count('data-chart="loss"') == 1
    assert html.count('data-chart="forgetting"') == 2
    assert '<th colspan="3" class="group"' in html and html.count('class="group"') == 2
    assert {s["label"] for s in _sample_data(html)["sets"]} == {"lr-1e-3", "lr-2e-4"}
    assert not (a / "report.html").exists()


def test_cli_report_on_a_missing_run_is_one_line_exit_2(tmp_path, capsys):
    assert cli_main(["report", str(tmp_path / "nope")]) == 2
    captured = capsys.readouterr()
    assert "results file not found" in captured.out + captured.err


def test_report_size_is_bounded_for_a_realistic_run(tmp_path):
    """5 epochs x 2 tasks x 1,000 samples: the issue asks for well under a few MB."""
    run = make_report_run(tmp_path / "big", epochs=5, n=1000, bootstrap=20)
    size = render_report([run]).stat().st_size
    assert size < 2.5 * 2 ** 20, f"report is {size:,} bytes"


def test_score_table_shows_each_metrics_tokenizer(tmp_path):
    from reports.collect import score_table

    def two_tokenizers(results):   # a second model graded with another BLEU tokenizer, TER with asian:yes
        for e in results["models"][1]["epochs"]:
            e["tasks"]["en-fr"]["metrics"]["bleu"]["signature"] = "nrefs:1|case:mixed|eff:no|tok:zh|smooth:exp|version:2.6.0"
        for m in results["models"]:
            for e in m["epochs"]:
                e["tasks"]["en-fr"]["metrics"]["ter"] = {
                    "score": 50.0, "ci": None, "higher_is_better": False,
                    "signature": "nrefs:1|case:lc|tok:tercom|norm:no|punct:yes|asian:yes|version:2.6.0"}

    run = make_report_run(tmp_path / "run", epochs=1, n=8, models=("a", "b"), sections=False,
                          results_hook=two_tokenizers)
    rows = {(r["task"], r["metric"]): r["tokenizer"] for r in score_table(load_series([run]))}
    assert rows[("en-fr", "bleu")] == "13a / zh"
    assert rows[("fr-en", "bleu")] == "13a"
    assert rows[("en-fr", "ter")] == "tercom+asian"
    assert rows[("en-fr", "perplexity")] is None       # no tokenizer in its signature
    html = render_report([run]).read_text(encoding="utf-8")
    assert 'bleu <span class="muted">↑ tok:13a / zh</span>' in html


def test_grading_batch_and_memory_per_epoch_are_shown(tmp_path):
    def grading(results):
        for e in results["models"][0]["epochs"]:
            e["grading_memory"] = {"device": "cpu", "batch_size": 24, "batch_size_auto": True,
                                   "measured": {"generation": 3 * 2 ** 20, "scoring": 5.5 * 2 ** 20},
                                   "estimate": {"generation": 4 * 2 ** 20, "scoring": None}}

    run = make_report_run(tmp_path / "run", epochs=2, n=5, results_hook=grading)
    html = render_report([run]).read_text(encoding="utf-8")
    table = html[html.index('class="grading-memory"'):]
    table = table[:table.index("</table>")]
    assert table.count("24 (auto)") == len(load_results(run)[0]["models"][0]["epochs"]) == 3
    assert "3.0 MiB" in table and "4.0 MiB" in table and "5.5 MiB" in table and "–" in table
    assert "bytes of the tensors grading allocates" in html


# --------------------------------------------------------------------------- verdicts that state their noise
def _text(fragment: str) -> str:
    """What a reader sees: tags dropped, entities decoded, whitespace collapsed."""
    return re.sub(r"\s+", " ", html_lib.unescape(re.sub(r"<[^>]+>", " ", fragment))).strip()


def _between(page: str, start: str, end: str) -> str:
    i = page.index(start)
    return page[i:page.index(end, i)]


@pytest.fixture(scope="module")
def diagnosed(tmp_path_factory) -> tuple[Path, dict, str]:
    run = make_diagnosed_run(tmp_path_factory.mktemp("diagnosed") / "run", design_effect=1.84)
    page = render_report([run]).read_text(encoding="utf-8")
    return run, load_results(run)[0]["models"][0]["diagnostics"], page


def test_checkpoint_to_keep_in_the_summary_and_its_evidence(diagnosed):
    _, diag, page = diagnosed
    c = diag["checkpoint"]
    assert c["tie_set"] == [1, 2] and c["recommended"] == 1 and 0 < c["stability"] < 1   # the fixture's story
    card = _text(_between(page, '<article class="card"', "</article>"))
    stability = f"{100 * c['stability']:.3g}%"
    assert f"keep epoch 1 tie set 1, 2; epoch {c['best_epoch']} is best in {stability} of resamples" in card
    assert 'href="#checkpoint-0"' in page and 'id="checkpoint-0"' in page
    # the verdict chip sits with the others, right after forgetting and inflection
    names = re.findall(r'<span class="vname">([^<]+)</span>', page)
    assert names[:3] == ["forgetting", "inflection", "checkpoint"]
    assert 'class="verdict v-pass"><span class="vname">checkpoint</span>' in page
    block = _text(_between(page, 'id="checkpoint-0"', "What the test sets can see"))
    assert c["verdict"]["summary"] in block
    assert "tie set 1, 2" in block and "recommended epoch 1" in block and f"stability {stability}" in block
    # epoch 0 is far below the best (worse), the other tie-set epoch is not
    other = 1 if c["best_epoch"] == 2 else 2
    cmp0, cmp_other = c["comparisons"]["0"], c["comparisons"][str(other)]
    assert f"0 {cmp0['delta_vs_best']:,.2f} <0.001 worse no" in block
    p_other = cmp_other["p_adjusted"]
    p_text = "<0.001" if p_other < 0.001 else f"{p_other:.3g}"
    forgot = "yes" if other in c["forgotten_epochs"] else "no"
    assert f"{other} {cmp_other['delta_vs_best']:,.2f} {p_text} tied {forgot}" in block


def test_what_the_test_sets_can_see(diagnosed):
    _, diag, page = diagnosed
    p = diag["power"]
    table = _text(_between(page, "<h4>What the test sets can see</h4>", "<h4>Forgetting</h4>"))
    row = p["tasks"]["en-fr"]["bleu"]
    assert row["mde_unpaired"] > row["threshold"]                         # 60 items cannot see 1 BLEU
    assert f"en-fr bleu 60 {row['mde_unpaired']:.2f} 1.00 {row['items_needed_unpaired']:,}" in table
    blind = sum(r["mde_unpaired"] > r["threshold"] for ms in p["tasks"].values() for r in ms.values())
    rows = sum(len(ms) for ms in p["tasks"].values())
    assert f"{blind} of {rows} task × metric pairs cannot see their forgetting threshold" in table
    assert f"family of {p['family_size']} tests" in table and "80%" in table


def test_forgetting_evidence_shows_holm_p_mde_and_underpowered_verdicts(diagnosed, tmp_path):
    diag, page = diagnosed[1:]
    run = tmp_path / "run"
    shutil.copytree(diagnosed[0], run)
    f = diag["forgetting"]
    section = _between(page, "<h4>Forgetting</h4>", "<h4>What changed, item by item</h4>")
    text = _text(section)
    assert "p (Holm)" in text
    # fr-en/bleu is forgotten at epoch 2: the threshold and the paired MDE beside the verdict
    cell, row = f["tasks"]["fr-en"]["bleu"]["epochs"]["2"], f["tasks"]["fr-en"]["bleu"]
    assert cell["status"] == "forgotten"
    assert f"{row['threshold']:,.2f} {cell['mde']:,.2f} forgotten since epoch 2" in text
    # the p column is the Holm-adjusted p, the raw one on hover (both stored; the run's last-epoch
    # p-values are all 0 or 1 at this size, so two are set apart here)
    results, _ = load_results(run)
    last = results["models"][0]["diagnostics"]["forgetting"]["tasks"]["fr-en"]["chrf"]["epochs"]["2"]
    last.update(p_value=0.0123, p_adjusted=0.0456)
    write_json(run / "results.json", results)
    again = render_report([run], tmp_path / "holm.html").read_text(encoding="utf-8")
    tr = again[again.index("<td>fr-en/chrf</td>"):].split("</tr>")[0]
    assert 'title="raw p 0.0123">0.0456</td>' in tr
    # every underpowered row says what it can see and what would fix it, never a bare pass
    weak = [(k, r["epochs"]["2"]) for t, ms in f["tasks"].items() for k, r in ms.items()
            if r["epochs"]["2"]["status"] == "underpowered"]
    assert weak
    for _, c in weak:
        assert f"underpowered: sees drops ≥ {c['mde']:,.2f}; {c['items_needed']:,} items needed" in text
    assert text.count("underpowered: sees drops") == len(weak)
    fam = f["family"]
    assert f"({fam['size']} tests), adjusted by Holm's step-down method" in text
    assert f"alpha/m = {fam['alpha_per_test']:.2g}" in text


def test_item_changes_and_regressions_link_to_their_samples(diagnosed):
    run, diag, page = diagnosed
    ch = diag["changes"]["tasks"]["fr-en"]["2"]
    section = _between(page, "<h4>What changed, item by item</h4>", "<h4>Overfitting inflection</h4>")
    text = _text(section)
    bleu, prev = ch["vs_base"]["bleu"], ch["vs_previous"]["bleu"]
    assert bleu["worsened"] > bleu["improved"]
    assert f"2 epoch 0 ↑{bleu['improved']} ↓{bleu['worsened']} ={bleu['unchanged']}" in text
    assert f"2 epoch 1 ↑{prev['improved']} ↓{prev['worsened']} ={prev['unchanged']}" in text
    usability = ch["vs_base"]["usability"]
    assert "mcnemar_p" in usability and "McNemar" in text
    # each regression opens its sample: the hash names the set, epoch, metric and id the browser holds
    reg = ch["regressions"][0]
    sets = _sample_data(page)["sets"]
    k = next(i for i, s in enumerate(sets) if s["task"] == "fr-en")
    href = f"#sample={k}/2/bleu/{reg['id']}"
    assert f'<a class="sample-link" href="{href}">{reg["id"]}</a>' in section
    assert reg["id"] in sets[k]["ids"] and 2 in sets[k]["epochs"]
    assert {m["name"] for m in sets[k]["metrics"]} >= {"bleu"}
    assert "#sample=" in _parse(page).scripts[1]                   # the page's script reads that hash
    row = _text(section[section.index(href):].split("</tr>")[0])
    assert f"{reg['base_score']:,.2f} → {reg['score']:,.2f} {reg['drop']:,.2f}" in row
    assert reg["output"] in row and reg["base_output"] in row and reg["reference"] in row


def test_intervals_say_wilson_and_design_effect(diagnosed):
    _, _, page = diagnosed
    scores = _between(page, '<section id="scores">', "</section>")
    assert 'usability <span class="muted">↑ CI:Wilson</span>' in scores
    assert "chrf <span class=\"muted\">↑ deff 1.84</span>" in scores        # fr-en/chrf only
    assert scores.count("deff 1.84") == 1
    assert re.search(r'title="CI \[[\d.]+, [\d.]+\], wilson"', scores)
    assert re.search(r'title="CI \[[\d.]+, [\d.]+\], bca bootstrap; design effect 1.84"', scores)
    metrics = _between(page, '<section id="metrics">', "</section>")
    assert metrics.count("interval: Wilson score (a rate)") == 3              # usability of the three tasks
    assert metrics.count("design effect 1.84 (clustered items)") == 1


def test_results_without_the_new_sections_still_render(diagnosed, tmp_path):
    """A results file written before power, family, checkpoint and item changes existed."""
    run = tmp_path / "old"
    shutil.copytree(diagnosed[0], run)
    results, _ = load_results(run)
    model = results["models"][0]
    for key in ("power", "checkpoint", "changes"):
        del model["diagnostics"][key]
    f = model["diagnostics"]["forgetting"]
    for key in ("family", "power", "underpowered"):
        del f[key]
    for ms in f["tasks"].values():
        for row in ms.values():
            del row["n"]
            for cell in row["epochs"].values():
                for key in ("p_adjusted", "status", "mde", "items_needed", "se"):
                    cell.pop(key, None)
    for e in model["epochs"]:
        for rec in e["tasks"].values():
            for m in rec["metrics"].values():
                for key in ("ci_method", "se", "design_effect"):
                    m.pop(key, None)
    write_json(run / "results.json", results)
    page = render_report([run]).read_text(encoding="utf-8")
    text = _text(page)
    assert "checkpoint: not run" in text and "power: not run" in text and "item changes: not run" in text
    assert '<span class="vname">checkpoint</span>' not in page and "<dt>keep</dt>" not in page
    forgetting = _text(_between(page, "<h4>Forgetting</h4>", "<h4>What changed"))
    assert "p (Holm)" not in forgetting and "underpowered" not in forgetting
    assert "forgotten since epoch 2" in forgetting and "kept" in forgetting
    raw = f["tasks"]["fr-en"]["bleu"]["epochs"]["2"]["p_value"]
    assert ("<0.001" if raw < 0.001 else f"{raw:.3g}") in forgetting      # the raw p, the only one there is
    assert "CI:Wilson" not in page and "deff" not in page and 'class="sample-link"' not in page


def _outside(fig) -> list:
    """The axes whose drawn extent (tick labels, axis labels, title, a top axis: matplotlib's tight
    bounding box) reaches outside the figure, where the page would clip it."""
    renderer = fig.canvas.get_renderer()
    page = fig.bbox
    return [ax for ax in fig.axes if (lambda b: b.x0 < page.x0 - 0.5 or b.y0 < page.y0 - 0.5 or b.x1 > page.x1 + 0.5
                                      or b.y1 > page.y1 + 0.5)(ax.get_tightbbox(renderer))]


@pytest.mark.parametrize("scale", [1.0, 12345.678, 0.000123])
def test_fitted_charts_keep_every_label_and_title_inside_the_figure(scale, monkeypatch):
    """The metric and loss charts are laid out by their own margins (not constrained layout): wide
    tick labels, a long axis label, a top epoch axis and two panels still fit, titles clear the top axis."""
    from reports import charts
    from reports.collect import Curve, LossCurves

    drawn = []
    monkeypatch.setattr(charts, "to_svg", lambda fig, prefix, real=charts.to_svg: drawn.append(fig) or real(fig, prefix))
    curve = Curve("model", [0, 1, 2, 3], [v * scale for v in (1.0, 3.5, 2.0, 4.25)], [None] * 4, [None] * 4, 3, 2)
    charts.metric_chart("en-fr", "chrf", True, [curve, curve], "m-")
    steps = [float(s) for s in range(1, 41)]
    charts.loss_chart([LossCurves("model", steps, [scale / s for s in steps],
                                  {"en-fr": ([10.0, 20.0, 40.0], [scale, scale / 2, scale / 3])}, 10.0)], "l-")
    assert len(drawn) == 2
    for fig in drawn:
        assert fig.get_layout_engine() is None
        assert _outside(fig) == []
        for ax in fig.axes:   # the title above the axes and whatever it carries on top
            top = max([ax.get_window_extent().y1] + [c.get_tightbbox().y1 for c in ax.child_axes])
            assert ax.title.get_window_extent().y0 >= top - 0.5


def test_charts_drawn_in_worker_processes_are_the_serial_charts(tmp_path, monkeypatch):
    """`harness report` (no torch in the process) draws its charts in forked workers; the page is the
    same bytes as the one drawn serially (as in a process that imported torch, never forked)."""
    import os
    import subprocess
    import sys

    from reports import charts

    if charts._cpus() < 2:
        pytest.skip("one CPU: charts are drawn here, not in workers")
    run = make_report_run(tmp_path / "run", epochs=2, n=12, bootstrap=20)
    monkeypatch.setattr(charts, "_fork_is_safe", lambda: False)
    render_report([run], tmp_path / "serial.html")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    script = ("import concurrent.futures as cf, json, sys\n"
              "from pathlib import Path\n"
              "from reports import render_report\n"
              "pools = []\n"
              "class Pool(cf.ProcessPoolExecutor):\n"
              "    def __init__(self, workers, **kwargs):\n"
              "        pools.append(workers)\n"
              "        super().__init__(workers, **kwargs)\n"
              "cf.ProcessPoolExecutor = Pool\n"
              f"render_report([Path({str(run)!r})], Path({str(tmp_path / 'forked.html')!r}))\n"
              "print(json.dumps({'pools': pools, 'torch': 'torch' in sys.modules}))")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not got["torch"] and len(got["pools"]) == 1 and 2 <= got["pools"][0] <= charts._cpus()   # one pool
    assert (tmp_path / "forked.html").read_bytes() == (tmp_path / "serial.html").read_bytes()


def test_a_chart_batch_that_cannot_start_workers_draws_its_charts_here(monkeypatch):
    """A container that refuses another process (fork → OSError) still gets every chart, drawn serially."""
    import concurrent.futures

    from reports import charts
    from reports.collect import Curve

    def refuse(*args, **kwargs):
        raise OSError(11, "Resource temporarily unavailable")

    curve = Curve("model", [0, 1, 2], [1.0, 2.0, 1.5], [None] * 3, [None] * 3, 1, None)
    expected = [charts.metric_chart("en-fr", m, True, [curve], f"m{k}-") for k, m in enumerate("abcde")]
    monkeypatch.setattr(charts, "_fork_is_safe", lambda: True)
    monkeypatch.setattr(charts, "_cpus", lambda: 2)
    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", refuse)
    batch = charts.ChartBatch()
    drawn = [batch.add(charts.metric_chart, "en-fr", m, True, [curve], f"m{k}-") for k, m in enumerate("abcde")]
    batch.draw()
    assert [c.__html__() for c in drawn] == expected and all(drawn)
