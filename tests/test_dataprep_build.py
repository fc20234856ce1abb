"""`harness data build` end to end on planted data: exact duplicate counts per source and stage,
near-duplicates, ratios, the split, determinism, the manifest and reuse by recipe hash."""
from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from harness.cli import main
from harness.dataprep.build import build_dataset, build_or_reuse
from harness.dataprep.export import sha256_file
from harness.dataprep.normalise import conversation_key, prompt_key
from harness.dataprep.recipe import load_recipe, recipe_hash


def _msg(q: str, a: str) -> dict:
    return {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}


def _write(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def planted(tmp_path: Path, extra: str = "", near: str = "off") -> Path:
    """chat: 400 distinct rows + 10 exact copies + 5 whitespace variants + 5 NFD/case variants;
    alpaca: 300 distinct + 7 rows that are chat rows (across) + 3 exact copies within;
    pc: 200 distinct + 4 rows equal to alpaca rows (across) + 1 bad row."""
    chat = [_msg(f"Question number {i} about café {i * 7}", f"Answer {i}") for i in range(400)]
    chat += [dict(chat[i]) for i in range(10)]
    chat += [_msg(f"  Question  number {i} about café\t{i * 7} ", f"Answer {i}\n") for i in range(20, 25)]
    chat += [_msg(unicodedata.normalize("NFD", f"QUESTION number {i} about CAFÉ {i * 7}"), f"answer {i}")
             for i in range(30, 35)]
    _write(tmp_path / "chat.jsonl", chat)
    alpaca = [{"instruction": f"Task {i}", "input": f"data {i}", "output": f"result {i}"} for i in range(300)]
    alpaca += [{"instruction": f"Question number {i} about café {i * 7}", "input": "", "output": f"Answer {i}"}
               for i in range(100, 107)]
    alpaca += [dict(alpaca[i]) for i in range(3)]
    _write(tmp_path / "alpaca.jsonl", alpaca)
    pc = [{"prompt": f"Prompt {i}", "completion": f"Completion {i}"} for i in range(200)]
    pc += [{"prompt": f"Task {i}\n\ndata {i}", "completion": f"result {i}"} for i in range(4)]
    pc.insert(50, {"prompt": "broken", "completion": None})
    _write(tmp_path / "pc.jsonl", pc)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"""name: planted
seed: 3
sources:
  - {{name: chat, path: chat.jsonl, weight: 2}}
  - {{name: alpaca, path: alpaca.jsonl, weight: 1}}
  - {{name: pc, path: pc.jsonl, weight: 1, on_error: skip}}
near_duplicates: {{action: {near}}}
{extra}""", encoding="utf-8")
    return recipe


@pytest.fixture
def built(tmp_path):
    recipe = load_recipe(planted(tmp_path))
    return build_dataset(recipe, tmp_path / "out"), tmp_path / "out"


def _rows(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


def test_exact_duplicate_counts_within_across_and_variants(built):
    manifest, _ = built
    s = manifest["sources"]
    assert (s["chat"]["read"], s["chat"]["duplicates_within"], s["chat"]["kept"]) == (420, 20, 400)
    assert (s["alpaca"]["duplicates_within"], s["alpaca"]["duplicates_across"], s["alpaca"]["kept"]) == (3, 7, 300)
    assert (s["pc"]["invalid"], s["pc"]["duplicates_across"], s["pc"]["kept"]) == (1, 4, 200)
    assert "pc.jsonl:51" in s["pc"]["invalid_examples"][0]          # skipped, counted, quoted: never silent
    st = manifest["stages"]
    assert (st["read"], st["loaded"], st["after_exact_dedup"]) == (420 + 310 + 205, 420 + 310 + 204, 900)
    assert st["duplicates_after_mix"] == 0 and st["mixed"] == st["train"] + st["validation"] == 900   # concat


def test_train_and_validation_share_no_row_and_no_prompt(built):
    manifest, out = built
    train, val = _rows(out / "train.jsonl"), _rows(out / "validation.jsonl")
    assert len(val) == manifest["stages"]["validation"] >= 100 and len(train) == manifest["stages"]["train"]
    assert {conversation_key(r["messages"]) for r in train}.isdisjoint(conversation_key(r["messages"]) for r in val)
    assert {prompt_key(r["messages"]) for r in train}.isdisjoint(prompt_key(r["messages"]) for r in val)
    keys = [conversation_key(r["messages"]) for r in train + val]
    assert len(set(keys)) == len(keys) == 900


def test_parquet_holds_the_same_rows_as_jsonl(built):
    _, out = built
    table = pq.read_table(out / "train.parquet")
    assert table.column_names == ["id", "source", "line", "messages"]
    assert table.to_pylist() == _rows(out / "train.jsonl")


def test_manifest_records_hashes_ratios_and_seed(built, tmp_path):
    manifest, out = built
    assert manifest["seed"] == 3 and manifest["recipe_hash"] == recipe_hash(load_recipe(tmp_path / "recipe.yaml"))
    for name, rec in manifest["outputs"].items():
        assert sha256_file(out / name) == rec["sha256"]
    assert manifest["outputs"]["validation.jsonl"]["rows"] == manifest["stages"]["validation"]
    assert sum(manifest["mix"]["realised"].values()) == pytest.approx(1)
    assert json.loads((out / "manifest.json").read_text()) == manifest


def test_same_recipe_and_seed_give_byte_identical_outputs(tmp_path):
    recipe = load_recipe(planted(tmp_path, "mix: {strategy: interleave}\n"))
    build_dataset(recipe, tmp_path / "a")
    build_dataset(recipe, tmp_path / "b")
    for name in ("train.jsonl", "validation.jsonl", "train.parquet", "validation.parquet", "manifest.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    other = load_recipe(tmp_path / "recipe.yaml")
    other.seed = 4
    build_dataset(other, tmp_path / "c")
    assert (tmp_path / "c" / "train.jsonl").read_bytes() != (tmp_path / "a" / "train.jsonl").read_bytes()


def test_interleave_and_resample_report_realised_ratios(tmp_path):
    m = build_dataset(load_recipe(planted(tmp_path, "mix: {strategy: resample, size: 1000}\n")), tmp_path / "r")
    assert m["mix"]["realised"] == {"chat": 0.5, "alpaca": 0.25, "pc": 0.25}
    assert m["stages"]["mixed"] == 1000 and m["stages"]["repeats"] > 0
    m = build_dataset(load_recipe(planted(tmp_path, "mix: {strategy: interleave}\n")), tmp_path / "i")
    assert m["mix"]["realised"]["chat"] == pytest.approx(0.5, abs=0.05)
    assert m["stages"]["repeats"] == 0 and m["stages"]["duplicates_after_mix"] == 0


def test_near_duplicates_are_reported_or_removed(tmp_path):
    recipe_path = planted(tmp_path, near="report")
    rows = _rows(tmp_path / "chat.jsonl")
    rows.append(_msg("Which river runs through the old town where the market opens every Sunday morning?",
                     "The Seine runs through it, past the market."))
    rows.append(_msg("Which river runs through the old city where the market opens every Sunday morning",
                     "The Seine runs through it, past the market!"))   # a word and punctuation changed
    _write(tmp_path / "chat.jsonl", rows)
    reported = build_dataset(load_recipe(recipe_path), tmp_path / "rep")
    assert reported["sources"]["chat"]["near_duplicates"] >= 1 and reported["sources"]["chat"]["near_removed"] == 0
    assert {"id": "chat:422", "same_as": "chat:421"} in [{k: e[k] for k in ("id", "same_as")}
                                                      for e in reported["near_duplicates"]["examples"]]
    recipe_path.write_text(recipe_path.read_text().replace("action: report", "action: remove"))
    removed = build_dataset(load_recipe(recipe_path), tmp_path / "rem")
    n = removed["sources"]["chat"]["near_removed"]
    assert n == reported["sources"]["chat"]["near_duplicates"]
    assert removed["stages"]["after_near_dedup"] == reported["stages"]["after_near_dedup"] - n


def test_a_bad_row_fails_the_build_with_file_and_line(tmp_path, capsys):
    recipe = planted(tmp_path)
    recipe.write_text(recipe.read_text().replace(", on_error: skip", ""))
    assert main(["data", "build", str(recipe), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "pc.jsonl:51" in err and "Traceback" not in err


def test_build_or_reuse_rebuilds_only_when_the_recipe_or_an_input_changes(tmp_path):
    recipe_path = planted(tmp_path)
    logs: list[str] = []
    first = build_or_reuse(load_recipe(recipe_path), tmp_path / "cache", logs.append)
    again = build_or_reuse(load_recipe(recipe_path), tmp_path / "cache", logs.append)
    assert again == first and any("reusing" in m for m in logs)
    with open(tmp_path / "pc.jsonl", "a") as f:
        f.write(json.dumps({"prompt": "new", "completion": "row"}) + "\n")
    logs.clear()
    changed = build_or_reuse(load_recipe(recipe_path), tmp_path / "cache", logs.append)
    assert changed["recipe_hash"] != first["recipe_hash"] and not any("reusing" in m for m in logs)
    assert changed["sources"]["pc"]["kept"] == 201


def test_cli_build_prints_counts_and_writes_outputs(tmp_path, capsys):
    assert main(["data", "build", str(planted(tmp_path)), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "chat" in out and "manifest.json" in out
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "manifest.json", "train.jsonl", "train.parquet", "validation.jsonl", "validation.parquet"]
