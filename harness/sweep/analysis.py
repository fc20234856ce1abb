"""A sweep directory → what the report and the CLI say about it, from the files alone.

Reads SWEEP_DIR/sweep.json and every trial's run directories (trial.json, results.json,
samples/), never the study's database: the report of a sweep run on a PostgreSQL study renders
wherever its directory is. Definitions (docs/sweep.md):
- a trial's **objective** is the mean over its seeds of the best (or last) trained epoch's score;
- the **best** trial is the best complete, feasible one (a trial that forgets a task is infeasible
  when the sweep's constraints say `forgetting: none`);
- the **tie set** is the best trial and every complete trial not significantly worse than it:
  one-sided paired tests on the same items (each seed's items, pooled), Holm-adjusted over the
  number of trials compared, at diagnostics.forgetting.confidence;
- **parameter importance** (fANOVA, optuna.importance) from 10 complete trials on.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from statistics import fmean, pstdev
from typing import Any, Optional

import numpy as np

from harness.errors import UserError
from harness.results import load_results
from harness.sweep.runner import SWEEP_FILE, TRIAL_FILE

MIN_TRIALS_FOR_IMPORTANCE = 10


def is_sweep_dir(path: Path) -> bool:
    return (Path(path) / SWEEP_FILE).is_file()


@dataclass
class SeedRun:
    seed: int
    root: Path
    info: dict                      # trial.json
    results: Optional[dict]         # results.json (None: not written yet)
    value: Optional[float] = None   # the objective of this seed
    epoch: Optional[int] = None     # the epoch that gave it
    forgetting: Optional[str] = None


@dataclass
class TrialSummary:
    number: int
    params: dict
    runs: list[SeedRun]
    state: str                      # complete, pruned, running, failed
    value: Optional[float] = None
    spread: Optional[float] = None  # standard deviation over seeds
    interval: Optional[list] = None  # one seed: the chosen epoch's CI; several: [min, max] over seeds
    feasible: bool = True
    tie: dict = field(default_factory=dict)   # vs the best: delta, p_value, p_adjusted, tied

    @property
    def label(self) -> str:
        return f"trial {self.number}"


@dataclass
class SweepSummary:
    root: Path
    meta: dict
    trials: list[TrialSummary]
    best: Optional[TrialSummary]
    tie_set: list[int]
    importance: Optional[dict[str, float]]
    recommendation: str


def summarise(sweep_dir: Path) -> SweepSummary:
    root = Path(sweep_dir)
    try:
        meta = json.loads((root / SWEEP_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise UserError(f"{root}: not a sweep directory ({e}): give the directory `harness sweep` wrote") from None
    task, metric = meta["objective"].split("/", 1)
    higher = meta["direction"] == "maximize"
    trials = [_trial(d, task, metric, higher, meta) for d in sorted((root / "trials").glob("trial-*"))]
    trials = [t for t in trials if t is not None]
    done = [t for t in trials if t.state == "complete" and t.value is not None]
    feasible = [t for t in done if t.feasible]
    best = (max if higher else min)(feasible, key=lambda t: t.value) if feasible else None
    tie_set = _tie_set(best, done, task, metric) if best else []
    trials.sort(key=lambda t: (t.value is None, -(t.value or 0) if higher else (t.value or 0), t.number))
    importance = _importance(meta, done) if len(done) >= MIN_TRIALS_FOR_IMPORTANCE else None
    summary = SweepSummary(root, meta, trials, best, tie_set, importance, "")
    summary.recommendation = _recommendation(summary)
    return summary


def _trial(d: Path, task: str, metric: str, higher: bool, meta: dict) -> Optional[TrialSummary]:
    try:
        info = json.loads((d / TRIAL_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    runs = []
    for seed, entry in sorted(info.get("seeds", {}).items(), key=lambda kv: int(kv[0])):
        seed_dir = d / entry["run"]
        try:
            results = load_results(seed_dir)[0]
        except Exception:   # not written yet, or half a run: shown as running
            results = None
        run = SeedRun(int(seed), seed_dir, entry, results)
        if results and results.get("models"):
            record = results["models"][0]
            run.value, run.epoch = _chosen(record, task, metric, higher, meta["at"])
            run.forgetting = (((record.get("diagnostics") or {}).get("forgetting") or {}).get("verdict") or {}) \
                .get("status")
        runs.append(run)
    if not runs:
        return None
    states = [r.info.get("state") for r in runs]
    state = "pruned" if "pruned" in states else "complete" if len(runs) == len(meta["seeds"]) and \
        all(s == "complete" for s in states) else "running"
    t = TrialSummary(int(d.name.split("-")[1]), info["params"], runs, state)
    t.feasible = not (meta.get("constraints", {}).get("forgetting") and any(r.forgetting == "fail" for r in runs))
    values = [r.value for r in runs if r.value is not None]
    if state == "complete" and len(values) == len(runs):
        t.value = fmean(values)
        t.spread = pstdev(values) if len(values) > 1 else None
        if len(values) > 1:
            t.interval = [min(values), max(values)]
        else:
            rec = _metric_record(runs[0], task, metric)
            t.interval = (rec or {}).get("ci")
    return t


def _chosen(record: dict, task: str, metric: str, higher: bool, at: str) -> tuple[Optional[float], Optional[int]]:
    pairs = []
    for e in record["epochs"]:
        if e["epoch"] >= 1 and task in e["tasks"]:
            rec = e["tasks"][task]
            v = rec.get("loss") if metric == "loss" else (rec["metrics"].get(metric) or {}).get("score")
            if v is not None:
                pairs.append((float(v), e["epoch"]))
    if not pairs:
        return None, None
    if at == "last":
        return pairs[-1]
    return (max if higher else min)(pairs, key=lambda p: p[0])


def _metric_record(run: SeedRun, task: str, metric: str) -> Optional[dict]:
    for e in run.results["models"][0]["epochs"]:
        if e["epoch"] == run.epoch:
            return e["tasks"][task]["metrics"].get(metric)
    return None


def _tie_set(best: TrialSummary, done: list[TrialSummary], task: str, metric: str) -> list[int]:
    """The best trial and every complete trial a paired test cannot call worse (Holm over the trials)."""
    from harness.stats.family import holm
    from harness.stats.paired import compare_worse

    suite = _suite_of(best.runs[0].root)
    confidence = suite.diagnostics.forgetting.confidence
    others = [t for t in done if t is not best]
    tests = []
    for t in others:
        got = _pooled_items(best, t, task, metric, suite)
        if got is None:
            tests.append(None)
            continue
        metric_obj, new, old = got
        tests.append(compare_worse(metric_obj, new, old, samples=suite.diagnostics.forgetting.samples,
                                   seed=suite.bootstrap.seed, confidence=confidence))
    adjusted = holm([x["p_value"] if x else None for x in tests])
    tied = [best.number]
    best.tie = {"tied": True, "delta": None, "p_value": None, "p_adjusted": None, "n": None}
    for t, test, adj in zip(others, tests, adjusted):
        is_tied = adj is None or adj >= 1 - confidence
        t.tie = {"delta": test["delta"] if test else None, "p_value": test["p_value"] if test else None,
                 "p_adjusted": adj, "tied": is_tied, "n": test["n"] if test else None}
        if is_tied:
            tied.append(t.number)
    return sorted(tied)


def _pooled_items(best: TrialSummary, other: TrialSummary, task: str, metric: str, suite):
    """Per-item statistics of the two trials' chosen epochs, on the items both graded, every
    common seed's items stacked (a seed's items are paired with the same seed's)."""
    from harness.diagnose.evidence import ItemStats
    from harness.results import RunDir

    new_rows, old_rows, metric_obj = [], [], None
    by_seed = {r.seed: r for r in other.runs}
    for a in best.runs:
        b = by_seed.get(a.seed)
        if b is None:
            continue
        sa, sb = ItemStats(RunDir(a.root), suite), ItemStats(RunDir(b.root), suite)
        metric_obj = sa.metric(task, metric)
        ra, rb = _task_record(a, task), _task_record(b, task)
        if ra is None or rb is None:
            continue
        xa, xb = sa.stats(ra, metric), sb.stats(rb, metric)
        if xa is None or xb is None:
            continue
        ids = [i for i in xa if i in xb]
        new_rows += [xb[i] for i in ids]
        old_rows += [xa[i] for i in ids]
    if metric_obj is None or len(new_rows) < 2:
        return None
    return metric_obj, np.array(new_rows), np.array(old_rows)


def _task_record(run: SeedRun, task: str) -> Optional[dict]:
    for e in run.results["models"][0]["epochs"]:
        if e["epoch"] == run.epoch:
            return e["tasks"].get(task)
    return None


def _suite_of(run_root: Path):
    from harness.suite import parse_suite

    text = (run_root / "suite.yaml").read_text(encoding="utf-8")
    return parse_suite(text, file=str(run_root / "suite.yaml"), base_dir=run_root)


def _importance(meta: dict, done: list[TrialSummary]) -> Optional[dict[str, float]]:
    """fANOVA importance of each parameter over the complete trials (an in-memory study of them)."""
    import optuna

    dists = {path: _distribution(space) for path, space in meta["params"].items()}
    if len(dists) < 2:
        return None   # one parameter explains everything by definition
    study = optuna.create_study(direction=meta["direction"])
    for t in done:
        study.add_trial(optuna.trial.create_trial(params=t.params, distributions=dists, value=t.value))
    try:
        return {k: float(v) for k, v in optuna.importance.get_param_importances(study, normalize=True).items()}
    except Exception:   # e.g. every trial scored the same: nothing to apportion
        return None


def _distribution(space: Any):
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if isinstance(space, list):
        return CategoricalDistribution(space)
    if "int" in space and space["int"] is not None:
        return IntDistribution(*space["int"])
    if space.get("log_uniform") is not None:
        return FloatDistribution(*space["log_uniform"], log=True)
    return FloatDistribution(*space["uniform"])


def _recommendation(s: SweepSummary) -> str:
    key = s.meta["objective"]
    n_pruned = sum(t.state == "pruned" for t in s.trials)
    n_done = sum(t.state == "complete" for t in s.trials)
    infeasible = [t.number for t in s.trials if t.state == "complete" and not t.feasible]
    if s.best is None:
        return (f"no complete feasible trial yet ({n_done} complete, {n_pruned} pruned"
                + (f", {len(infeasible)} forget a task" if infeasible else "") + "): nothing to recommend")
    params = ", ".join(f"{k}={v}" for k, v in s.best.params.items())
    seeds = f" (mean of {len(s.best.runs)} seeds)" if len(s.best.runs) > 1 else ""
    text = (f"use trial {s.best.number} ({params}): {key} {s.best.value:.2f}{seeds}, "
            f"the best of {n_done} complete trials")
    others = [n for n in s.tie_set if n != s.best.number]
    if others:
        text += (f"; {'trials' if len(others) > 1 else 'trial'} {', '.join(map(str, others))} "
                 f"{'are' if len(others) > 1 else 'is'} within noise of it (paired test on the same items, "
                 f"Holm over {n_done - 1} comparisons): any of them is as good, and the cheapest of them will do")
    elif n_done > 1:
        text += f"; every other trial is significantly worse (paired test, Holm over {n_done - 1} comparisons)"
    if infeasible:
        text += f"; trials {', '.join(map(str, infeasible))} forget a task and were not considered"
    if n_pruned:
        text += f"; {n_pruned} pruned early"
    return text
