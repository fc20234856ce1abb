"""The metric catalogue (harness/metrics/__init__.py METRICS): a metric added there appears everywhere.

A new metric is defined here, added with one catalogue entry, and then found by every part of
the harness that knows metrics: the suite's accepted names and its JSON Schema, a suite using it,
the memory plan's grading phase, and the diagnostics' mapping from result names to metrics.
"""
from __future__ import annotations

import typing

import numpy as np
import pytest

from harness import memory as M
from harness.diagnose.evidence import ItemStats
from harness.metric_options import NoOptions
from harness.metrics import METRICS, MetricOptions, build_metrics, metric_family, metric_for
from harness.metrics.base import GradedItem, MeanMetric, Metric
from harness.suite import SuiteError, parse_suite, suite_json_schema


class Shouting(MeanMetric):
    """Share of outputs in capitals, stored as two results (as ROUGE stores three)."""

    results = ("shouting_any", "shouting_all")

    def __init__(self, name: str):
        self.name = name

    def value(self, item: GradedItem) -> float:
        letters = [c for c in item.output or "" if c.isalpha()]
        upper = [c.isupper() for c in letters]
        return float(bool(letters) and (any(upper) if self.name == "shouting_any" else all(upper)))

    @classmethod
    def from_options(cls, options: NoOptions) -> list[Metric]:
        return [cls(name) for name in cls.results]


class AnswerLength(Metric):
    """Mean reference length in tokens: needs the likelihood pass only, no generation."""

    name, needs, higher_is_better = "answer_length", "likelihood", False

    def stats(self, items):
        return np.array([[it.n_tokens] for it in items], dtype=float).reshape(len(items), 1)

    def score(self, stats):
        return float(stats[:, 0].mean())


SUITE = """\
name: new-metric
models: [{{name: q, path: Qwen/Qwen3-0.6B, dtype: bfloat16}}]
tasks:
  - name: t
    data: {{synthetic: {{kind: translation, direction: en-fr, split: val, n: 20}}}}
    metrics: [{metrics}]
"""


@pytest.fixture
def catalogue(monkeypatch):
    monkeypatch.setitem(METRICS, "shouting", Shouting)
    monkeypatch.setitem(METRICS, "answer_length", AnswerLength)


def test_without_its_catalogue_entry_a_metric_is_unknown_to_the_suite():
    with pytest.raises(SuiteError, match="unknown metric 'shouting'"):
        parse_suite(SUITE.format(metrics="shouting"), file="s.yaml")
    assert "shouting" not in suite_json_schema()["$defs"]["TaskSpec"]["properties"]["metrics"]["items"]["enum"]


def test_a_catalogue_entry_reaches_the_suite_its_schema_and_grading(catalogue):
    enum = suite_json_schema()["$defs"]["TaskSpec"]["properties"]["metrics"]["items"]["enum"]
    assert enum[-2:] == ["shouting", "answer_length"] and enum[:2] == ["bleu", "chrf"]
    suite = parse_suite(SUITE.format(metrics="shouting, bleu"), file="s.yaml")
    assert suite.tasks[0].metrics == ["shouting", "bleu"]
    with pytest.raises(SuiteError, match="did you mean 'shouting'"):
        parse_suite(SUITE.format(metrics="shoutin"), file="s.yaml")
    metrics = build_metrics(suite.tasks[0].metrics, suite.tasks[0].metric_options)
    assert [m.name for m in metrics] == ["shouting_any", "shouting_all", "bleu"]
    items = [GradedItem("1", "s", "r", output="HELLO"), GradedItem("2", "s", "r", output="Hello"),
             GradedItem("3", "s", "r", output="hello")]
    assert [m.score(m.stats(items)) for m in metrics[:2]] == pytest.approx([200 / 3, 100 / 3])


def test_the_memory_plan_counts_what_a_new_metric_needs(catalogue):
    def plan(metrics: str):
        suite = parse_suite(SUITE.format(metrics=metrics), file="s.yaml")
        return M.plan_from_suite(suite, suite.models[0], data_aware=False)

    generating = plan("shouting")    # a generation metric alone: its KV cache is in the grading phase
    assert generating.eval_generates and not generating.eval_scores
    phase = M.grading_bytes(generating, 8)
    assert phase["generation"] > 0 and phase["scoring"] == 0
    scoring = plan("answer_length")
    assert scoring.eval_scores and not scoring.eval_generates
    phase = M.grading_bytes(scoring, 8)
    assert phase["scoring"] > 0 and phase["generation"] == 0


def test_diagnostics_map_a_new_metrics_results_to_it(catalogue, tmp_path):
    assert metric_family("shouting_all") == "shouting" and metric_family("answer_length") == "answer_length"
    assert metric_family("rouge2") == "rouge" and metric_family("json_schema_valid") == "json_validity"
    assert metric_family("loss") == "loss"
    suite = parse_suite(SUITE.format(metrics="shouting"), file="s.yaml")
    found = ItemStats(None, suite).metric("t", "shouting_all")    # how diagnostics re-aggregate stored stats
    assert isinstance(found, Shouting) and found.name == "shouting_all"
    with pytest.raises(KeyError):
        metric_for("shouting_none")


def test_metric_options_has_one_field_per_catalogue_entry_typed_by_the_class():
    fields = MetricOptions.model_fields
    assert list(fields) == list(METRICS)
    for name, cls in METRICS.items():
        assert typing.get_args(fields[name].annotation)[0] is cls.options
        assert MetricOptions().of(name) == cls.options()
