"""Metric registry: one visible dict from the suite's metric name to a factory.

A factory takes the task's typed options for that metric (harness/metric_options.py; a plain
dict is validated into them) and returns the metric objects it produces (ROUGE yields rouge1/rouge2/rougeL; JSON validity yields json_valid and
json_schema_valid). Add a metric: write a module with a factory, add one line here.
"""
from __future__ import annotations

from typing import Any, Callable, Union

from harness.metrics import exact_match, json_validity, perplexity, rouge, translation, usability
from harness.metrics.base import GradedItem, MeanMetric, Metric
from harness.metric_options import MetricOptions, metric_options_from

REGISTRY: dict[str, Callable[[Any], list[Metric]]] = {
    "bleu": translation.bleu,
    "chrf": translation.chrf,
    "ter": translation.ter,
    "perplexity": perplexity.perplexity,
    "usability": usability.usability,
    "json_validity": json_validity.json_validity,
    "rouge": rouge.rouge,
    "exact_match": exact_match.exact_match,
}


def build_metrics(names: list[str], options: Union[MetricOptions, dict, None] = None) -> list[Metric]:
    typed = metric_options_from(options)
    out: list[Metric] = []
    for name in names:
        out.extend(REGISTRY[name](typed.of(name)))
    return out


__all__ = ["REGISTRY", "build_metrics", "GradedItem", "Metric", "MeanMetric", "MetricOptions"]


def metric_for(result_name: str, options: Union[MetricOptions, dict, None] = None) -> Metric:
    """The metric object behind a name as stored in results.json (e.g. 'rouge2', 'bleu').

    Used by readers of a finished run (gate, diagnostics) to re-aggregate per-sample
    statistics with exactly the options the run was graded with.
    """
    typed = metric_options_from(options)
    for name, factory in REGISTRY.items():
        try:
            produced = factory(typed.of(name))
        except Exception:  # a factory whose required option is absent cannot be the one
            continue
        for metric in produced:
            if metric.name == result_name:
                return metric
    raise KeyError(f"unknown metric {result_name!r}")
