"""harness.dataprep recipe loading, source readers and normalisation: every format, each with a
malformed row that stops the build (file and line named) or is counted under on_error: skip."""
from __future__ import annotations

import csv
import json
import unicodedata
from pathlib import Path

import pytest

from harness.dataprep.normalise import conversation_key, normalise_messages
from harness.dataprep.recipe import RecipeError, parse_recipe
from harness.dataprep.rows import read_pool
from harness.errors import DataError


def _jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in rows),
                    encoding="utf-8")
    return path


def _recipe(tmp_path: Path, source: str, on_error: str = "fail"):
    return parse_recipe(f"name: r\non_error: {on_error}\nsources:\n  - {source}\n", file="r.yaml", base_dir=tmp_path)


def _messages(lines) -> list[list[dict]]:
    return [json.loads(x)["messages"] for x in lines.to_pylist()]


def _good(i: int) -> dict:
    return {"messages": [{"role": "user", "content": f"question {i}"}, {"role": "assistant", "content": f"answer {i}"}]}


# One malformed row per format: (file name, rows or writer, recipe source line, line/index named in the error)
def _messages_file(tmp_path):
    _jsonl(tmp_path / "m.jsonl", [_good(0), "{not json", _good(1)])
    return "{name: m, path: m.jsonl}", "m.jsonl:2", 2


def _pc_file(tmp_path):
    _jsonl(tmp_path / "pc.jsonl", [{"prompt": "p0", "completion": "c0"}, {"prompt": "p1", "completion": 3},
                                   {"prompt": "p2", "completion": "c2"}])
    return "{name: pc, path: pc.jsonl}", "pc.jsonl:2", 2


def _alpaca_file(tmp_path):
    _jsonl(tmp_path / "a.jsonl", [{"instruction": "Add", "input": "2 and 3", "output": "5"},
                                  {"instruction": "Sub", "input": None, "output": "1"},
                                  {"instruction": "Say hi", "input": "", "output": "hi"},
                                  {"instruction": "Mul", "input": 7, "output": "0"}])
    return "{name: a, path: a.jsonl}", "a.jsonl:4", 3


def _sharegpt_file(tmp_path):
    _jsonl(tmp_path / "s.jsonl", [
        {"conversations": [{"from": "system", "value": "Be brief."}, {"from": "human", "value": "hi"},
                           {"from": "gpt", "value": "hello"}]},
        {"conversations": [{"from": "robot", "value": "beep"}, {"from": "gpt", "value": "boop"}]},
        {"conversations": [{"from": "human", "value": "x"}, {"from": "gpt", "value": "y"}]}])
    return "{name: s, path: s.jsonl}", "s.jsonl:2", 2


def _csv_file(tmp_path):
    with open(tmp_path / "t.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["question", "answer"])
        w.writerows([["q0", "007"], ["q1", "a1", "surplus"], ["q2", "a2"]])
    return "{name: t, path: t.csv, columns: {prompt: question, completion: answer}}", "t.csv:3", 2


def _parquet_file(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"prompt": ["p0", "p1", "p2"], "completion": ["c0", None, "c2"]}), tmp_path / "t.parquet")
    return "{name: t, path: t.parquet}", "t.parquet[1]", 2


def _disk_dataset(tmp_path):
    import datasets

    ds = datasets.Dataset.from_list([
        {"messages": [{"role": "user", "content": "u0"}, {"role": "assistant", "content": "a0"}]},
        {"messages": [{"role": "robot", "content": "u1"}, {"role": "assistant", "content": "a1"}]},
        {"messages": [{"role": "user", "content": "u2"}, {"role": "assistant", "content": "a2"}]}])
    ds.save_to_disk(str(tmp_path / "ds"))
    return "{name: d, path: ds}", "ds[1]", 2


def _parallel_files(tmp_path):
    (tmp_path / "a.en").write_text("The cat.\nThe dog.\nA bird.\n", encoding="utf-8")
    (tmp_path / "a.fr").write_text("Le chat.\nLe chien.\n", encoding="utf-8")
    return "{name: p, parallel: {source: a.en, target: a.fr, direction: en-fr}}", "a.en:3", 2


FORMATS = [_messages_file, _pc_file, _alpaca_file, _sharegpt_file, _csv_file, _parquet_file, _disk_dataset,
           _parallel_files]


@pytest.mark.parametrize("make", FORMATS, ids=lambda f: f.__name__.strip("_"))
def test_a_malformed_row_stops_the_build_naming_file_and_line(tmp_path, make):
    source, where, _ = make(tmp_path)
    with pytest.raises(DataError) as err:
        read_pool(_recipe(tmp_path, source).sources[0], 0, _recipe(tmp_path, source))
    msg = str(err.value)
    assert where in msg and "on_error: skip" in msg and "\n" not in msg


@pytest.mark.parametrize("make", FORMATS, ids=lambda f: f.__name__.strip("_"))
def test_on_error_skip_counts_the_malformed_row(tmp_path, make):
    source, where, good = make(tmp_path)
    recipe = _recipe(tmp_path, source, on_error="skip")
    rows, counts = read_pool(recipe.sources[0], 0, recipe)
    assert counts.invalid == 1 and len(rows) == good == counts.loaded
    assert where in counts.invalid_examples[0]


def test_each_format_becomes_messages(tmp_path):
    _alpaca_file(tmp_path), _sharegpt_file(tmp_path), _csv_file(tmp_path), _parallel_files(tmp_path)
    got = {}
    for source in ("{name: a, path: a.jsonl}", "{name: s, path: s.jsonl}",
                   "{name: t, path: t.csv, columns: {prompt: question, completion: answer}}",
                   "{name: p, parallel: {source: a.en, target: a.fr, direction: en-fr}}"):
        recipe = _recipe(tmp_path, source, on_error="skip")
        rows, _ = read_pool(recipe.sources[0], 0, recipe)
        got[recipe.sources[0].name] = (_messages(rows.lines), [json.loads(x) for x in rows.lines.to_pylist()])
    assert got["a"][0][0] == [{"role": "user", "content": "Add\n\n2 and 3"}, {"role": "assistant", "content": "5"}]
    assert got["a"][0][1][0]["content"] == "Sub"         # null input: the instruction alone
    assert got["a"][0][2][0]["content"] == "Say hi"      # empty input: the instruction alone
    assert got["s"][0][0][0] == {"role": "system", "content": "Be brief."}
    assert got["t"][0][0][1]["content"] == "007"          # CSV read as text, not as the number 7
    assert got["p"][0][0][0]["content"] == "Translate English to French:\nThe cat."
    # every row tagged with its source and original line (text files) / index (tables)
    assert [(r["source"], r["line"], r["id"]) for r in got["a"][1]] == [("a", 1, "a:1"), ("a", 2, "a:2"), ("a", 3, "a:3")]
    assert [r["line"] for r in got["t"][1]] == [2, 4]


def test_nfc_trim_and_empty_turns_dropped_and_counted(tmp_path):
    nfd = unicodedata.normalize("NFD", "  café \n")
    _jsonl(tmp_path / "m.jsonl", [
        {"messages": [{"role": "system", "content": "   "}, {"role": "user", "content": nfd},
                      {"role": "assistant", "content": "oui\t"}]},
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": " \n "}]}])
    recipe = _recipe(tmp_path, "{name: m, path: m.jsonl}")
    rows, counts = read_pool(recipe.sources[0], 0, recipe)
    assert _messages(rows.lines) == [[{"role": "user", "content": "café"}, {"role": "assistant", "content": "oui"}]]
    assert unicodedata.is_normalized("NFC", _messages(rows.lines)[0][0]["content"])
    assert counts.empty_turns == 2 and counts.empty_rows == 1 and counts.loaded == 1 and counts.read == 2


def test_dedup_key_ignores_whitespace_case_and_unicode_form_not_words():
    a = [{"role": "user", "content": "Le café  est\tchaud"}, {"role": "assistant", "content": "Yes"}]
    b = [{"role": "user", "content": unicodedata.normalize("NFD", "le CAFÉ est chaud")},
         {"role": "assistant", "content": " yes "}]
    c = [{"role": "user", "content": "Le café est froid"}, {"role": "assistant", "content": "Yes"}]
    assert conversation_key(a) == conversation_key(b) != conversation_key(c)
    assert conversation_key(a) != conversation_key([{"role": "system", "content": m["content"]} for m in a])
    assert normalise_messages(b).messages[0]["content"] == "le CAFÉ est chaud"   # stored text keeps its case


def test_recipe_errors_name_file_line_and_fix(tmp_path):
    _jsonl(tmp_path / "m.jsonl", [_good(0)])
    with pytest.raises(RecipeError, match=r"^r\.yaml:4: unknown key 'sources\.0\.wieght': did you mean 'weight'\?"):
        parse_recipe("name: r\nsources:\n  - name: m\n    wieght: 2\n    path: m.jsonl\n", "r.yaml", tmp_path)
    with pytest.raises(RecipeError, match=r"^r\.yaml:3: field 'sources\.0\.path': file not found: .*gone\.jsonl"):
        parse_recipe("name: r\nsources:\n  - {name: m, path: gone.jsonl}\n", "r.yaml", tmp_path)
    with pytest.raises(RecipeError, match=r"^r\.yaml:3: .*exactly one of path, parallel, hf"):
        parse_recipe("name: r\nsources:\n  - {name: m}\n", "r.yaml", tmp_path)
    with pytest.raises(RecipeError, match=r"^r\.yaml:4: field 'mix\.strategy'"):
        parse_recipe("name: r\nsources: [{name: m, path: m.jsonl}]\nmix:\n  strategy: blend\n", "r.yaml", tmp_path)
    r = parse_recipe("name: r\nsources: [{name: m, path: m.jsonl}]\nnear_duplicates: {action: off}\n", "r.yaml", tmp_path)
    assert r.near_duplicates.action == "off"    # YAML's bare `off` is false: read as intended


def test_hub_sources_go_through_datasets_load_dataset(tmp_path, monkeypatch):
    """The hub reader is real code; here `load_dataset` answers from memory (tests never use the network)."""
    import datasets

    calls = []

    def fake_load(name, config, split, revision):
        calls.append((name, config, split, revision))
        return datasets.Dataset.from_list([{"prompt": "p", "completion": "c"}])

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    recipe = _recipe(tmp_path, "{name: h, hf: {name: org/set, split: test, revision: abc}}")
    rows, counts = read_pool(recipe.sources[0], 0, recipe)
    assert calls == [("org/set", None, "test", "abc")] and counts.loaded == 1
    assert json.loads(rows.lines[0].as_py())["id"] == "h:0"


def test_a_source_is_read_as_the_suite_loader_reads_it_bom_crlf_and_bad_bytes_included(tmp_path):
    """One reader for JSONL and parallel text: a BOM and CRLF endings are read, a byte that is not
    UTF-8 is one error naming its line (not a UnicodeDecodeError)."""
    (tmp_path / "m.jsonl").write_bytes(b"\xef\xbb\xbf" + (json.dumps(_good(0)) + "\r\n").encode())
    recipe = _recipe(tmp_path, "{name: m, path: m.jsonl}")
    rows, counts = read_pool(recipe.sources[0], 0, recipe)
    assert counts.loaded == 1 and _messages(rows.lines)[0][1]["content"] == "answer 0"
    (tmp_path / "a.en").write_bytes(b"one\ntw\xe9\n")
    (tmp_path / "a.fr").write_text("un\ndeux\n", encoding="utf-8")
    recipe = _recipe(tmp_path, "{name: p, parallel: {source: a.en, target: a.fr, direction: en-fr}}", on_error="skip")
    with pytest.raises(DataError) as err:
        read_pool(recipe.sources[0], 0, recipe)
    assert str(err.value) == f"{tmp_path / 'a.en'}:2: not UTF-8 text (byte 0xe9 at column 3): save the file as UTF-8"


def test_a_hub_dataset_that_cannot_load_is_one_line(tmp_path, monkeypatch):
    import datasets

    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'org/set' on the Hub (LocalEntryNotFoundError)\nmore detail")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    recipe = _recipe(tmp_path, "{name: h, hf: {name: org/set}}")
    with pytest.raises(DataError) as err:
        read_pool(recipe.sources[0], 0, recipe)
    assert str(err.value) == ("hf dataset 'org/set': cannot load (Couldn't reach 'org/set' on the Hub "
                              "(LocalEntryNotFoundError)); offline runs need it in the local datasets cache")
