"""Calibration of the statistics behind every verdict, on a population whose truth is known.

The built-in model grades a large population of the built-in fr→en task once (greedy): its
score is the truth. Test sets drawn from it measure what the harness claims about them:

1. coverage: how often each metric's 95% interval (harness.stats.intervals.score_interval)
   covers the population's score, at 100 and 400 items (BCa for corpus metrics, Wilson for
   rates); the old percentile bootstrap beside each, and the exact coverage of the Wilson
   interval;
2. null runs: the model graded K more times WITH SAMPLING (same model, so nothing changes),
   the gradings used as epochs 0..K-1 of a fake run of the default suite's shape (2 tasks of
   100 items, its 4 metrics + loss); the real forgetting diagnostic (harness.diagnose.forgetting)
   reads them from a run directory: per-test and family-wise false-alarm rates, old rule vs new;
3. planted drops: one cell of a null run made worse by exactly the MDE the diagnostic reported
   for it; the share of trials in which that cell is flagged (power, nominally 80%);
4. cost: the whole diagnose (diagnose_model) on one run of the default suite's shape vs the
   time to grade one epoch of it (generation + scoring, harness.grade.grade_task).

Gradings are cached (--cache, default $HARNESS_CACHE/calibration) so the statistics can be
rerun without generating again. No assertions: it prints tables (and --json PATH writes them).

    PYTHONPATH=. python benchmarks/calibration.py            # defaults
    PYTHONPATH=. python benchmarks/calibration.py --quick    # smoke run, small everything

Measured on 2 CPU cores shared with other work: the gradings (5,000 greedy + 5 × 1,000 sampled
generations and the references' NLL; first run only, then cached) took 19 min at load 7-13,
where torch's generation slows many times over, and take a minute or two on idle cores; the
statistics take 5-7 min (coverage ~1.5 min, 200 null runs ~3 min, planted ~1 min, cost).
--quick: about 2 min once its own (smaller) gradings are cached.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional
from unittest import mock

import numpy as np
import torch

from harness.backends.transformers_backend import TransformersBackend, load_model_and_tokenizer
from harness.builtin import cache_root, resolve_model_path
from harness.diagnose import diagnose_model
from harness.diagnose.evidence import ItemStats
from harness.diagnose.forgetting import forgetting
from harness.grade import LoadedTask, grade_task, load_task
from harness.metrics.base import GradedItem, Metric
from harness.results import (RunDir, epoch_record, metric_record, model_record, task_record, write_jsonl)
from harness.stats.family import holm
from harness.stats.intervals import score_interval
from harness.stats.rates import is_rate, wilson_interval
from harness.stats.resampling import clear_resample_cache, finite, percentile_interval, resample_plan, resample_scores
from harness.suite import Suite, parse_suite

MODEL = "builtin:tiny-translator"
METRICS = ["bleu", "chrf", "perplexity", "usability"]
ALPHA = 0.05


# ----------------------------------------------------------------------------- gradings
@dataclass
class Grading:
    """One grading of the population's items: per-item outputs (and the references' NLL)."""
    outputs: list[str]
    finish: list[str]
    seconds: float


def suite_text(direction: str, n: int, seed_tasks: tuple[str, ...] = ("a",)) -> str:
    tasks = "".join(f"  - {{name: {direction}-{t}, data: {{synthetic: {{kind: translation, direction: {direction}, "
                    f"split: val, n: {n}}}}}, generation: {{max_new_tokens: 48, batch_size: 50}}}}\n"
                    for t in seed_tasks)
    return (f"name: calibration\nmodels: [{{name: tiny-translator, path: {MODEL}}}]\ntasks:\n{tasks}"
            "diagnostics: {forgetting: {threshold: 1.0, confidence: 0.95}}\nbootstrap: {samples: 1000, seed: 0}\n")


def cached(cache: Path, key: dict, make):
    """make() once per key; the JSON kept under `cache` (gradings are minutes, the statistics seconds)."""
    name = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    path = cache / f"{key['what']}-{name}.json"
    if path.exists():
        return json.loads(path.read_text()), True
    got = make()
    cache.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(got))
    return got, False


def generate(backend: TransformersBackend, task: LoadedTask, batch: int, sample_seed: Optional[int],
             temperature: float) -> dict:
    gen = task.spec.generation.model_copy(update={"batch_size": batch})
    if sample_seed is not None:
        gen = gen.model_copy(update={"do_sample": True, "temperature": temperature, "seed": sample_seed})
    t0 = time.perf_counter()
    got = backend.generate(task.examples, gen)
    return {"outputs": [g.text for g in got], "finish": [g.finish_reason for g in got],
            "seconds": time.perf_counter() - t0}


def graded_items(task: LoadedTask, grading: dict, nll: list) -> list[GradedItem]:
    return [GradedItem(id=ex.id, source=ex.source_text, reference=ex.reference, output=o, finish_reason=f,
                       nll_sum=s, n_tokens=t)
            for ex, o, f, (s, t) in zip(task.examples, grading["outputs"], grading["finish"], nll)]


def item_stats(metrics: list[Metric], items: list[GradedItem]) -> dict[str, np.ndarray]:
    return {m.name: m.stats(items) for m in metrics}


# ----------------------------------------------------------------------------- 1. coverage
def old_percentile(metric: Metric, stats: np.ndarray, samples: int, seed: int):
    """The interval every metric got before issue 19: the percentile bootstrap."""
    values = finite(resample_scores(metric, stats, *resample_plan(len(stats), samples, seed)))
    return percentile_interval(values, 0.95)


def coverage(metrics: list[Metric], stats: dict[str, np.ndarray], sizes: list[int], replicates: int,
             samples: int, seed: int) -> list[dict]:
    """Share of test sets whose 95% interval covers the population's score, per metric and size."""
    n_pop = len(next(iter(stats.values())))
    truth = {m.name: m.score(stats[m.name]) for m in metrics}
    rng = np.random.default_rng(seed)
    rows = []
    for n in sizes:
        found: dict[tuple[str, str], list[tuple[bool, float]]] = {}
        for r in range(replicates):
            idx = rng.choice(n_pop, size=n, replace=False)
            for m in metrics:
                st, t, s = stats[m.name][idx], truth[m.name], 1000 * n + r
                got = score_interval(m, st, samples, seed=s)
                found.setdefault((m.name, got["method"]), []).append(_hit(got["ci"], t))
                # what every metric got before: rates collapsed to zero width, BLEU covered too rarely
                found.setdefault((m.name, "percentile bootstrap (old)"), []).append(
                    _hit(old_percentile(m, st, samples, s), t))
        for (name, method), got in found.items():
            rows.append({"metric": name, "n": n, "method": method, "truth": truth[name],
                         "coverage": float(np.mean([h for h, _ in got])),
                         "mean_width": float(np.mean([w for _, w in got]))})
        for m in metrics:
            if is_rate(m):
                rows.append({"metric": m.name, "n": n, "method": "wilson, exact binomial coverage",
                             "truth": truth[m.name], "coverage": exact_wilson_coverage(truth[m.name] / m.scale, n),
                             "mean_width": None})
    return rows


def _hit(ci, truth: float) -> tuple[bool, float]:
    return ci[0] <= truth <= ci[1], ci[1] - ci[0]


def exact_wilson_coverage(p: float, n: int) -> float:
    """Coverage of the Wilson interval (as the harness computes it) at true rate p: a binomial sum."""
    total = 0.0
    for k in range(n + 1):
        lo, hi = wilson_interval(k, n, 0.95)
        if lo <= p <= hi:
            total += math.comb(n, k) * p ** k * (1 - p) ** (n - k)
    return total


# ----------------------------------------------------------------------------- 2. null runs
@dataclass
class Pool:
    """The null runs' items: K sampled gradings of the same M items of one model.

    Each item's K outputs are independent draws from the same model, so any assignment of
    them to epochs is a null run; each run shuffles them item by item (`assignment`), so runs
    do not all share which whole grading happened to be epoch 0."""
    ids: list[str]
    items: list[list[GradedItem]]            # per grading
    stats: list[dict[str, np.ndarray]]       # per grading: metric → (M, k)

    def assignment(self, picks: dict[str, np.ndarray], rng: np.random.Generator) -> dict[str, np.ndarray]:
        """task → (K, n): the grading whose output item j of the task has at epoch k."""
        k = len(self.stats)
        return {t: np.argsort(rng.random((k, len(idx))), axis=0) for t, idx in picks.items()}


class FakeRun:
    """A run directory of the default suite's shape whose epochs are the pool's gradings.

    Written as a run writes it (per-sample `stats` in samples/MODEL/epoch-K/TASK.jsonl, records
    built by harness.results' constructors), so the diagnostics read it through their own code."""

    def __init__(self, root: Path, pool: Pool, picks: dict[str, np.ndarray], assign: dict[str, np.ndarray],
                 metrics: list[Metric]):
        self.root, self.pool, self.picks, self.metrics = root, pool, picks, metrics
        self.run = RunDir(root)
        epochs = range(len(pool.stats))
        self.items = {(k, t): [pool.items[g][i] for g, i in zip(assign[t][k], idx)]
                      for k in epochs for t, idx in picks.items()}
        self.stats = {(k, t): {m.name: np.stack([pool.stats[g][m.name][i] for g, i in zip(assign[t][k], idx)])
                               for m in metrics} for k in epochs for t, idx in picks.items()}
        self.record = model_record("tiny-translator", MODEL, method="full")
        for k in epochs:
            self.record["epochs"].append(epoch_record(k, 10 * k, {t: self._task(k, t) for t in picks}))
        self._best()

    def _task(self, k: int, t: str):
        st, items = self.stats[(k, t)], self.items[(k, t)]
        path = self.run.samples_path("tiny-translator", k, t)
        write_jsonl(path, [{"id": it.id, "nll_sum": it.nll_sum, "n_tokens": it.n_tokens,
                            "stats": {name: st[name][j].tolist() for name in st}} for j, it in enumerate(items)])
        recs = {m.name: metric_record(m.score(st[m.name]), None, m.signature(), m.higher_is_better)
                for m in self.metrics}
        loss = sum(it.nll_sum for it in items) / sum(it.n_tokens for it in items)
        return task_record(len(items), recs, loss, samples=self.run.rel(path))

    def _best(self) -> None:
        task = next(iter(self.picks))
        best = max(self.record["epochs"], key=lambda e: e["tasks"][task]["metrics"]["bleu"]["score"])
        self.record["best"] = {"metric": f"{task}/bleu", "epoch": best["epoch"],
                               "score": best["tasks"][task]["metrics"]["bleu"]["score"], "checkpoint": None}

    def replace(self, k: int, t: str, items: list[GradedItem]) -> None:
        """Epoch k of task t graded with other outputs (a planted drop)."""
        self.items[(k, t)] = items
        self.stats[(k, t)] = item_stats(self.metrics, items)
        self.record["epochs"][k]["tasks"][t] = self._task(k, t)
        self._best()


def diagnostics_suite(base: Suite, seed: int) -> Suite:
    return base.model_copy(update={"bootstrap": base.bootstrap.model_copy(update={"seed": seed})})


def cells(section: dict):
    for task, ms in section["tasks"].items():
        for name, row in ms.items():
            for epoch, cell in row["epochs"].items():
                yield task, name, int(epoch), row["threshold"], cell


def null_runs(pool: Pool, metrics: list[Metric], suite: Suite, runs: int, n: int, seed: int,
              keep: int) -> tuple[dict, list]:
    """The forgetting diagnostic on `runs` null runs; returns rates and the first `keep` runs (for planting)."""
    rng = np.random.default_rng(seed)
    tasks = [t.name for t in suite.tasks]
    raw_fire: dict[str, list[bool]] = {}
    old_runs, new_runs, zero_runs, under, seconds = [], [], [], [], []
    kept = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(runs):
            order = rng.permutation(len(pool.ids))
            picks = {t: np.sort(order[j * n:(j + 1) * n]) for j, t in enumerate(tasks)}
            assign = pool.assignment(picks, rng)
            fake = FakeRun(Path(tmp) / f"run-{r}", pool, picks, assign, metrics)
            s = diagnostics_suite(suite, r)
            t0 = time.perf_counter()
            section = forgetting(fake.record, ItemStats(fake.run, s), s)
            seconds.append(time.perf_counter() - t0)
            old = new = zero = False
            for _task, name, _epoch, threshold, cell in cells(section):
                if cell["p_value"] is None:
                    continue
                raw_fire.setdefault(name, []).append(cell["p_value"] < ALPHA)
                old |= cell["drop"] > threshold and cell["p_value"] < ALPHA     # the documented rule before
                new |= bool(cell["forgotten"])
                zero |= cell["drop"] > 0 and cell["p_adjusted"] < ALPHA        # Holm alone, threshold 0
                under.append(cell["status"] == "underpowered")
            old_runs.append(old)
            new_runs.append(new)
            zero_runs.append(zero)
            if r < keep:
                kept.append((picks, assign, section, r))
    family = section["family"]["size"]
    return {"runs": runs, "family_size": family,
            "per_test": {k: float(np.mean(v)) for k, v in raw_fire.items()},
            "per_test_all": float(np.mean([x for v in raw_fire.values() for x in v])),
            "old_rule_runs": float(np.mean(old_runs)), "new_rule_runs": float(np.mean(new_runs)),
            "holm_threshold0_runs": float(np.mean(zero_runs)), "underpowered_cells": float(np.mean(under)),
            "forgetting_seconds": float(np.mean(seconds))}, kept


# ----------------------------------------------------------------------------- 3. planted drops
def plant_words(metric: Metric, items: list[GradedItem], drop: float, vocab: list[str],
                rng: np.random.Generator) -> tuple[list[GradedItem], float]:
    """Replace random words of random outputs by random words until the metric fell by `drop`."""
    items = list(items)
    st = metric.stats(items)
    sign = 1 if metric.higher_is_better is not False else -1
    start = metric.score(st)
    got = 0.0
    for _ in range(50_000):
        i = int(rng.integers(len(items)))
        words = (items[i].output or "").split()
        if not words:
            continue
        words[int(rng.integers(len(words)))] = vocab[int(rng.integers(len(vocab)))]
        items[i] = dataclasses.replace(items[i], output=" ".join(words))
        st[i] = metric.stats([items[i]])[0]
        got = sign * (start - metric.score(st))
        if got >= drop:
            break
    return items, got


def plant_unusable(metric: Metric, items: list[GradedItem], drop: float,
                   rng: np.random.Generator) -> tuple[list[GradedItem], float]:
    """Make round(drop / scale × n) usable outputs unusable (cut at max_new_tokens), text unchanged."""
    items = list(items)
    k = int(round(drop / metric.scale * len(items)))
    usable = [i for i, row in enumerate(metric.stats(items)) if row[0] > 0.5]
    for i in rng.choice(usable, size=min(k, len(usable)), replace=False):
        items[i] = dataclasses.replace(items[i], finish_reason="length")
    return items, min(k, len(usable)) / len(items) * metric.scale


def retested(null_section: dict, fake: FakeRun, suite: Suite, task: str, epoch: int) -> dict[str, dict]:
    """The cells of `task` at `epoch` after a plant, as forgetting() reports them, without running
    the family's 35 untouched tests again: the changed cells are tested the way forgetting() tests
    them (ItemStats.paired on the run directory: same resamples, same seed), the whole family's
    p-values Holm-adjusted again, each cell judged by forgetting's rule (drop > threshold AND
    adjusted p < 1 - confidence). Checked against forgetting() itself on the first trials."""
    spec = suite.diagnostics.forgetting
    items = ItemStats(fake.run, suite)
    new_task, old_task = fake.record["epochs"][epoch]["tasks"][task], fake.record["epochs"][0]["tasks"][task]
    tests = {name: items.paired(task, name, new_task, old_task, spec.confidence)
             for name, row in null_section["tasks"][task].items() if str(epoch) in row["epochs"]}
    keys, ps = [], []
    for t, name, e, _threshold, cell in cells(null_section):
        keys.append((t, name, e))
        ps.append(tests[name]["p_value"] if (t, e) == (task, epoch) else cell["p_value"])
    adjusted = dict(zip(keys, holm(ps)))
    out = {}
    for name, test in tests.items():
        p_adj = adjusted[(task, name, epoch)]
        threshold = null_section["tasks"][task][name]["threshold"]
        out[name] = {"drop": test["drop"], "p_value": test["p_value"], "p_adjusted": p_adj,
                     "forgotten": p_adj is not None and test["drop"] > threshold and p_adj < 1 - spec.confidence}
    return out


def planted(pool: Pool, metrics: list[Metric], suite: Suite, kept: list, names: list[str], epoch: int,
            vocab: list[str], seed: int, check: int = 3) -> list[dict]:
    """Plant one reported MDE in task 1 / NAME / epoch, in each kept null run; share detected."""
    rng = np.random.default_rng(seed)
    by_name = {m.name: m for m in metrics}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            metric = by_name[name]
            hits, hits_default, mdes, drops, skipped, agree = [], [], [], [], 0, []
            for picks, assign, null_section, r in kept:
                task = next(iter(picks))
                mde = null_section["tasks"][task][name]["epochs"][str(epoch)]["mde"]
                if not mde:   # nothing to plant: the null cell has no noise at all
                    skipped += 1
                    continue
                fake = FakeRun(Path(tmp) / f"{name}-{r}", pool, picks, assign, metrics)
                items = fake.items[(epoch, task)]
                if is_rate(metric):
                    items, got = plant_unusable(metric, items, mde, rng)
                else:
                    items, got = plant_words(metric, items, mde, vocab, rng)
                fake.replace(epoch, task, items)
                s = diagnostics_suite(suite, r)
                cell = retested(null_section, fake, s, task, epoch)[name]
                if len(agree) < check:
                    full = forgetting(fake.record, ItemStats(fake.run, s), s)["tasks"][task][name]["epochs"][str(epoch)]
                    agree.append(full["p_adjusted"] == cell["p_adjusted"] and full["forgotten"] == cell["forgotten"])
                hits.append(cell["drop"] > 0 and cell["p_adjusted"] < ALPHA)   # threshold 0: significance only
                hits_default.append(bool(cell["forgotten"]))
                mdes.append(mde)
                drops.append(got)
            rows.append({"metric": name, "epoch": epoch, "trials": len(hits), "skipped": skipped,
                         "mean_mde": float(np.mean(mdes)) if mdes else None,
                         "mean_planted": float(np.mean(drops)) if drops else None,
                         "detected": float(np.mean(hits)) if hits else None,
                         "detected_default_threshold": float(np.mean(hits_default)) if hits else None,
                         "threshold": suite.diagnostics.forgetting.thresholds.get(
                             name, suite.diagnostics.forgetting.threshold),
                         "checked_against_forgetting": f"{sum(agree)}/{len(agree)} identical"})
    return rows


# ----------------------------------------------------------------------------- 4. cost
def cost(backend: TransformersBackend, fake: FakeRun, suite: Suite, repeats: int = 3) -> dict:
    """Seconds of one epoch's grading of the default suite (2 tasks × 100 items) vs the whole diagnose.

    The fastest of `repeats` (timeit's convention), each grading followed by a diagnose so both
    see the same machine, torch on one thread: with two threads on a shared 2-core machine the
    same grading took from 0.3 s to 40 s depending on what else ran (its threads wait for each
    other whenever another process takes a core), which would flatter the ratio many times
    over; numpy's single-threaded statistics barely notice."""
    default = parse_suite(Path("suites/translation.yaml").read_text(), "suites/translation.yaml", "suites")
    tasks = [load_task(spec, default) for spec in default.tasks]
    grading, diagnose, load = [], [], []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    for _ in range(repeats):
        t0 = time.perf_counter()
        for task in tasks:
            grade_task(backend, task, default.bootstrap)
        grading.append(time.perf_counter() - t0)
        diagnose.append(_diagnose_seconds(fake, suite))
        load.append(os.getloadavg()[0])
    torch.set_num_threads(threads)
    # the same diagnose with every resample scored from its own rows (the path before column totals)
    with mock.patch("harness.stats.paired.resample_scores", _row_by_row), \
            mock.patch("harness.stats.intervals.resample_scores", _row_by_row), \
            mock.patch("harness.diagnose.checkpoint.resample_scores", _row_by_row):
        rows = min(_diagnose_seconds(fake, suite) for _ in range(repeats))
    g, d = min(grading), min(diagnose)
    return {"grade_epoch_seconds": g, "diagnose_seconds": d, "grade_epoch_all": grading, "diagnose_all": diagnose,
            "diagnose_row_by_row_seconds": rows, "load_average": load, "torch_threads": 1,
            "ratio_to_one_epoch": d / g, "ratio_to_run": d / (g * len(fake.record["epochs"]))}


def _diagnose_seconds(fake: FakeRun, suite: Suite) -> float:
    """One diagnose of a copy of the run's record, the resamples made anew (as in a fresh process)."""
    record = json.loads(json.dumps(fake.record))
    clear_resample_cache()
    t0 = time.perf_counter()
    diagnose_model(record, fake.run, suite)
    return time.perf_counter() - t0


def _row_by_row(metric, stats, indices, weights=None):
    return np.array([metric.score(stats[idx]) for idx in indices], dtype=float)


# ----------------------------------------------------------------------------- output
def table(headers: list[str], rows: list[list]) -> str:
    text = [[str(h) for h in headers]] + [["" if v is None else str(v) for v in r] for r in rows]
    widths = [max(len(r[i]) for r in text) for i in range(len(headers))]
    lines = ["  ".join(c.rjust(w) if j else c.ljust(w) for j, (c, w) in enumerate(zip(r, widths))) for r in text]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def pct(x: Optional[float], digits: int = 1) -> Optional[str]:
    return None if x is None else f"{100 * x:.{digits}f}%"


def num(x: Optional[float], digits: int = 2) -> Optional[str]:
    return None if x is None else f"{x:.{digits}f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: small population, few replicates")
    ap.add_argument("--direction", default="fr-en", choices=["fr-en", "en-fr"])
    ap.add_argument("--population", type=int, default=5000)
    ap.add_argument("--replicates", type=int, default=400)
    ap.add_argument("--sizes", default="100,400")
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--null-pool", type=int, default=1000, help="items graded K times with sampling")
    ap.add_argument("--gradings", type=int, default=5, help="K: sampled gradings = epochs 0..K-1")
    ap.add_argument("--temperature", type=float, default=0.8)
    ap.add_argument("--null-runs", type=int, default=200)
    ap.add_argument("--planted-trials", type=int, default=100)
    ap.add_argument("--batch-size", type=int, default=256, help="generation batch of the population gradings")
    ap.add_argument("--cache", type=Path, default=cache_root() / "calibration")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if args.quick:
        args.population, args.replicates, args.null_pool = 500, 20, 200
        args.null_runs, args.planted_trials = 10, 5
    sizes = [int(s) for s in args.sizes.split(",")]
    started = time.perf_counter()
    report: dict = {"args": {k: str(v) for k, v in vars(args).items()}}

    base = parse_suite(suite_text(args.direction, args.population), "<calibration>")
    population = load_task(base.tasks[0], base)
    path = resolve_model_path(MODEL)
    model, tok = load_model_and_tokenizer(path)
    backend = TransformersBackend(model, tok)
    key = {"model": path, "direction": args.direction, "n": args.population, "max_new_tokens": 48}

    def reference_nll():
        return backend.reference_nll(population.examples, args.batch_size)

    t0 = time.perf_counter()
    nll, hit = cached(args.cache, {**key, "what": "nll"}, reference_nll)
    nll_seconds = time.perf_counter() - t0
    greedy, hit2 = cached(args.cache, {**key, "what": "greedy", "batch": args.batch_size},
                          lambda: generate(backend, population, args.batch_size, None, 0))
    print(f"population: {args.direction}, {args.population:,} items graded greedy "
          f"(generation {'cached' if hit2 else '%.0f s' % greedy['seconds']}, "
          f"reference NLL {'cached' if hit else '%.0f s' % nll_seconds})", flush=True)
    metrics = population.metrics
    stats = item_stats(metrics, graded_items(population, greedy, nll))
    truth = {m.name: m.score(stats[m.name]) for m in metrics}
    print("population scores: " + ", ".join(f"{k} {v:.2f}" for k, v in truth.items()), flush=True)

    pool_task = dataclasses.replace(population, examples=population.examples[:args.null_pool])
    pool_items, pool_stats = [], []
    for k in range(args.gradings):
        got, hit = cached(args.cache, {**key, "what": "sampled", "n_pool": args.null_pool, "k": k,
                                       "temperature": args.temperature, "batch": args.batch_size,
                                       "seeded_by": "generation.seed"},
                          lambda: generate(backend, pool_task, args.batch_size, 1000 + k, args.temperature))
        items = graded_items(pool_task, got, nll[:args.null_pool])
        pool_items.append(items)
        pool_stats.append(item_stats(metrics, items))
        print(f"null pool grading {k} (sampled, T={args.temperature}): "
              f"{'cached' if hit else '%.0f s' % got['seconds']}; " +
              ", ".join(f"{m.name} {m.score(pool_stats[-1][m.name]):.2f}" for m in metrics), flush=True)
    pool = Pool([ex.id for ex in pool_task.examples], pool_items, pool_stats)

    # 1. coverage
    t0 = time.perf_counter()
    cov = coverage(metrics, stats, sizes, args.replicates, args.resamples, args.seed)
    report["coverage"] = cov
    print(f"\n== 1. coverage of the 95% intervals ({args.replicates} test sets per size drawn without replacement "
          f"from {args.population:,} items; {args.resamples} resamples; {time.perf_counter() - t0:.0f} s)")
    print(table(["metric", "n", "interval", "population", "coverage", "mean width"],
                [[r["metric"], r["n"], r["method"], num(r["truth"]), pct(r["coverage"]), num(r["mean_width"])]
                 for r in cov]))
    usable = [m for m in metrics if is_rate(m)]
    for m in usable:
        print(f"population {m.name} rate: {truth[m.name]:.2f}% "
              f"({int(round(stats[m.name][:, 0].sum()))}/{args.population} usable)")

    # 2. null runs
    two = parse_suite(suite_text(args.direction, 100, ("a", "b")), "<calibration>")
    t0 = time.perf_counter()
    null, kept = null_runs(pool, metrics, two, args.null_runs, 100, args.seed, args.planted_trials)
    report["null_runs"] = null
    print(f"\n== 2. null runs: {args.null_runs} runs of 2 tasks × 100 items drawn from a pool of {args.null_pool}, "
          f"epochs 0..{args.gradings - 1} = {args.gradings} sampled gradings of one model "
          f"(family of {null['family_size']} tests; {time.perf_counter() - t0:.0f} s)")
    print(table(["what", "rate"],
                [[f"per test, raw one-sided p < 0.05: {name}", pct(v)] for name, v in null["per_test"].items()] +
                [["per test, raw p < 0.05: all tests", pct(null["per_test_all"])],
                 ["runs flagging anything, old rule (drop > threshold AND raw p < 0.05)", pct(null["old_rule_runs"])],
                 ["runs flagging anything, new rule (drop > threshold AND Holm p < 0.05)", pct(null["new_rule_runs"])],
                 ["runs flagging anything, Holm p < 0.05 with threshold 0", pct(null["holm_threshold0_runs"])],
                 ["cells reported underpowered", pct(null["underpowered_cells"])]]))
    print("(perplexity and loss cannot fire here: the references' NLL is the same in every grading of one model, "
          "so their 16 tests have p = 1; usability is ~100% in every sampled grading, so McNemar has almost no "
          "changed items to count)")

    # 3. planted drops
    vocab = sorted({w for ex in population.examples for w in ex.reference.split()})
    t0 = time.perf_counter()
    plant = planted(pool, metrics, two, kept, ["bleu", "chrf", "usability", "perplexity"], 2, vocab, args.seed)
    report["planted"] = plant
    print(f"\n== 3. planted drops of one reported MDE (task {two.tasks[0].name}, epoch 2, "
          f"{args.planted_trials} null runs; {time.perf_counter() - t0:.0f} s)")
    print(table(["metric", "trials", "mean MDE", "mean planted", "detected (threshold 0)",
                 "detected (default threshold)", "threshold", "vs forgetting()"],
                [[r["metric"], r["trials"] or f"0 ({r['skipped']} skipped: MDE 0)", num(r["mean_mde"]),
                  num(r["mean_planted"]), pct(r["detected"]), pct(r["detected_default_threshold"]), r["threshold"],
                  r["checked_against_forgetting"]] for r in plant]))

    # 4. cost
    with tempfile.TemporaryDirectory() as tmp:
        fake = FakeRun(Path(tmp) / "cost", pool, kept[0][0], kept[0][1], metrics)
        c = cost(backend, fake, diagnostics_suite(two, 0))
    report["cost"] = c
    print("\n== 4. cost: the whole diagnose on one run of the default suite's shape "
          "(2 tasks × 4 metrics + loss × 5 epochs × 100 items)")
    print(f"(fastest of {len(c['grade_epoch_all'])}: grading " + ", ".join(f"{x:.2f}" for x in c["grade_epoch_all"]) +
          " s; diagnose " + ", ".join(f"{x:.2f}" for x in c["diagnose_all"]) + f" s; torch threads "
          f"{c['torch_threads']}; 1-min load average " + ", ".join(f"{x:.1f}" for x in c["load_average"]) + ")")
    print(table(["what", "seconds"],
                [["grading one epoch (generation + scoring, 2 × 100 items)", num(c["grade_epoch_seconds"])],
                 ["diagnose_model (power, forgetting, inflection, checkpoint, changes)", num(c["diagnose_seconds"])],
                 ["the same, every resample scored from its rows (no column totals)",
                  num(c["diagnose_row_by_row_seconds"])],
                 ["column totals: speed-up", f"{c['diagnose_row_by_row_seconds'] / c['diagnose_seconds']:.1f}x"],
                 ["ratio to one epoch's grading", pct(c["ratio_to_one_epoch"])],
                 ["ratio to the run's grading (5 epochs)", pct(c["ratio_to_run"])]]))
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
