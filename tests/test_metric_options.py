"""Metric options as one typed model per metric (harness/metric_options.py), checked when the suite loads."""
from __future__ import annotations

import pytest
import yaml

from harness.metric_options import BleuOptions, ExactMatchOptions, RougeOptions
from harness.metrics import MetricOptions, build_metrics, metric_for, metric_options_from, options_for
from harness.suite import SuiteError, dump_suite, parse_suite

SUITE = """\
name: opts
models: [{path: builtin:tiny-translator}]
tasks:
  - name: t
    data: {synthetic: {kind: math, n: 2}}
    metrics: [bleu, rouge, exact_match]
    metric_options:
%s
"""


def _suite(options: str):
    return parse_suite(SUITE % options, file="s.yaml")


def test_options_become_typed_models_that_the_metrics_read():
    suite = _suite("      rouge: {tokenizer: char}\n      exact_match: {mode: number, tol: 0.5}\n"
                   "      bleu: {tokenize: char, lowercase: true}")
    opts = suite.tasks[0].metric_options
    assert isinstance(opts, MetricOptions)
    assert isinstance(opts.rouge, RougeOptions) and opts.rouge.tokenizer == "char"
    assert isinstance(opts.exact_match, ExactMatchOptions) and opts.exact_match.tol == 0.5
    metrics = {m.name: m for m in build_metrics(suite.tasks[0].metrics, opts)}
    assert metrics["rouge2"].tokenizer == "char"
    assert (metrics["exact_match"].mode, metrics["exact_match"].tol) == ("number", 0.5)
    sig = metrics["bleu"].signature()
    assert "tok:char" in sig and "case:lc" in sig     # the options reached sacrebleu


def test_an_unset_metric_gets_its_defaults_and_the_stored_suite_lists_only_set_ones():
    suite = _suite("      rouge: {tokenizer: char}")
    assert suite.tasks[0].metric_options.of("exact_match") == ExactMatchOptions()
    assert suite.tasks[0].metric_options.bleu is None
    dumped = dump_suite(suite)
    assert yaml.safe_load(dumped)["tasks"][0]["metric_options"] == {"rouge": {"tokenizer": "char",
                                                                              "use_stemmer": False}}
    again = parse_suite(dumped, file="dumped.yaml")   # the stored suite loads back to the same options
    assert again.tasks[0].metric_options == suite.tasks[0].metric_options


@pytest.mark.parametrize("options, message", [
    ("      rouge: {tokenizr: char}", "s.yaml:8: unknown key 'tasks.0.metric_options.rouge.tokenizr': "
                                      "did you mean 'tokenizer'?"),
    ("      bleu: {smooth_method: exponential}", "s.yaml:8: field 'tasks.0.metric_options.bleu.smooth_method'"),
    ("      exact_match: {tol: yes}", "must be a number, not true"),
    ("      chrf: {char_order: 0}", "s.yaml:8: field 'tasks.0.metric_options.chrf.char_order': "
                                    "Input should be greater than or equal to 1 (got 0)"),
    ("      perplexity: {stride: 512}", "s.yaml:8: unknown key 'tasks.0.metric_options.perplexity.stride': "
                                        "it takes no keys: remove it"),
    ("      blue: {}", "s.yaml:8: unknown key 'tasks.0.metric_options.blue': did you mean 'bleu'?"),
])
def test_bad_options_fail_at_load_with_file_line_and_fix(options, message):
    with pytest.raises(SuiteError) as e:
        _suite(options)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_a_dict_is_validated_with_the_metric_name_in_the_message():
    assert options_for("bleu", {"tokenize": "zh"}) == BleuOptions(tokenize="zh")
    with pytest.raises(ValueError, match=r"^rouge: tokenizer must be one of default, char, not 'jieba'$"):
        options_for("rouge", {"tokenizer": "jieba"})
    with pytest.raises(ValueError, match=r"^exact_match: unknown option\(s\) mdoe; known: mode, tol$"):
        options_for("exact_match", {"mdoe": "number"})
    with pytest.raises(ValueError, match="unknown metric 'rogue'"):
        metric_options_from({"rogue": {}})


def test_readers_rebuild_metrics_from_a_stored_suite_dict():
    """gate and diagnose get plain dicts back from results.json: they validate into the same models."""
    stored = {"rouge": {"tokenizer": "char", "use_stemmer": False}, "json_validity": {"schema": None}}
    assert metric_for("rougeL", stored).tokenizer == "char"
    assert metric_for("json_schema_valid", {"json_validity": {"schema": True}}).name == "json_schema_valid"
