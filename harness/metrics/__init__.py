"""The metric catalogue: one visible dict from the suite's metric name to its Metric class.

Everything else that knows metrics is derived from it, never from a second list (sacrebleu's
`METRICS` is the model):

- the names a suite accepts in `tasks[].metrics`, and the JSON Schema's enum of them (harness/suite.py);
- `MetricOptions`, a task's `metric_options` (one optional field per metric, typed by the class's
  `options` model from harness/metric_options.py);
- what grading must produce for the memory plan (`needs`: generated text or likelihood);
- which suite metric a name in results.json belongs to (`results`: rouge1/rouge2/rougeL → rouge),
  for diagnostics and for readers that rebuild a metric from a finished run (`metric_for`).

Add a metric: write a module with a Metric subclass (its `from_options`, and an options model in
harness/metric_options.py if it takes options), add one entry here.
"""
from __future__ import annotations

from typing import Optional, Union

from pydantic import create_model

from harness.metrics.base import GradedItem, MeanMetric, Metric
from harness.metrics.exact_match import ExactMatch
from harness.metrics.json_validity import JsonValidity
from harness.metrics.perplexity import Perplexity
from harness.metrics.rouge import Rouge
from harness.metrics.translation import Bleu, Chrf, Ter
from harness.metrics.usability import Usability
from harness.metric_options import MetricOptionsBase, Options, validate_options

METRICS: dict[str, type[Metric]] = {
    "bleu": Bleu,
    "chrf": Chrf,
    "ter": Ter,
    "perplexity": Perplexity,
    "usability": Usability,
    "json_validity": JsonValidity,
    "rouge": Rouge,
    "exact_match": ExactMatch,
}


def generates(metrics: list[str]) -> bool:
    """Whether grading these suite metrics generates text (else it only scores references)."""
    return any(METRICS[m].needs == "output" for m in metrics if m in METRICS)


def scores_likelihood(metrics: list[str]) -> bool:
    """Whether grading these suite metrics scores the references' likelihood (perplexity)."""
    return any(METRICS[m].needs == "likelihood" for m in metrics if m in METRICS)


def metric_family(result_name: str) -> str:
    """The suite metric a name stored in results.json belongs to (rouge1 → rouge, json_valid →
    json_validity); a name no metric stores (e.g. 'loss') is returned as it is."""
    return next((name for name, cls in METRICS.items() if result_name in cls.result_names()), result_name)


class _MetricOptions(MetricOptionsBase):
    def of(self, metric: str) -> Options:
        """The options of one metric (its defaults when unset)."""
        return getattr(self, metric, None) or METRICS[metric].options()


MetricOptions = create_model(
    "MetricOptions", __base__=_MetricOptions,
    __doc__="A task's `metric_options`: one typed entry per metric (unset: the metric's defaults).",
    **{name: (Optional[cls.options], None) for name, cls in METRICS.items()},
)


def options_for(metric: str, options: Union[Options, dict, None]) -> Options:
    """`options` as the metric's typed model; a dict is validated (ValueError naming the metric)."""
    return validate_options(metric, METRICS[metric].options, options)


def metric_options_from(raw: Union[MetricOptions, dict, None]) -> MetricOptions:
    """A whole `metric_options` mapping (typed already, or a dict such as a stored suite's)."""
    if isinstance(raw, MetricOptions):
        return raw
    unknown = [k for k in (raw or {}) if k not in METRICS]
    if unknown:
        raise ValueError(f"metric_options: unknown metric {unknown[0]!r}; known: {', '.join(METRICS)}")
    return MetricOptions(**{k: options_for(k, v) for k, v in (raw or {}).items()})


def build_metrics(names: list[str], options: Union[MetricOptions, dict, None] = None) -> list[Metric]:
    """The metric objects of a task's `metrics`, made with its options."""
    typed = metric_options_from(options)
    out: list[Metric] = []
    for name in names:
        out.extend(METRICS[name].from_options(typed.of(name)))
    return out


def metric_for(result_name: str, options: Union[MetricOptions, dict, None] = None) -> Metric:
    """The metric object behind a name as stored in results.json (e.g. 'rouge2', 'bleu').

    Used by readers of a finished run (gate, diagnostics) to re-aggregate per-sample
    statistics with exactly the options the run was graded with.
    """
    typed = metric_options_from(options)
    family = metric_family(result_name)
    try:
        produced = METRICS[family].from_options(typed.of(family)) if family in METRICS else []
    except Exception:  # options it cannot be built with here (e.g. a missing tokenizer): unknown, as before
        produced = []
    for metric in produced:
        if metric.name == result_name:
            return metric
    raise KeyError(f"unknown metric {result_name!r}")


__all__ = ["METRICS", "MetricOptions", "build_metrics", "metric_for", "metric_family", "generates",
           "scores_likelihood", "options_for", "metric_options_from", "GradedItem", "Metric", "MeanMetric"]
