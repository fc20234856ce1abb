"""The checkpoint to keep, under uncertainty.

"Best epoch" alone is a point estimate: when epochs 3 and 4 differ by less than the noise,
crowning one is a coin toss. Beside it this section gives, on the best-epoch metric:
- the **tie set**: the best epoch and every epoch not significantly worse than it (one-sided
  paired tests, Holm-adjusted over the comparisons, at the forgetting confidence);
- the **recommended checkpoint**: the earliest epoch of the tie set at which nothing is
  forgotten (the forgetting section's flags); earliest because it trained least;
- the **stability** of the best-epoch choice: the share of bootstrap resamples of the test
  items (the same resample for every epoch) in which the same epoch scores best.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from harness.diagnose.evidence import ItemStats, fmt_p, value
from harness.results import ModelRecord
from harness.stats.family import holm
from harness.stats.resampling import resample_plan, resample_scores
from harness.suite import Suite


def checkpoint_choice(record: ModelRecord, items: ItemStats, suite: Suite, forgetting: dict) -> dict:
    best = record["best"]
    spec = suite.diagnostics.forgetting
    alpha = 1 - spec.confidence
    section: dict = {"metric": best["metric"] if best else None, "best_epoch": best["epoch"] if best else None,
                     "tie_set": [], "comparisons": {}, "recommended": None, "stability": None}
    if not best or "/" not in best["metric"] or len(record["epochs"]) < 2:
        section["verdict"] = {"status": "skipped", "summary": "needs a best-epoch metric and two graded epochs"}
        return section
    task, name = best["metric"].split("/", 1)
    by_epoch = {e["epoch"]: e for e in record["epochs"] if value(e, task, name) is not None}
    best_rec = by_epoch[best["epoch"]]["tasks"][task]
    others = [ep for ep in by_epoch if ep != best["epoch"]]
    tests = {ep: items.paired(task, name, by_epoch[ep]["tasks"][task], best_rec, spec.confidence) for ep in others}
    adjusted = holm([t["p_value"] if t else None for t in tests.values()])
    for ep, adj in zip(others, adjusted):
        t = tests[ep]
        section["comparisons"][str(ep)] = {"delta_vs_best": value(by_epoch[ep], task, name) - best["score"],
                                           "p_value": t["p_value"] if t else None, "p_adjusted": adj,
                                           "test": t["test"] if t else None}
    tied = [ep for ep, adj in zip(others, adjusted) if adj is None or adj >= alpha]
    section["tie_set"] = sorted([best["epoch"], *tied])
    section["stability"] = _stability(by_epoch, task, name, best["epoch"], items, suite)
    forgotten_at = {int(ep) for ms in forgetting.get("tasks", {}).values() for r in ms.values()
                    for ep, c in r["epochs"].items() if c["forgotten"]}
    section["forgotten_epochs"] = sorted(forgotten_at)
    section["recommended"] = next((ep for ep in section["tie_set"] if ep not in forgotten_at), None)
    section["verdict"] = _verdict(section, best)
    return section


def _stability(by_epoch: dict, task: str, name: str, best_epoch: int, items: ItemStats, suite: Suite
               ) -> Optional[float]:
    """Share of joint resamples of the items in which `best_epoch` still scores best."""
    per_epoch = {ep: items.stats(e["tasks"][task], name) for ep, e in by_epoch.items()}
    if any(v is None for v in per_epoch.values()):
        return None
    ids = [i for i in per_epoch[best_epoch] if all(i in v for v in per_epoch.values())]
    if len(ids) < 2 or suite.diagnostics.forgetting.samples <= 0:
        return None
    metric = items.metric(task, name)
    higher = metric.higher_is_better is not False
    epochs = sorted(per_epoch)
    mats = [np.array([per_epoch[ep][i] for i in ids]) for ep in epochs]
    draws, weights = resample_plan(len(ids), suite.diagnostics.forgetting.samples, suite.bootstrap.seed,
                                   items.clusters(by_epoch[best_epoch]["tasks"][task], ids))
    scores = np.stack([resample_scores(metric, m, draws, weights) for m in mats])    # epochs × resamples
    scores = np.where(np.isnan(scores), -np.inf if higher else np.inf, scores)
    winners = np.argmax(scores, axis=0) if higher else np.argmin(scores, axis=0)   # the earliest on ties
    return float(np.mean(winners == epochs.index(best_epoch)))


def _verdict(section: dict, best: dict) -> dict:
    ties = ", ".join(str(e) for e in section["tie_set"])
    stab = f"; epoch {best['epoch']} is best in {section['stability']:.0%} of resamples" \
        if section["stability"] is not None else ""
    rec = section["recommended"]
    if rec is None:
        forgot = ", ".join(str(e) for e in section["forgotten_epochs"])
        return {"status": "warn", "summary": f"no checkpoint to recommend: every epoch within noise of the best "
                                             f"{best['metric']} (tie set {ties}) has something forgotten "
                                             f"(forgotten at epochs {forgot}){stab}"}
    if rec == best["epoch"]:
        why = "the best, nothing forgotten" if len(section["tie_set"]) == 1 else \
            f"the best; tied within noise: {ties}"
    else:
        c = section["comparisons"][str(rec)]
        why = (f"the earliest epoch within noise of the best (epoch {best['epoch']}, "
               f"Δ {c['delta_vs_best']:+.2f}, {fmt_p(c['p_adjusted'])}; tie set {ties}) with nothing forgotten")
    base = " (the base model: training did not beat it beyond noise)" if rec == 0 else ""
    return {"status": "pass", "summary": f"keep epoch {rec}{base}: {why}{stab}"}
