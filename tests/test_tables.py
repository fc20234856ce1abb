"""Every table the CLI prints, in an 80-column log: no header or number cut to "sou…", "1,2…"."""
from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console
from rich.table import Table

from harness.cli import main
from harness.tables import print_table, table_fits
from run_fixtures import damage, make_run, sentences


@pytest.fixture
def cols80(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")   # what a CI log without a terminal gets


def _readable(out: str, headers: list[str]) -> None:
    assert "…" not in out, out
    for h in headers:
        for word in h.split():
            assert word in out, (word, out)


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_a_table_that_fits_prints_as_a_table_and_one_that_does_not_as_blocks():
    wide = Table(title="t")
    for h in ("source", "read", "invalid", "empty", "dup", "dup across", "near", "kept", "mixed", "train", "val"):
        wide.add_column(h)
    wide.add_row("news-commentary", *["12,345"] * 10)
    wide.add_row("europarl", *["7"] * 10)
    buf = io.StringIO()
    console = Console(file=buf, width=80)
    assert not table_fits(console, wide)
    print_table(console, wide)
    out = buf.getvalue()
    _readable(out, ["source", "dup across", "news-commentary", "12,345"])
    lines = out.splitlines()
    assert lines[0] == "t" and lines[1].split() == ["source", "news-commentary"]
    assert ["dup", "across", "7"] in [line.split() for line in lines]   # europarl's block

    assert table_fits(Console(file=io.StringIO(), width=200), wide)
    buf = io.StringIO()
    print_table(Console(file=buf, width=200), wide)
    assert "┃ source" in buf.getvalue()   # the ordinary table where it fits


def test_grade_summary_at_80_columns(tmp_path, cols80, capsys):
    rows = [{"id": f"s{i}", "prompt": f"The cat {i}.", "completion": f"Le chat {i}."} for i in range(4)]
    _jsonl(tmp_path / "val.jsonl", rows)
    metrics = "[bleu, chrf, ter, rouge, exact_match, usability]"
    (tmp_path / "s.yaml").write_text(
        "name: s\nmodels: [{path: builtin:tiny-translator}]\ntasks:\n"
        + "".join(f"  - {{name: {t}, data: {{path: val.jsonl}}, metrics: {metrics}}}\n" for t in ("en-fr", "en-fr-2"))
        + "bootstrap: {samples: 10}\n")
    preds = _jsonl(tmp_path / "p.jsonl", [{"task": t, "id": r["id"], "output": r["completion"]}
                                          for t in ("en-fr", "en-fr-2") for r in rows])
    assert main(["grade", str(tmp_path / "s.yaml"), "--predictions", str(preds), "--run-dir",
                 str(tmp_path / "run"), "--no-report"]) == 0
    out = capsys.readouterr().out
    _readable(out, ["epoch", "en-fr-2", "rouge1", "rougeL", "exact_match", "usability", "100.00"])


def test_gate_table_at_80_columns(tmp_path, cols80, capsys):
    refs = {"en-fr": sentences(12, seed=1)}
    gates = [{"task": "en-fr", "metric": "bleu", "min": 1}, {"task": "en-fr", "metric": "chrf", "min": 1}]
    run = make_run(tmp_path / "run", {0: {"en-fr": damage(refs["en-fr"], 0.3, seed=0)}}, refs, gates=gates)
    assert main(["gate", str(run)]) == 0
    _readable(capsys.readouterr().out, ["result", "gate", "checkpoint", "value", "reference", "delta", "mode",
                                        "details", "en-fr/bleu", "en-fr/chrf"])


def test_data_build_at_80_columns_and_quiet(tmp_path, cols80, capsys):
    from test_dataprep_build import planted

    recipe = planted(tmp_path)
    assert main(["data", "build", str(recipe), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    _readable(out, ["source", "read", "invalid", "empty", "dup across", "near", "kept", "mixed", "train", "val",
                    "ratio", "chat", "alpaca"])
    assert main(["-q", "data", "build", str(recipe), "--out", str(tmp_path / "out2")]) == 0
    quiet = capsys.readouterr().out
    assert "alpaca" not in quiet and "source" not in quiet      # no table under -q
    assert quiet.count("\n") == 1 and "manifest.json" in quiet  # the final line only


def test_data_check_at_80_columns(tmp_path, cols80, capsys):
    rows = [{"id": f"r{i}", "prompt": f"Question {i}", "completion": f"Answer {i}"} for i in range(3)]
    path = _jsonl(tmp_path / "d.jsonl", rows + rows[:1])
    main(["data", "check", str(path)])
    _readable(capsys.readouterr().out, ["check", "level", "finding", "first examples"])


def test_audit_table_at_80_columns(tiny_model_dir, tmp_path, cols80, capsys):
    from test_planted_faults import leaky_suite

    assert main(["audit", str(leaky_suite(tiny_model_dir, tmp_path))]) == 1
    _readable(capsys.readouterr().out, ["check", "status", "finding", "data.en-fr.leakage"])


def test_perf_table_at_80_columns():
    from harness.perf import render_perf_table

    level = {"concurrency": 16, "succeeded": 32, "requests": 32, "requests_per_s": 12.5,
             "output_tokens_per_s": 1234.5, "total_tokens_per_s": 2345.6,
             "ttft_s": {"50%": 0.123, "99%": 0.456}, "latency_s": {"50%": 1.23, "99%": 4.56}}
    buf = io.StringIO()
    render_perf_table({"model": "tiny", "endpoint": "http://127.0.0.1:8000", "evalscope_version": "1.0",
                       "levels": [level, dict(level, concurrency=1)]}, Console(file=buf, width=80))
    _readable(buf.getvalue(), ["concurrency", "ok/sent", "req/s", "out tok/s", "total tok/s", "TTFT p50 s",
                               "latency p99 s", "1.23e+03"])
