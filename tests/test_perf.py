"""`harness perf`: the suite's prompts go to EvalScope as a line_by_line file, and EvalScope's
numbers land in results.json and the report. The end-to-end test runs EvalScope against a real
`transformers serve` on 127.0.0.1 with a few requests (skipped when EvalScope is not installed)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from harness.grade import load_tasks
from harness.perf import PerfError, evalscope_version, parse_concurrency, write_prompts
from harness.suite import parse_suite
from tests.serve_fixtures import transformers_server


def _suite_text(model_dir, n=3) -> str:
    return f"""
name: perf-tiny
models: [{{name: tiny, path: {model_dir}}}]
tasks:
  - name: en-fr
    data: {{synthetic: {{kind: translation, direction: en-fr, split: val, n: {n}}}}}
    metrics: [bleu]
    generation: {{max_new_tokens: 8}}
  - name: fr-en
    data: {{synthetic: {{kind: translation, direction: fr-en, split: val, n: {n + 1}}}}}
    metrics: [bleu]
    generation: {{max_new_tokens: 6}}
"""


def test_prompts_file_is_the_suites_prompt_messages_interleaved(tmp_path):
    suite = parse_suite(_suite_text("some-model"), base_dir=tmp_path)
    tasks = load_tasks(suite)
    n = write_prompts(tasks, tmp_path / "p.jsonl")
    lines = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    en, fr = tasks[0].examples, tasks[1].examples
    assert n == len(lines) == 7
    assert lines == [en[0].prompt_messages, fr[0].prompt_messages, en[1].prompt_messages, fr[1].prompt_messages,
                     en[2].prompt_messages, fr[2].prompt_messages, fr[3].prompt_messages]


@pytest.mark.parametrize("text,want", [("1,4,16", (1, 4, 16)), ("2", (2,)), (" 1, 8 ", (1, 8))])
def test_parse_concurrency(text, want):
    assert parse_concurrency(text) == want


@pytest.mark.parametrize("text", ["", "0,4", "a,b", "-1"])
def test_bad_concurrency_is_one_clear_error(text):
    with pytest.raises(PerfError, match="--concurrency"):
        parse_concurrency(text)


def test_missing_evalscope_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "evalscope", None)     # what an absent package looks like to import
    monkeypatch.setitem(sys.modules, "evalscope.perf", None)
    monkeypatch.setitem(sys.modules, "evalscope.perf.main", None)
    with pytest.raises(PerfError, match=r"pip install 'harness\[evalscope\]'"):
        evalscope_version()


def test_missing_evalscope_cli_exit_2(tmp_path):
    suite = tmp_path / "s.yaml"
    suite.write_text(_suite_text("m"))
    code = ("import sys; sys.modules['evalscope'] = None; from harness.cli import main; "
            f"sys.exit(main(['perf', {str(suite)!r}, '--endpoint', 'http://127.0.0.1:9']))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["error: harness perf needs EvalScope: pip install 'harness[evalscope]'"]


@pytest.mark.slow
def test_perf_against_transformers_serve(tiny_model_dir, tmp_path):
    pytest.importorskip("evalscope.perf.main", reason="EvalScope not installed (pip install 'harness[evalscope]')")
    suite = tmp_path / "s.yaml"
    suite.write_text(_suite_text(tiny_model_dir))
    with transformers_server(tiny_model_dir, tmp_path / "server.log") as url:
        proc = subprocess.run([sys.executable, "-m", "harness.cli", "perf", str(suite), "--endpoint", url,
                               "--concurrency", "1,2", "--requests", "4", "--run-dir", str(tmp_path / "run")],
                              capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    perf = results["perf"]
    import importlib.metadata as md

    assert results["status"] == "complete" and perf["evalscope_version"] == md.version("evalscope")
    assert perf["model"] == str(tiny_model_dir) and perf["max_tokens"] == 8
    assert [lv["concurrency"] for lv in perf["levels"]] == [1, 2]
    for lv in perf["levels"]:
        assert lv["requests"] == 4 and lv["succeeded"] == 4 and lv["failed"] == 0
        assert lv["requests_per_s"] > 0 and lv["output_tokens_per_s"] > 0
        assert lv["total_tokens_per_s"] > lv["output_tokens_per_s"]      # prompts count too
        assert 0 < lv["avg_output_tokens"] <= 8                         # the suite's max_new_tokens
        for key in ("ttft_s", "latency_s"):
            p = lv[key]
            assert 0 < p["50%"] <= p["90%"] <= p["99%"]
        assert lv["ttft_s"]["50%"] <= lv["latency_s"]["99%"]
    assert (tmp_path / "run" / perf["prompts"]).is_file()
    html = (tmp_path / "run" / "report.html").read_text()
    assert "Serving performance (EvalScope)" in html and perf["evalscope_version"] in html
