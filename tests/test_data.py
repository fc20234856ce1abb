"""Every data format loads through one path; bad lines name file and line."""
import gzip
import json
from pathlib import Path

import pytest

from harness.data import load_rows
from harness.errors import DataError
from harness.suite import DataSpec, parse_suite

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "multi30k"


def _suite(tmp_path):
    return parse_suite("name: t\nmodels: [{path: x}]\ntasks: [{name: a, data: {synthetic: {n: 1}}}]\n",
                       base_dir=tmp_path)


def test_messages_jsonl(tmp_path):
    rows = [{"id": "r1", "messages": [{"role": "system", "content": "be brief"},
                                      {"role": "user", "content": "2+2?"},
                                      {"role": "assistant", "content": "4"}]}]
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    ex = load_rows(DataSpec(path="d.jsonl"), _suite(tmp_path))
    assert ex[0].id == "r1" and ex[0].reference == "4" and ex[0].source_text == "2+2?"
    assert [m["role"] for m in ex[0].prompt_messages] == ["system", "user"]


def test_prompt_completion_jsonl_with_system(tmp_path):
    (tmp_path / "d.jsonl").write_text(json.dumps({"prompt": "Hi", "completion": "Hello"}) + "\n")
    ex = load_rows(DataSpec(path="d.jsonl", system="sys"), _suite(tmp_path))
    assert [m["role"] for m in ex[0].messages] == ["system", "user", "assistant"]


def test_parallel_gz_with_prompt_template(tmp_path):
    with gzip.open(tmp_path / "s.en.gz", "wt") as f:
        f.write("A dog.\nA cat.\n")
    (tmp_path / "s.fr").write_text("Un chien.\nUn chat.\n")
    ex = load_rows(DataSpec(parallel={"source": "s.en.gz", "target": "s.fr"}, direction="en-fr"), _suite(tmp_path))
    assert len(ex) == 2 and ex[1].reference == "Un chat."
    assert ex[0].source_text == "Translate English to French:\nA dog."


@pytest.mark.parametrize("line,expect", [
    ("{not json", "not valid JSON"),
    ('{"text": "x"}', "needs `messages`"),
    ('{"messages": [{"role": "user", "content": "q"}]}', "last message must be the assistant"),
    ('{"messages": [{"role": "bot", "content": "q"}]}', "messages[0].role is 'bot'"),
])
def test_bad_lines_name_file_and_line(tmp_path, line, expect):
    good = json.dumps({"prompt": "a", "completion": "b"})
    (tmp_path / "d.jsonl").write_text(good + "\n" + line + "\n")
    with pytest.raises(DataError) as e:
        load_rows(DataSpec(path="d.jsonl"), _suite(tmp_path))
    assert f"d.jsonl:2: " in str(e.value) and expect in str(e.value)


def test_parallel_length_mismatch(tmp_path):
    (tmp_path / "a.en").write_text("one\ntwo\n")
    (tmp_path / "a.fr").write_text("un\n")
    with pytest.raises(DataError, match=r"a.en:2: parallel files differ"):
        load_rows(DataSpec(parallel={"source": "a.en", "target": "a.fr"}, direction="en-fr"), _suite(tmp_path))


def test_limit_and_offset(tmp_path):
    (tmp_path / "d.jsonl").write_text("".join(json.dumps({"prompt": str(i), "completion": "x"}) + "\n" for i in range(10)))
    ex = load_rows(DataSpec(path="d.jsonl", offset=3, limit=4), _suite(tmp_path))
    assert [e.source_text for e in ex] == ["3", "4", "5", "6"]


def test_synthetic_splits_are_disjoint_and_directions_mirror():
    s = _suite(Path("."))
    train = load_rows(DataSpec(synthetic={"direction": "en-fr", "split": "train", "n": 300}), s)
    val = load_rows(DataSpec(synthetic={"direction": "en-fr", "split": "val", "n": 50}), s)
    val_fr = load_rows(DataSpec(synthetic={"direction": "fr-en", "split": "val", "n": 50}), s)
    assert len(train) == 300 and len(val) == 50
    assert not {e.reference for e in train} & {e.reference for e in val}
    assert [e.reference for e in val] == [e.source_text.split("\n", 1)[1] for e in val_fr]


@pytest.mark.skipif(not SHARED.exists(), reason="shared Multi30k data not present")
def test_multi30k_real_parallel_data():
    s = _suite(SHARED)
    ex = load_rows(DataSpec(parallel={"source": "val.fr.gz", "target": "val.en.gz"}, direction="fr-en", limit=5), s)
    assert len(ex) == 5 and ex[0].source_text.startswith("Translate French to English:\n")


def test_synthetic_translation_without_direction_is_en_fr_everywhere(tmp_path, capsys):
    """The schema lets `direction` out; the rows, the task's language and grading then read en-fr,
    the direction the generator has always defaulted to (was: AttributeError on None.split)."""
    from harness.cli import main

    s = _suite(tmp_path)
    implicit = load_rows(DataSpec(synthetic={"split": "val", "n": 3}), s)
    explicit = load_rows(DataSpec(synthetic={"direction": "en-fr", "split": "val", "n": 3}), s)
    assert [(e.id, e.messages) for e in implicit] == [(e.id, e.messages) for e in explicit]
    assert implicit[0].messages[0]["content"].startswith("Translate English to French:")

    (tmp_path / "s.yaml").write_text("name: t\nmodels: [{path: builtin:tiny-translator}]\n"
                                     "tasks: [{name: a, data: {synthetic: {n: 3, split: val}}, metrics: [chrf]}]\n"
                                     "bootstrap: {samples: 10}\n")
    (tmp_path / "p.jsonl").write_text("".join(json.dumps({"task": "a", "id": e.id, "output": e.reference}) + "\n"
                                              for e in explicit))
    code = main(["grade", str(tmp_path / "s.yaml"), "--predictions", str(tmp_path / "p.jsonl"),
                 "--run-dir", str(tmp_path / "run"), "--no-report"])
    assert code == 0, capsys.readouterr().err
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    task = results["models"][0]["epochs"][0]["tasks"]["a"]
    assert task["metrics"]["chrf"]["score"] == 100.0
    assert task["language"]["language"] == "fr" and task["language"]["source"] == "direction"


@pytest.mark.parametrize("row, field", [
    ('{"prompt": "a\\ud800b", "completion": "c"}', "messages[0].content"),
    ('{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "\\udfff"}]}',
     "messages[1].content"),
    ('{"id": "x\\ud800", "prompt": "a", "completion": "c"}', "field 'id'"),
])
def test_a_lone_surrogate_in_task_data_is_refused_at_its_line(tmp_path, row, field):
    """JSON allows "\\ud800"; the sample file (UTF-8) cannot hold it: refused when the data is read."""
    (tmp_path / "d.jsonl").write_text(json.dumps({"prompt": "ok", "completion": "fine"}) + "\n" + row + "\n")
    with pytest.raises(DataError) as e:
        load_rows(DataSpec(path="d.jsonl"), _suite(tmp_path))
    assert str(e.value).startswith(f"{tmp_path / 'd.jsonl'}:2: {field} holds a lone surrogate")
