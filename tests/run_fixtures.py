"""Real run directories for tests of readers (gate, report, diagnostics), without a model.

`make_run` grades given hypothesis strings with the real metric objects
(`harness.metrics.build_metrics` → `metric.stats(items)`, through `harness.grade.score_items`,
the function `harness grade` uses) and writes what a run writes, in the format of
docs/results.md: results.json (schema version, resolved suite, environment, models → epochs →
tasks → metrics with score/ci/signature/higher_is_better, best), suite.yaml and
samples/MODEL/epoch-K/TASK.jsonl with per-sample `scores` and `stats`.

    from run_fixtures import make_run, sentences, damage   # tests/ is on sys.path under pytest

    refs = {"en-fr": sentences(40, seed=1)}
    root = make_run(tmp_path / "run", {0: {"en-fr": damage(refs["en-fr"], 0.6, seed=0)},
                                       1: {"en-fr": damage(refs["en-fr"], 0.2, seed=1)}},
                    refs, gates=[{"task": "en-fr", "metric": "bleu", "min": 25}])

Helpers: `sentences(n, seed)` makes reference sentences, `damage(refs, rate, seed)` replaces a
seeded share of their words (rate 0 = perfect outputs), `ids_for(task, n)` gives the default
item ids (`TASK-00000`, ...).
"""
from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Callable, Mapping, Optional, Sequence

from harness.grade import score_items
from harness.metrics import build_metrics
from harness.metrics.base import GradedItem
from harness.results import SCHEMA_VERSION, RunDir, write_json, write_jsonl
from harness.suite import BootstrapSpec, Suite, dump_suite

WORDS = ("le chat noir mange une petite pomme rouge dans le jardin vert pendant que le vieux chien "
         "dort près de la maison blanche avec un oiseau bleu sur la table").split()

Outputs = Mapping[int, Mapping[str, Sequence[str]]]  # epoch → task → one output per reference


def sentences(n: int, seed: int = 0, words: Sequence[str] = WORDS) -> list[str]:
    """`n` reference sentences of 6-12 words, deterministic for `seed`."""
    rng = random.Random(seed)
    return [" ".join(rng.choice(words) for _ in range(rng.randint(6, 12))).capitalize() + "."
            for _ in range(n)]


def damage(references: Sequence[str], rate: float, seed: int = 0, words: Sequence[str] = WORDS) -> list[str]:
    """The references with a share `rate` of their words replaced at random (seeded)."""
    rng = random.Random(seed)
    return [" ".join(w if rng.random() >= rate else rng.choice(words) for w in ref.split())
            for ref in references]


def ids_for(task: str, n: int) -> list[str]:
    return [f"{task}-{i:05d}" for i in range(n)]


def default_likelihood(task: str, epoch: int, i: int, output: str, reference: str) -> tuple[float, int]:
    """(nll_sum, n_tokens): NLL per token grows with the share of reference words the output misses."""
    ref_words = reference.split()
    out = set(output.split())
    miss = sum(w not in out for w in ref_words) / max(1, len(ref_words))
    n_tokens = len(ref_words) + 1
    return n_tokens * (0.3 + 2.0 * miss), n_tokens


def make_run(
    root: Path,
    outputs_by_epoch: Optional[Outputs],
    references: Mapping[str, Sequence[str]],
    *,
    model: str = "tiny-translator",
    models: Optional[Mapping[str, Outputs]] = None,
    metrics: Sequence[str] = ("bleu", "chrf", "usability"),
    metric_options: Optional[Mapping[str, Mapping[str, dict]]] = None,
    ids: Optional[Mapping[str, Sequence[str]]] = None,
    sources: Optional[Mapping[str, Sequence[str]]] = None,
    likelihood: Optional[Callable[[str, int, int, str, str], tuple[float, int]]] = default_likelihood,
    finish_reason: Optional[Callable[[str, int, int, str], str]] = None,
    gates: Optional[list[dict]] = None,
    best_metric: Optional[str] = None,
    samples: bool = True,
    bootstrap: int = 0,
    schema_version: int = SCHEMA_VERSION,
    results_hook: Optional[Callable[[dict], None]] = None,
) -> Path:
    """Write a graded run directory at `root`; return `root`.

    outputs_by_epoch: {epoch: {task: [output per reference]}} for one model named `model`;
        or pass `models={name: outputs_by_epoch, ...}` (and None here) for several models.
    references: {task: [reference, ...]}; every task gets the registry `metrics` (suite names,
        e.g. "rouge", "json_validity") with per-task `metric_options` {task: {metric: {...}}}.
    ids / sources: per task, override item ids (default `TASK-00000`...) and source texts;
        ids let a test drop or rename items to exercise pairing by id.
    likelihood(task, epoch, i, output, reference) -> (nll_sum, n_tokens) feeds perplexity and
        the task `loss`; None leaves the likelihood out (perplexity skipped, loss null).
    finish_reason(task, epoch, i, output) -> "eos" | "length" (default "eos").
    gates: GateSpec dicts stored in the suite; best_metric "TASK/METRIC" picks `best`
        (default: the first task's first metric).
    samples=False writes no sample files (`samples: null` in every task record): a results
        file without per-sample data. bootstrap: CI resamples (0 = no CIs, fastest).
    schema_version: the value written (to test readers against other versions).
    results_hook(results) may edit results.json before it is written.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    run = RunDir(root)
    if models is None:
        if outputs_by_epoch is None:
            raise ValueError("give outputs_by_epoch or models")
        models = {model: outputs_by_epoch}
    metric_options = metric_options or {}
    tasks = list(references)
    suite = Suite.model_validate({
        "name": "fixture",
        "models": [{"name": m, "path": f"builtin:{m}"} for m in models],
        "tasks": [{"name": t, "data": {"synthetic": {"kind": "translation", "direction": t if t in ("en-fr", "fr-en")
                                                     else "en-fr", "split": "test", "n": len(references[t])}},
                   "metrics": list(metrics), "metric_options": dict(metric_options.get(t, {}))} for t in tasks],
        "gates": gates or [],
        "bootstrap": {"samples": bootstrap, "seed": 0},
    })
    suite_dict = json.loads(suite.model_dump_json(exclude={"base_dir"}))
    results = {
        "schema_version": schema_version, "suite_name": suite.name, "suite": suite_dict,
        "environment": {"harness": "0.1.0", "python": "3.11.7", "platform": "Linux-x86_64", "cpu_count": 2,
                        "gpu": None, "device": "cpu", "torch": "2.13.0", "transformers": "5.0.0",
                        "sacrebleu": "2.5.1"},
        "status": "complete", "created": "2025-01-01T00:00:00+00:00", "finished": "2025-01-01T00:10:00+00:00",
        "models": [], "gates": None,
    }
    boot = BootstrapSpec(samples=bootstrap, seed=0)
    for name, by_epoch in models.items():
        record = {"name": name, "path": f"builtin:{name}", "adapter": None, "method": "full",
                  "parameters": {"total": 1_000_000, "trainable": 1_000_000, "trainable_share": 1.0},
                  "train": None, "epochs": [], "best": None, "early_stopped": False,
                  "audit": None, "memory": None, "diagnostics": None}
        for epoch in sorted(by_epoch):
            er = {"epoch": epoch, "step": epoch * 10, "checkpoint": None, "train_loss": None, "tasks": {}}
            for task, outputs in by_epoch[epoch].items():
                refs = list(references[task])
                if len(outputs) != len(refs):
                    raise ValueError(f"{task} epoch {epoch}: {len(outputs)} outputs for {len(refs)} references")
                task_ids = list((ids or {}).get(task) or ids_for(task, len(refs)))
                srcs = list((sources or {}).get(task) or [f"source {i}" for i in range(len(refs))])
                items = []
                for i, (out, ref) in enumerate(zip(outputs, refs)):
                    nll, ntok = likelihood(task, epoch, i, out, ref) if likelihood else (None, None)
                    items.append(GradedItem(id=task_ids[i], source=srcs[i], reference=ref, output=out,
                                            finish_reason=finish_reason(task, epoch, i, out) if finish_reason
                                            else "eos", nll_sum=nll, n_tokens=ntok))
                built = build_metrics(list(metrics), {k: dict(v) for k, v in metric_options.get(task, {}).items()})
                summary, per_item = score_items(built, items, boot)
                rel = None
                if samples:
                    rows = [{"id": it.id, "source": it.source, "reference": it.reference, "output": it.output,
                             "finish_reason": it.finish_reason, "nll_sum": it.nll_sum, "n_tokens": it.n_tokens,
                             **x} for it, x in zip(items, per_item)]
                    path = run.samples_path(name, epoch, task)
                    write_jsonl(path, rows)
                    rel = run.rel(path)
                loss = None
                if likelihood:
                    loss = sum(it.nll_sum for it in items) / sum(it.n_tokens for it in items)
                er["tasks"][task] = {"n": len(items), "loss": loss, "samples": rel, "metrics": summary,
                                     "seconds": 0.1}
            record["epochs"].append(er)
        if best_metric is None and record["epochs"]:
            first = record["epochs"][0]["tasks"].get(tasks[0], {}).get("metrics", {})
            scored = [m for m, v in first.items() if v.get("score") is not None]
            best_metric = f"{tasks[0]}/{scored[0]}" if scored else None
        record["best"] = _best(record, best_metric) if best_metric else None
        results["models"].append(record)
    if results_hook:
        results_hook(results)
    (root / "suite.yaml").write_text(dump_suite(suite), encoding="utf-8")
    write_json(run.results_path, results)
    return root


def _best(record: dict, key: str) -> Optional[dict]:
    task, metric = key.split("/", 1)
    best = None
    for e in record["epochs"]:
        m = (e["tasks"].get(task) or {}).get("metrics", {}).get(metric) or {}
        value, higher = m.get("score"), m.get("higher_is_better", True)
        if value is None:
            continue
        if best is None or (value > best["score"] if higher else value < best["score"]):
            best = {"metric": key, "epoch": e["epoch"], "score": value}
    return best
