"""json_valid / json_schema_valid: strict parsing, accept modes, schema errors, hostile input."""
from __future__ import annotations


import pytest

from harness.metrics import build_metrics, metric_for
from harness.metrics.base import GradedItem
from harness.metrics.json_validity import extract_json, json_validity

SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
    "additionalProperties": False,
}
FENCED = '```json\n{"name": "Ann", "age": 3}\n```'


def item(output, i=0):
    return GradedItem(id=f"x{i}", source="", reference="", output=output, finish_reason="eos")


def metrics(**options):
    return {m.name: m for m in json_validity(options)}


def run(metric, outputs):
    items = [item(o, i) for i, o in enumerate(outputs)]
    return metric.score(metric.stats(items)), metric.details(items)


# ------------------------------------------------------------------ extract_json
def test_bare_object_parses():
    assert extract_json('{"name": "Ann", "age": 3}') == ({"name": "Ann", "age": 3}, None)
    assert extract_json('  \n{"a": [1, 2.5, null, true]}\n ') == ({"a": [1, 2.5, None, True]}, None)


@pytest.mark.parametrize("accept", ["object", "fenced", "any"])
@pytest.mark.parametrize("text", [None, "", "   \n\t"])
def test_empty_output_is_invalid(text, accept):
    assert extract_json(text, accept) == (None, "empty output")


def test_code_fence_valid_only_under_fenced():
    assert extract_json(FENCED, "fenced") == ({"name": "Ann", "age": 3}, None)
    assert extract_json('```\n{"a": 1}\n```', "fenced") == ({"a": 1}, None)
    assert extract_json('```JSON {"a": 1}```', "fenced") == ({"a": 1}, None)
    value, err = extract_json(FENCED, "object")
    assert value is None and err == "JSON inside a code fence (not accepted with accept: object)"
    assert extract_json(FENCED, "any")[0] is None
    # fenced still accepts a bare object; it does not accept prose around the fence
    assert extract_json('{"a": 1}', "fenced") == ({"a": 1}, None)
    assert extract_json('Here it is:\n```json\n{"a": 1}\n```', "fenced")[1] == "Expecting value: line 1 column 1"
    assert extract_json('```json\n{"a": 1}', "fenced")[1] == "unterminated or malformed code fence"
    assert extract_json('```python\n{"a": 1}\n```', "fenced")[0] is None


@pytest.mark.parametrize("accept", ["object", "fenced", "any"])
def test_trailing_commas_are_invalid(accept):
    assert extract_json('{"a": 1,}', accept) == (None, "Illegal trailing comma before end of object: line 1 column 9")
    assert extract_json('{"a": [1, 2,\n]}', accept) == (None, "Illegal trailing comma before end of array: line 2 column 1")


def test_strict_json_errors_with_positions():
    assert extract_json('{"a": 1 "b": 2}') == (None, "Expecting ',' delimiter: line 1 column 9")
    assert extract_json("{'a': 1}") == (None, "Expecting property name enclosed in double quotes: line 1 column 2")
    assert extract_json('{"a": 1} extra') == (None, "Extra data: line 1 column 10")
    assert extract_json('{"a": NaN}') == (None, "NaN is not valid JSON")
    assert extract_json("-Infinity", "any") == (None, "-Infinity is not valid JSON")
    assert extract_json('{"a": 1} // note')[0] is None


def test_accept_object_vs_any():
    assert extract_json("[1, 2]") == (None, "not a JSON object (got array)")
    assert extract_json("42") == (None, "not a JSON object (got number)")
    assert extract_json('"hi"') == (None, "not a JSON object (got string)")
    assert extract_json("null") == (None, "not a JSON object (got null)")
    assert extract_json("[1, 2]", "any") == ([1, 2], None)
    assert extract_json("42", "any") == (42, None)
    assert extract_json("null", "any") == (None, None)  # valid: test the error, not the value


def test_max_chars():
    text = '{"a": "' + "x" * 10 + '"}'  # 19 characters
    assert extract_json(text, max_chars=19) == ({"a": "x" * 10}, None)
    assert extract_json(text, max_chars=18) == (None, "output too long")
    assert extract_json(" " * 100_001 + "{}") == (None, "output too long")  # default limit 100 000


def test_one_megabyte_of_brackets_does_not_crash():
    mb = "[" * 1_000_000
    assert extract_json(mb, "any") == (None, "output too long")
    assert extract_json(mb, "any", max_chars=2_000_000) == (None, "nesting too deep")
    closed = "[" * 500_000 + "]" * 500_000
    assert extract_json(closed, "any", max_chars=2_000_000) == (None, "nesting too deep")
    objects = '{"a": ' * 170_000  # about 1 MB of nested objects
    assert extract_json(objects, "object", max_chars=2_000_000) == (None, "nesting too deep")


def test_long_whitespace_in_a_fence_is_handled():
    # a regex like ```(.*?)\s*``` backtracks quadratically here; the time it takes is measured
    # by benchmarks/text_scanning.py (10x the text should take about 10x, not 100x, as long)
    assert extract_json("```json\n" + " " * 99_000 + "x", "fenced") == (None, "unterminated or malformed code fence")
    assert extract_json("```json\n" + " " * 99_000 + "x```", "fenced") == (None, "Expecting value: line 2 column 99001")


def test_huge_integer_is_an_error_not_a_crash():
    value, err = extract_json('{"a": ' + "1" * 5000 + "}")
    assert value is None and "4300 digits" in err


# ------------------------------------------------------------------ metrics
def test_factory_without_schema_gives_json_valid_only():
    assert [m.name for m in json_validity({})] == ["json_valid"]
    assert [m.name for m in json_validity({"schema": SCHEMA})] == ["json_valid", "json_schema_valid"]
    assert [m.name for m in build_metrics(["json_validity"], {"json_validity": {"schema": SCHEMA}})] == [
        "json_valid", "json_schema_valid"]
    assert metric_for("json_schema_valid", {"json_validity": {"schema": SCHEMA}}).name == "json_schema_valid"


def test_factory_rejects_bad_options():
    with pytest.raises(ValueError, match="accept"):
        json_validity({"accept": "loose"})
    with pytest.raises(ValueError, match="unknown option"):
        json_validity({"shema": SCHEMA})
    with pytest.raises(ValueError, match="max_chars"):
        json_validity({"max_chars": 0})
    with pytest.raises(ValueError, match="Draft 2020-12"):
        json_validity({"schema": {"type": "integr"}})


def test_scores_and_details_hand_checked():
    m = metrics(schema=SCHEMA)
    outputs = [
        '{"name": "Ann", "age": 3}',      # valid, schema-valid
        '{"name": "Bob", "age": "x"}',    # valid, type mismatch
        '{"name": "Cy", "age": 4,}',      # trailing comma
        "",                               # empty
        FENCED,                           # fence under accept: object
    ]
    score, details = run(m["json_valid"], outputs)
    assert score == pytest.approx(100 * 2 / 5)
    assert details == [
        {}, {},
        {"error": "Illegal trailing comma before end of object: line 1 column 25"},
        {"error": "empty output"},
        {"error": "JSON inside a code fence (not accepted with accept: object)"},
    ]
    score, details = run(m["json_schema_valid"], outputs)
    assert score == pytest.approx(100 * 1 / 5)
    assert details[0] == {}
    assert details[1] == {"error": "$.age: 'x' is not of type 'integer'", "path": "$.age"}
    assert details[3] == {"error": "empty output"}
    # per-sample scores as written to the sample file
    assert [m["json_schema_valid"].sample_score(r) for r in m["json_schema_valid"].stats(
        [item(o) for o in outputs])] == [100.0, 0.0, 0.0, 0.0, 0.0]


def test_fenced_mode_counts_the_fence():
    m = metrics(schema=SCHEMA, accept="fenced")
    assert run(m["json_valid"], [FENCED, '{"name": "A", "age": 1}'])[0] == 100.0
    assert run(m["json_schema_valid"], [FENCED, '{"name": "A", "age": 1.5}'])[0] == 50.0


def test_schema_errors_required_and_nested_paths():
    schema = {"type": "object", "properties": {"items": {"type": "array", "items": {"type": "integer"}}},
              "required": ["items", "id"]}
    m = metrics(schema=schema)["json_schema_valid"]
    _, details = run(m, ['{"items": [1, "two"], "id": 1}', '{"items": []}'])
    assert details[0] == {"error": "$.items[1]: 'two' is not of type 'integer'", "path": "$.items[1]"}
    assert details[1] == {"error": "$: 'id' is a required property", "path": "$"}


def test_deep_nesting_in_validation_does_not_crash():
    recursive = {"$defs": {"n": {"type": "array", "items": {"$ref": "#/$defs/n"}}}, "$ref": "#/$defs/n"}
    m = metrics(schema=recursive, accept="any")
    ok, details = run(m["json_schema_valid"], ["[[[]]]", "[" * 300 + "]" * 300])
    assert details[0] == {}
    assert details[1] == {"error": "nesting too deep to validate"}
    assert ok == 50.0


def test_signatures():
    m = metrics(schema=SCHEMA, accept="fenced")
    assert m["json_valid"].signature() == "json_valid|accept:fenced|max_chars:100000|parser:strict"
    sig = m["json_schema_valid"].signature()
    assert sig.startswith("json_schema_valid|draft:2020-12|schema:sha256:") and "accept:fenced" in sig
    # the schema hash ignores key order
    reordered = dict(reversed(list(SCHEMA.items())))
    assert metrics(schema=reordered, accept="fenced")["json_schema_valid"].signature() == sig
