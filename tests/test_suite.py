"""Suite loading: valid suites become typed objects; every mistake is one clear line."""
import json
from pathlib import Path

import jsonschema
import pytest

from harness.suite import SuiteError, load_suite, parse_suite, suite_json_schema

REPO = Path(__file__).resolve().parents[1]

MINIMAL = """\
name: t
models:
  - path: builtin:tiny-translator
tasks:
  - name: en-fr
    data: {synthetic: {kind: translation, direction: en-fr, split: val, n: 5}}
"""


def _error(text: str, tmp_path: Path) -> str:
    f = tmp_path / "s.yaml"
    f.write_text(text)
    with pytest.raises(SuiteError) as e:
        load_suite(f)
    msg = str(e.value)
    assert "\n" not in msg
    assert str(f) in msg
    return msg


@pytest.mark.parametrize("suite", sorted((REPO / "suites").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_suites_load(suite):
    s = load_suite(suite)
    assert s.tasks and s.models


def test_defaults_filled_in():
    s = parse_suite(MINIMAL)
    assert s.tasks[0].metrics == ["bleu", "chrf", "perplexity", "usability"]
    assert s.tasks[0].generation.do_sample is False
    assert s.models[0].name == "tiny-translator"
    assert s.train is None


def test_unknown_key_suggests_the_right_one(tmp_path):
    msg = _error(MINIMAL + "train:\n  data: [{synthetic: {n: 3}}]\n  epochz: 3\n", tmp_path)
    assert "s.yaml:9" in msg and "train.epochz" in msg and "did you mean 'epochs'" in msg


def test_wrong_type_names_line_and_field(tmp_path):
    msg = _error(MINIMAL + "train:\n  data: [{synthetic: {n: 3}}]\n  lr: fast\n", tmp_path)
    assert "s.yaml:9" in msg and "train.lr" in msg and "'fast'" in msg


def test_unknown_metric_suggests(tmp_path):
    msg = _error(MINIMAL + "    metrics: [bleu, chfr]\n", tmp_path)
    assert "chfr" in msg and "did you mean 'chrf'" in msg


def test_missing_file_is_reported_relative_to_suite(tmp_path):
    text = MINIMAL.replace("{synthetic: {kind: translation, direction: en-fr, split: val, n: 5}}",
                           "{path: data/missing.jsonl}")
    msg = _error(text, tmp_path)
    assert "missing.jsonl" in msg and "file not found" in msg and ":6" in msg


def test_missing_required_field(tmp_path):
    msg = _error("name: t\nmodels: [{path: x}]\n", tmp_path)
    assert "missing required field 'tasks'" in msg


def test_bad_yaml_gives_line(tmp_path):
    msg = _error("name: t\nmodels: [\n  - oops: : :\n", tmp_path)
    assert "not valid YAML" in msg


def test_parallel_needs_direction(tmp_path):
    (tmp_path / "a.en").write_text("hi\n")
    (tmp_path / "a.fr").write_text("salut\n")
    msg = _error(MINIMAL.replace("{synthetic: {kind: translation, direction: en-fr, split: val, n: 5}}",
                                 "{parallel: {source: a.en, target: a.fr}}"), tmp_path)
    assert msg == f"{tmp_path / 's.yaml'}:6: field 'tasks.0.data': parallel data needs `direction`, e.g. direction: en-fr"


def test_duplicate_task_names(tmp_path):
    msg = _error(MINIMAL + MINIMAL.split("tasks:\n")[1], tmp_path)
    assert msg.startswith(f"{tmp_path / 's.yaml'}:")
    assert msg.endswith("task names must be unique; repeated: ['en-fr']")


def test_published_schema_is_current_and_validates_shipped_suites():
    import yaml

    published = json.loads((REPO / "docs" / "suite.schema.json").read_text())
    assert published == json.loads(json.dumps(suite_json_schema())), \
        "docs/suite.schema.json is stale: run `harness schema -o docs/suite.schema.json`"
    for path in (REPO / "suites").glob("*.yaml"):
        jsonschema.validate(yaml.safe_load(path.read_text()), published)


@pytest.mark.parametrize("metric, message", [
    ("en-fr/blue", "task 'en-fr' has no score 'blue'; did you mean 'en-fr/bleu'?"),
    ("fr-de/bleu", "no task 'fr-de'; write TASK/METRIC with TASK one of en-fr"),
])
def test_early_stopping_metric_must_name_a_score(metric, message):
    text = ("name: s\nmodels: [{path: builtin:tiny-translator}]\n"
            "train:\n  data: [{synthetic: {kind: translation, direction: en-fr, split: train, n: 8}}]\n"
            f"  early_stopping: {{metric: {metric}}}\n"
            "tasks: [{name: en-fr, data: {synthetic: {kind: translation, direction: en-fr, split: val, n: 4}}}]\n")
    with pytest.raises(SuiteError) as e:
        parse_suite(text, file="s.yaml")
    assert str(e.value) == f"s.yaml:5: field 'train.early_stopping.metric': {message}"
    ok = text.replace(metric, "en-fr/loss")
    assert parse_suite(ok).train.early_stopping.metric == "en-fr/loss"


@pytest.mark.parametrize("setting, message", [
    ("confidence: 0.3", "field 'diagnostics.forgetting.confidence': Input should be greater than 0.5"),
    ("confidence: 1.0", "field 'diagnostics.forgetting.confidence': Input should be less than 1"),
    ("power: 0", "field 'diagnostics.forgetting.power': Input should be greater than 0"),
    ("power: 1.5", "field 'diagnostics.forgetting.power': Input should be less than 1"),
])
def test_confidence_and_power_outside_their_range_are_one_line(setting, message):
    text = ("name: s\nmodels: [{path: builtin:tiny-translator}]\n"
            "tasks: [{name: t, data: {synthetic: {n: 4}}}]\n"
            f"diagnostics:\n  forgetting: {{{setting}}}\n")
    with pytest.raises(SuiteError) as e:
        parse_suite(text, file="s.yaml")
    assert str(e.value).startswith(f"s.yaml:5: {message}") and "\n" not in str(e.value)


@pytest.mark.parametrize("options, message", [
    ("{bleu: {tokenize: jieba}}", ":8: field 'tasks.0.metric_options.bleu.tokenize': Input should be 'none', 'zh', "
                                  "'13a'"),
    ("{rouge: {tokenizer: jieba}}", ":8: field 'tasks.0.metric_options.rouge.tokenizer': Input should be 'default' "
                                    "or 'char' (got 'jieba')"),
    ("{ter: {asian: true}}", ":8: unknown key 'tasks.0.metric_options.ter.asian': allowed keys: normalized, "
                             "no_punct, asian_support, case_sensitive"),
    ("{bleux: {tokenize: zh}}", ":8: unknown key 'tasks.0.metric_options.bleux': did you mean 'bleu'?"),
])
def test_metric_options_are_checked_at_load(tmp_path, options, message):
    text = MINIMAL + f"    metrics: [bleu, ter, rouge]\n    metric_options: {options}\n"
    assert message in _error(text, tmp_path)


def test_language_options_load(tmp_path):
    s = parse_suite(MINIMAL + "    metric_options: {bleu: {tokenize: zh}, ter: {asian_support: true}, "
                              "rouge: {tokenizer: char}}\n")
    options = s.tasks[0].metric_options
    assert (options.bleu.tokenize, options.ter.asian_support, options.rouge.tokenizer) == ("zh", True, "char")


def test_grading_batch_is_auto_by_default_or_a_positive_integer(tmp_path):
    assert parse_suite(MINIMAL).tasks[0].generation.batch_size == "auto"
    assert parse_suite(MINIMAL + "    generation: {batch_size: 8}\n").tasks[0].generation.batch_size == 8
    for bad in ("0", "big"):
        msg = _error(MINIMAL + f"    generation: {{batch_size: {bad}}}\n", tmp_path)
        assert "s.yaml:7" in msg and "generation.batch_size" in msg and "auto or an integer from 1 to 4096" in msg
