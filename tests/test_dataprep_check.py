"""`harness data check` on files and suites: findings with line numbers, exit 0 / 1 / 2."""
from __future__ import annotations

import json
from pathlib import Path

from harness.cli import main
from harness.dataprep.check import role_order_problem


def _msg(q: str, a: str, system: str | None = None) -> dict:
    msgs = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": q}, {"role": "assistant", "content": a}]
    return {"messages": msgs}


def _write(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def _findings(tmp_path: Path) -> dict:
    return {f["check"]: f for f in json.loads((tmp_path / "findings.json").read_text())}


def test_a_clean_file_exits_0(tmp_path, capsys):
    f = _write(tmp_path / "ok.jsonl", [_msg(f"question {i} about rivers", f"answer {i}") for i in range(20)])
    assert main(["data", "check", str(f), "--json", str(tmp_path / "findings.json")]) == 0
    assert all(x["level"] == "info" for x in _findings(tmp_path).values())


def test_findings_name_the_line_and_errors_exit_1(tmp_path):
    rows = [_msg(f"question {i} about rivers and lakes in the north", f"answer {i}") for i in range(10)]
    rows[2] = "{broken"                                                               # line 3: schema
    rows[4] = {"messages": [{"role": "assistant", "content": "hi"}, {"role": "user", "content": "x"},
                            {"role": "assistant", "content": "y"}]}                  # line 5: role order
    rows[6] = _msg("<|im_start|>user question", "answer")                            # line 7: marker
    rows.append(rows[0])                                                              # line 11: duplicate
    rows.append(_msg("Question 0 about rivers and lakes in the north!", "answer 0"))  # line 12: near
    rows.append(_msg("   ", "lonely answer"))                                         # line 13: empty turn
    f = _write(tmp_path / "bad.jsonl", rows)
    assert main(["data", "check", str(f), "--json", str(tmp_path / "findings.json")]) == 1
    got = _findings(tmp_path)
    assert got["schema"]["level"] == "error" and got["schema"]["examples"][0].startswith(f"{f}:3: not valid JSON")
    assert got["role_order"]["count"] == 2       # line 5, and line 13 once its empty user turn is gone
    assert got["role_order"]["examples"][0] == f"{f}:5: the first turn after the system prompt must be the user's"
    assert got["chat_markers"]["level"] == "error" and f"{f}:7" in got["chat_markers"]["examples"][0]
    assert got["duplicates"]["examples"] == [f"{f}:11 repeats {f}:1"]
    assert got["near_duplicates"]["count"] == 1 and got["near_duplicates"]["examples"][0].startswith(f"{f}:12 ≈ {f}:1")
    assert got["empty"]["count"] == 1


def test_bad_input_exits_2(tmp_path, capsys):
    assert main(["data", "check", str(tmp_path / "missing.jsonl")]) == 2
    assert "missing.jsonl: file not found" in capsys.readouterr().err


def test_token_lengths_against_max_seq_len(tmp_path, tiny_model_dir):
    rows = [_msg("short", "ok")] * 1 + [_msg(" ".join(["word"] * 200), "long answer")] * 3
    f = _write(tmp_path / "lens.jsonl", [dict(r, id=i) for i, r in enumerate(rows)])
    code = main(["data", "check", str(f), "--tokenizer", str(tiny_model_dir), "--max-seq-len", "64",
                 "--json", str(tmp_path / "findings.json")])
    lengths = _findings(tmp_path)["lengths"]
    assert code == 0 and lengths["level"] == "warning" and lengths["count"] == 3
    assert "3 of 4 rows (75.0%) exceed max_seq_len=64" in lengths["message"]
    assert sum(int(b.rsplit(": ", 1)[1]) for b in lengths["examples"]) == 4      # the histogram holds every row


def test_suite_check_reports_leakage_against_its_tasks(tmp_path, tiny_model_dir):
    train = [_msg(f"Translate to French: sentence number {i} about the small red house", f"phrase {i}")
             for i in range(30)]
    val = [_msg(f"Translate to French: another line {i} on a green boat", f"ligne {i}") for i in range(10)]
    val += [train[3], _msg("Translate to French: sentence number 5 about the small red house!", "phrase 5")]
    _write(tmp_path / "train.jsonl", train)
    _write(tmp_path / "val.jsonl", val)
    suite = tmp_path / "suite.yaml"
    suite.write_text(f"name: s\nmodels: [{{path: {tiny_model_dir}}}]\ntrain: {{data: [{{path: train.jsonl}}], "
                     f"max_seq_len: 64}}\ntasks: [{{name: en-fr, data: {{path: val.jsonl}}}}]\n")
    assert main(["data", "check", str(suite), "--json", str(tmp_path / "findings.json")]) == 1
    leak = _findings(tmp_path)["leakage.en-fr"]
    assert leak["level"] == "error" and leak["count"] == 2
    assert leak["examples"][0] == f"{tmp_path / 'val.jsonl'}:11 is training row {tmp_path / 'train.jsonl'}:4"
    assert leak["examples"][1].startswith(f"{tmp_path / 'val.jsonl'}:12 ≈ training row {tmp_path / 'train.jsonl'}:6")
    assert _findings(tmp_path)["lengths"]["level"] == "info"


def test_role_order_rules():
    u, a, s = ({"role": r, "content": "x"} for r in ("user", "assistant", "system"))
    assert role_order_problem([s, u, a, u, a]) is None
    assert role_order_problem([u, u, a]) == "two user turns in a row"
    assert role_order_problem([u, a, s]) == "a system turn after the first"
    assert role_order_problem([u, a, u]) == "the last turn must be the assistant's answer"


def test_a_recipe_is_checked_source_by_source(tmp_path):
    _write(tmp_path / "a.jsonl", [_msg("alpha question about the weather today", "sunny"), "[1, 2]"])
    _write(tmp_path / "b.jsonl", [{"instruction": "alpha question about the weather today", "output": "sunny"}])
    (tmp_path / "r.yaml").write_text("name: r\nsources: [{name: a, path: a.jsonl}, {name: b, path: b.jsonl}]\n")
    assert main(["data", "check", str(tmp_path / "r.yaml"), "--json", str(tmp_path / "findings.json")]) == 1
    got = _findings(tmp_path)
    assert got["schema"]["examples"] == [f"{tmp_path / 'a.jsonl'}:2: each line must be a JSON object"]
    assert got["duplicates"]["examples"] == [f"{tmp_path / 'b.jsonl'}:1 repeats {tmp_path / 'a.jsonl'}:1"]
