"""The README's main job, end to end, exactly as a user runs it (slow: a few minutes on 2 cores).

It builds the built-in model if it is not cached yet, fine-tunes on en→fr only, and grades
both directions every epoch. The claims the README makes are asserted on the real numbers.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness.cli import main
from harness.results import load_results

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_default_translation_suite_end_to_end(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(REPO)
    code = main(["train-and-grade", "suites/translation.yaml", "--run-dir", str(tmp_path / "run")])
    assert code == 0
    printed = capsys.readouterr().out.splitlines()
    # the README quotes this run's verdict lines: a fresh run prints them digit for digit
    quoted = readme_quoted_lines()
    assert [q.split(":")[0] for q in quoted] == ["power", "power", "best epoch for en-fr/bleu", "audit", "memory",
                                                 "forgetting", "inflection", "checkpoint"]
    for line in quoted:
        assert any(p.startswith(line) for p in printed), (line, [p for p in printed if p[:8] == line[:8]])
    results, run = load_results(tmp_path / "run")
    model = results["models"][0]
    epochs = model["epochs"]
    assert [e["epoch"] for e in epochs] == [0, 1, 2, 3, 4]

    def bleu(e, task):
        return e["tasks"][task]["metrics"]["bleu"]["score"]

    # en→fr, the trained direction, rises well above the base model
    assert bleu(epochs[-1], "en-fr") > bleu(epochs[0], "en-fr") + 10
    # fr→en, not trained, is measured every epoch and is forgotten
    assert bleu(epochs[-1], "fr-en") < bleu(epochs[0], "fr-en") - 5
    assert model["best"]["metric"] == "en-fr/bleu" and model["best"]["epoch"] >= 1
    assert (run.root / model["best"]["checkpoint"] / "model.safetensors").exists()
    # the diagnostics say so, with the bootstrap interval; the audits pass on the built-in data
    forgetting = model["diagnostics"]["forgetting"]
    assert "fr-en/bleu" in forgetting["flagged"] and forgetting["verdict"]["status"] == "fail"
    cell = forgetting["tasks"]["fr-en"]["bleu"]["epochs"]["4"]
    assert cell["forgotten"] and cell["ci"][0] <= cell["delta_vs_base"] <= cell["ci"][1] < 0
    assert not any(k.startswith("en-fr/") for k in forgetting["flagged"])
    assert model["diagnostics"]["inflection"]["series"]["en-fr/bleu"]["best_epoch"] == model["best"]["epoch"]
    assert model["audit"]["verdict"]["status"] == "pass"
    # every verdict states its noise: the family of 40 tests, the MDE of each row, the checkpoint's tie set
    assert forgetting["family"]["size"] == 40 and cell["p_adjusted"] < 0.001
    assert model["diagnostics"]["power"]["tasks"]["en-fr"]["bleu"]["mde_unpaired"] > 1.0
    assert model["diagnostics"]["checkpoint"]["tie_set"][-1] == model["best"]["epoch"]
    assert model["memory"]["measured"]
    report = (run.root / "report.html").read_text()
    assert "fr-en" in report and "<script src=" not in report
    assert 'id="diagnostics"' in report and "forgotten since epoch 1" in report


def readme_quoted_lines() -> list[str]:
    """The README's quick-start verdict lines, each cut where the README abbreviates ('; ...')."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```\n(power: .*?)```", text, re.S).group(1)
    lines = [ln for ln in block.splitlines() if ln and not ln.startswith("(")]
    return [ln.split("; ...")[0].rstrip() for ln in lines]


def test_readme_quotes_the_verdict_lines_with_their_numbers():
    """What the slow test above compares: the lines are there, with numbers to compare."""
    quoted = readme_quoted_lines()
    assert quoted[2].startswith("best epoch for en-fr/bleu: 4 (")
    assert re.search(r"fr-en/bleu \d+\.\d\d→\d+\.\d\d \(Δ -\d+\.\d\d, 95% CI", quoted[5])
    assert re.search(r"estimated peak \d+\.\d MiB", quoted[4])
    assert re.search(r"power: en-fr \(100 items\) can see drops of bleu ≥ \d+\.\d\d \(threshold 1: [\d,]+ items\)",
                     quoted[0])
