"""Grade a model on every task: generate, score, bootstrap, write per-sample rows.

This is the one function runners call at each epoch end (`grade_epoch`), and what
`harness grade` calls for a checkpoint or a predictions file. It knows nothing of
training: it receives a backend, the tasks and their data.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import time
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

from harness.backends.base import Backend, Generation
from harness.data import load_rows
from harness.errors import DataError, UserError
from harness.messages import Example
from harness.metrics import MetricOptions, build_metrics, metric_options_from
from harness.metrics.base import GradedItem, Metric, signed
from harness.metrics.language import TaskLanguage, options_for_language, task_language
from harness.out_of_memory import call_halving_batch
from harness.progress import OFF, Progress, ProgressBar
from harness.results import (EpochRecord, MetricRecord, RunDir, TaskRecord, epoch_record, metric_record,
                             task_record, write_jsonl)
from harness.stats.intervals import score_interval
from harness.suite import AUTO_GRADING_BATCH_BOUND, BootstrapSpec, GenerationSpec, Suite, TaskSpec
from harness.suite_checks import read_json_schema


@dataclass
class LoadedTask:
    spec: TaskSpec
    examples: list[Example]
    metrics: list[Metric]
    language: TaskLanguage = field(default_factory=lambda: TaskLanguage(None, "detected", "none"))
    # A predictions file's {coverage: {graded, total}, references_overridden}; None for a model.
    provenance: Optional[dict] = None

    @property
    def needs_generation(self) -> bool:
        return any(m.needs == "output" for m in self.metrics)

    @property
    def needs_likelihood(self) -> bool:
        return any(m.needs == "likelihood" for m in self.metrics)


def metric_options(task: TaskSpec, suite: Suite) -> MetricOptions:
    """The task's typed metric options, with files (the JSON Schema) loaded."""
    options = metric_options_from(task.metric_options).model_copy(deep=True)
    if task.json_schema:
        schema = read_json_schema(suite.resolve(task.json_schema))
        options.json_validity = options.of("json_validity").model_copy(update={"schema_": schema})
    return options


_SURROGATE = re.compile("[\ud800-\udfff]")


def _encodable_outputs(gens: list[Optional[Generation]]) -> tuple[list[Optional[Generation]], int]:
    """The generations with every lone surrogate (UTF-8 cannot store one; an endpoint's JSON can
    send "\\ud800") replaced by U+FFFD, and how many outputs had one: graded as text, counted."""
    out, count = [], 0
    for g in gens:
        if g is not None and _SURROGATE.search(g.text):
            g, count = dataclasses.replace(g, text=_SURROGATE.sub("\ufffd", g.text)), count + 1
        out.append(g)
    return out, count


class TaskMetricError(UserError):
    """A task's metric cannot be built or refuses its references; str() names task and fix."""


def task_direction(task: TaskSpec) -> Optional[str]:
    data = task.data
    return data.direction or (data.synthetic.direction if data.synthetic else None)


def load_task(task: TaskSpec, suite: Suite) -> LoadedTask:
    """Data, language (measured once, here) and metrics of one task, checked before any model work."""
    if task.generation.seed is None:   # resolved here, so every backend samples with the number recorded
        task = task.model_copy(update={"generation": task.generation.model_copy(
            update={"seed": suite.train.seed if suite.train else 0})})
    examples = load_rows(task.data, suite)
    seen: set[str] = set()
    dup = next((ex.id for ex in examples if ex.id in seen or seen.add(ex.id)), None)
    if dup is not None:   # samples, predictions and paired tests are keyed by id
        raise DataError(f"task {task.name}: id {dup!r} appears twice in its data ({examples[0].origin}): "
                        f"ids must be unique")
    references = [ex.reference for ex in examples]
    language = task_language(task_direction(task), references)
    options = options_for_language(metric_options(task, suite), task.metrics, language)
    try:
        metrics = build_metrics(task.metrics, options)
        for metric in metrics:
            metric.check_references(references)
    except UserError as e:
        raise TaskMetricError(f"task {task.name!r}: {e}") from None
    return LoadedTask(task, examples, metrics, language)


def load_tasks(suite: Suite) -> list[LoadedTask]:
    return [load_task(t, suite) for t in suite.tasks]


def data_hash(examples: Sequence[Example]) -> str:
    """sha256 of the graded items (id, prompt messages, reference, in order): two results
    with equal hashes were graded on the same test data, so their scores are comparable."""
    h = hashlib.sha256()
    for ex in examples:
        h.update(json.dumps([ex.id, ex.prompt_messages, ex.reference], ensure_ascii=False,
                            sort_keys=True).encode("utf-8"))
        h.update(b"\n")
    return f"sha256:{h.hexdigest()}"


def score_items(metrics: Sequence[Metric], items: list[GradedItem], boot: BootstrapSpec,
                clusters: Optional[Sequence[str]] = None) -> tuple[dict[str, MetricRecord], list[dict]]:
    """Corpus scores with CIs, and per-item scores/stats/details for the sample file.

    `clusters` (one label per item, from the task's `data.cluster` field): intervals resample
    whole clusters, and each metric records its design effect."""
    summary: dict[str, MetricRecord] = {}
    per_item: list[dict] = [{"scores": {}, "stats": {}, "details": {}} for _ in items]
    for metric in metrics:
        if metric.needs == "likelihood" and any(it.n_tokens is None for it in items):
            summary[metric.name] = metric_record(None, skipped="needs the model's likelihood (not available)")
            continue
        if metric.needs == "output" and any(it.output is None for it in items):
            summary[metric.name] = metric_record(None, skipped="needs generated outputs")
            continue
        stats = metric.stats(items)
        interval = score_interval(metric, stats, boot.samples, boot.seed, clusters=clusters)
        extra = {"design_effect": interval["design_effect"]} if clusters is not None else {}
        summary[metric.name] = metric_record(metric.score(stats), interval["ci"], signed(metric),
                                             metric.higher_is_better, ci_method=interval["method"],
                                             se=interval["se"], **extra)
        for row, st, det in zip(per_item, stats, metric.details(items)):
            row["stats"][metric.name] = st.tolist()
            row["scores"][metric.name] = metric.sample_score(st)
            if det:
                row["details"][metric.name] = det
    return summary, per_item


def with_grading_batch(tasks: list[LoadedTask], batch: int) -> list[LoadedTask]:
    """The tasks with `generation.batch_size: auto` set to `batch` (harness.memory chooses it per model)."""
    return [dataclasses.replace(t, spec=t.spec.model_copy(update={
        "generation": t.spec.generation.model_copy(update={"batch_size": batch})}))
        if t.spec.generation.batch_size == "auto" else t for t in tasks]


def _resolved(gen: GenerationSpec) -> GenerationSpec:
    """`batch_size: auto` not chosen by the pipeline (a direct call): the CPU bound."""
    return gen.model_copy(update={"batch_size": AUTO_GRADING_BATCH_BOUND}) if gen.batch_size == "auto" else gen


def grade_task(backend: Optional[Backend], task: LoadedTask, boot: BootstrapSpec,
               predictions: Optional[dict[str, dict]] = None,
               bar: Optional[ProgressBar] = None) -> tuple[TaskRecord, list[dict]]:
    """Grade one task. With `predictions` (id → {output, ...}) no model is used.

    `bar` counts the items answered (from zero again when a batch ran out of memory).
    """
    examples = task.examples
    gen = _resolved(task.spec.generation)
    gens: list[Optional[Generation]] = [None] * len(examples)
    unencodable = 0
    batch = None   # grading batch after any out-of-memory halvings (a model was run)
    nll: list[tuple[Optional[float], Optional[int]]] = [(None, None)] * len(examples)
    t0 = time.perf_counter()
    if predictions is not None:
        gens = [Generation(predictions[ex.id]["output"], predictions[ex.id].get("finish_reason") or "eos")
                for ex in examples]
    else:
        requested, halvings = gen.batch_size, 0

        def answer(batch_size: int) -> list[Generation]:
            if bar is not None:
                bar.update(0)
            return backend.generate(examples, gen.model_copy(update={"batch_size": batch_size}),
                                    on_items=bar.advance if bar is not None else None)

        if task.needs_generation:
            gens, used, halvings = call_halving_batch(answer, gen.batch_size, f"grading task {task.spec.name}")
            gen = gen.model_copy(update={"batch_size": used})   # likelihood starts from what fitted
            gens, unencodable = _encodable_outputs(gens)
        if task.needs_likelihood:
            got, used, more = call_halving_batch(lambda b: backend.reference_nll(examples, b), gen.batch_size,
                                                 f"scoring references of task {task.spec.name}")
            gen, halvings = gen.model_copy(update={"batch_size": used}), halvings + more
            if got is not None:
                nll = got
        batch = {"requested": requested, "used": gen.batch_size, "halvings": halvings}
    seconds = time.perf_counter() - t0
    items = [
        GradedItem(id=ex.id, source=ex.source_text, reference=ex.reference,
                   output=g.text if g else None, finish_reason=g.finish_reason if g else None,
                   nll_sum=n[0], n_tokens=n[1])
        for ex, g, n in zip(examples, gens, nll)
    ]
    clusters = [ex.cluster for ex in examples] if task.spec.data.cluster else None
    metrics, per_item = score_items(task.metrics, items, boot, clusters)
    total_nll = sum(n[0] for n in nll if n[0] is not None)
    total_tok = sum(n[1] for n in nll if n[1] is not None)
    record = task_record(len(items), metrics, (total_nll / total_tok) if total_tok else None, round(seconds, 3),
                         language=task.language.as_record(), data_hash=data_hash(examples),
                         batch_size=gen.batch_size if predictions is None else None,   # the batch graded with
                         **(task.provenance or {}))
    if batch is not None:
        record["batch"] = batch
    if unencodable:
        record["unencodable_outputs"] = unencodable
    if predictions is None and task.needs_generation and gen.do_sample:
        record["generation_seed"] = gen.seed
    rows = [
        {"id": it.id, "source": it.source, "reference": it.reference, "output": it.output,
         "finish_reason": it.finish_reason, "nll_sum": it.nll_sum, "n_tokens": it.n_tokens, **extra}
        for it, extra in zip(items, per_item)
    ]
    if clusters is not None:   # stored per item, so report and gate resample the same clusters
        for row, label in zip(rows, clusters):
            row["cluster"] = label
    return record, rows


def grade_epoch(backend: Optional[Backend], tasks: list[LoadedTask], boot: BootstrapSpec, run: RunDir,
                model_name: str, epoch: int, step: int = 0,
                predictions: Optional[dict[str, dict[str, dict]]] = None,
                progress: Optional[Callable[[str], None]] = None, bars: Progress = OFF) -> EpochRecord:
    """Grade every task at one epoch; write samples; return the epoch record for results.json.

    `progress` gets a line per task; `bars` shows the items of each task as they are answered.
    """
    record = epoch_record(epoch, step)
    plan = getattr(backend, "plan_measurement", None)   # a grading probe's (harness.memory.grading_phase)
    if plan is not None and predictions is None:
        plan([(t.examples, _resolved(t.spec.generation), t.needs_generation, t.needs_likelihood) for t in tasks])
    for task in tasks:
        if progress:
            progress(f"grading {model_name} epoch {epoch}: {task.spec.name}")
        preds = predictions.get(task.spec.name) if predictions is not None else None
        with bars.bar(f"grading {model_name} epoch {epoch}: {task.spec.name}", len(task.examples),
                      "items") as bar:
            rec, rows = grade_task(backend, task, boot, preds, bar)
            bar.update(len(task.examples))
        path = run.samples_path(model_name, epoch, task.spec.name)
        write_jsonl(path, rows)
        rec["samples"] = run.rel(path)
        record["tasks"][task.spec.name] = rec
    return record
