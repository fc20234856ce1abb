"""Diagnostics over a graded run: catastrophic forgetting and the overfitting inflection.

Both read only what a run writes (results.json and the per-sample statistics in
samples/), so they work the same right after training, on an interrupted run, or later.

Forgetting (per task × metric × graded epoch): the score against epoch 0 (the base model),
against the best so far, and whether the drop is real: a task is *forgotten* at an epoch when
it is worse than the base by more than `threshold` (metric units) AND a one-sided paired
bootstrap over the same test items rejects "no drop" at `confidence`.

Inflection (per task × metric, plus the task's validation loss): the best epoch, and the
epoch after which the metric stops improving while the training loss keeps falling, when
the last epoch is significantly worse than that peak (the same paired bootstrap). Series are
smoothed with a centred moving average of `diagnostics.smoothing` epochs before the peak is
located (1 = off). Validation loss and a generation metric often disagree about the best
epoch; both are reported. Definitions and defaults: docs/diagnostics.md.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np

from harness.grade import metric_options
from harness.metrics import metric_family, metric_for
from harness.metrics.base import Metric
from harness.metrics.bootstrap import paired_bootstrap
from harness.results import EpochRecord, ModelRecord, RunDir, TaskRecord, read_jsonl, sample_stats
from harness.suite import ForgettingSpec, Suite

LOSS = "loss"


class TokenLoss(Metric):
    """Validation loss: mean NLL per assistant token (token-weighted), as in each task's `loss`."""

    name = LOSS
    higher_is_better = False
    needs = "likelihood"

    def score(self, stats: np.ndarray) -> float:
        tokens = stats[:, 1].sum()
        return float(stats[:, 0].sum() / tokens) if tokens > 0 else float("nan")


def diagnose_model(record: ModelRecord, run: RunDir, suite: Suite) -> None:
    """Fill record["diagnostics"] with the forgetting and inflection sections."""
    items = _ItemStats(run, suite)
    record["diagnostics"] = {
        "forgetting": forgetting(record, items, suite),
        "inflection": inflection(record, items, suite),
    }


# --------------------------------------------------------------------------- evidence
class _ItemStats:
    """Per-item statistics of (model epoch, task, metric), aligned by item id for paired tests."""

    def __init__(self, run: RunDir, suite: Suite):
        self.run, self.suite = run, suite
        self._rows: dict[str, Optional[list[dict]]] = {}
        self._metrics: dict[tuple[str, str], Metric] = {}
        self._stats: dict[tuple[str, str], Optional[dict[str, np.ndarray]]] = {}

    def metric(self, task: str, name: str) -> Metric:
        """The metric object, built with the options the task was graded with (JSON Schema loaded)."""
        if name == LOSS:
            return TokenLoss()
        if (task, name) not in self._metrics:
            spec = next((t for t in self.suite.tasks if t.name == task), None)
            self._metrics[(task, name)] = metric_for(name, metric_options(spec, self.suite) if spec else {})
        return self._metrics[(task, name)]

    def stats(self, task_record: TaskRecord, name: str) -> Optional[dict[str, np.ndarray]]:
        """item id → statistics row, read once per sample file and metric."""
        rel = task_record["samples"]
        if not rel:
            return None
        if rel not in self._rows:
            path = self.run.root / rel
            self._rows[rel] = read_jsonl(path) if path.exists() else None
        if (rel, name) not in self._stats:
            got = sample_stats(self._rows[rel] or [], name)
            self._stats[(rel, name)] = dict(zip(got[0], got[1])) if got else None
        return self._stats[(rel, name)]

    def paired(self, task: str, name: str, new: TaskRecord, old: TaskRecord, higher: bool,
               confidence: float) -> Optional[dict]:
        """One-sided paired bootstrap 'new is worse than old' on the items both graded."""
        a, b = self.stats(new, name), self.stats(old, name)
        if a is None or b is None:
            return None
        ids = [i for i in b if i in a]
        if len(ids) < 2:
            return None
        boot = self.suite.diagnostics.forgetting
        res = paired_bootstrap(self.metric(task, name), np.array([a[i] for i in ids]),
                               np.array([b[i] for i in ids]), samples=boot.samples,
                               seed=self.suite.bootstrap.seed, confidence=confidence,
                               alternative="less" if higher else "greater")
        return {**res, "n": len(ids)}


def _series_keys(record: ModelRecord) -> list[tuple[str, str, bool]]:
    """(task, metric, higher_is_better) for every scored metric, plus each task's loss."""
    keys: list[tuple[str, str, bool]] = []
    seen = set()
    for e in record["epochs"]:
        for task, rec in e["tasks"].items():
            for name, m in rec["metrics"].items():
                if m["score"] is not None and (task, name) not in seen:
                    seen.add((task, name))
                    keys.append((task, name, m["higher_is_better"] is not False))
            if rec["loss"] is not None and (task, LOSS) not in seen:
                seen.add((task, LOSS))
                keys.append((task, LOSS, False))
    return keys


def _value(epoch_record: EpochRecord, task: str, name: str) -> Optional[float]:
    rec = epoch_record["tasks"].get(task)
    if rec is None:
        return None
    if name == LOSS:
        v = rec["loss"]
    else:
        v = rec["metrics"][name]["score"] if name in rec["metrics"] else None
    return v if isinstance(v, (int, float)) and math.isfinite(v) else None


def _fmt_p(p: Optional[float], samples: int) -> str:
    """p as text; the smallest p a bootstrap of n resamples gives, 1/(n+1), reads 'p<1/n'."""
    if p is None:
        return "p n/a"
    # the smallest p a bootstrap of n resamples can give is 1/(n+1) (never 0): below 1/n
    return f"p<{1 / samples:.3g}" if samples and p <= 1 / (samples + 1) + 1e-12 else f"p={p:.3g}"


# --------------------------------------------------------------------------- forgetting
def forgetting(record: ModelRecord, items: _ItemStats, suite: Suite) -> dict:
    spec = suite.diagnostics.forgetting
    epochs = record["epochs"]
    section: dict = {"threshold": spec.threshold, "thresholds": dict(spec.thresholds),
                     "confidence": spec.confidence, "samples": spec.samples,
                     "test": "one-sided paired bootstrap vs epoch 0 over the same test items",
                     "tasks": {}, "flagged": [], "flagged_at_best": []}
    base = next((e for e in epochs if e["epoch"] == 0), None)
    graded = [e for e in epochs if e["epoch"] > 0]
    if base is None or not graded:
        section["verdict"] = {"status": "skipped", "summary": "needs epoch 0 and at least one trained epoch"}
        return section
    best_epoch = record["best"]["epoch"] if record["best"] else None
    worst: list[tuple[bool, float, str]] = []
    for task, name, higher in _series_keys(record):
        row = _forgetting_row(task, name, higher, base, graded, items, spec)
        if row is None:
            continue
        base_score = row["base"]
        section["tasks"].setdefault(task, {})[name] = row
        last = row["epochs"].get(str(graded[-1]["epoch"]))
        key = f"{task}/{name}"
        if last and last["forgotten"]:
            section["flagged"].append(key)
            desc = f"{key} {base_score:.2f}→{last['score']:.2f}"
            if last["ci"]:
                desc += (f" (Δ {last['delta_vs_base']:+.2f}, {spec.confidence:.0%} CI "
                         f"[{last['ci'][0]:+.2f}, {last['ci'][1]:+.2f}], {_fmt_p(last['p_value'], spec.samples)})")
            # generation metrics lead the summary; likelihood ones (perplexity, loss) follow
            worst.append((name in ("perplexity", LOSS), -abs(last["delta_vs_base"]) / max(abs(base_score), 1e-9), desc))
        cell_at_best = row["epochs"].get(str(best_epoch)) if best_epoch else None
        if cell_at_best and cell_at_best["forgotten"]:
            section["flagged_at_best"].append(key)
    untested = [f"{t}/{m}" for t, ms in section["tasks"].items() for m, r in ms.items()
                if any(c["forgotten"] is None for c in r["epochs"].values())]
    if section["flagged"]:
        worst.sort()
        more = f" (+{len(worst) - 3} more)" if len(worst) > 3 else ""
        summary = f"forgotten by epoch {graded[-1]['epoch']}: " + "; ".join(w[-1] for w in worst[:3]) + more
        section["verdict"] = {"status": "fail", "summary": summary}
    elif untested:
        section["verdict"] = {"status": "warn", "summary": "drop beyond threshold without per-item statistics "
                                                           f"to test it: {', '.join(untested[:3])}"}
    else:
        recovered = sorted({f"{t}/{m}" for t, ms in section["tasks"].items() for m, r in ms.items()
                            if any(c["forgotten"] for c in r["epochs"].values())})
        if recovered:
            section["verdict"] = {"status": "warn", "summary": "forgotten at an earlier epoch, recovered by the "
                                                               f"last: {', '.join(recovered[:3])}"}
        else:
            section["verdict"] = {"status": "pass", "summary": f"no task fell more than its threshold below "
                                                               f"epoch 0 ({len(section['tasks'])} tasks checked)"}
    return section


def _forgetting_row(task: str, name: str, higher: bool, base: dict, graded: list[dict], items: _ItemStats,
                    spec: ForgettingSpec) -> Optional[dict]:
    """One task × metric across graded epochs: change vs epoch 0 and vs the best so far, tested."""
    base_score = _value(base, task, name)
    if base_score is None:
        return None
    threshold = spec.thresholds.get(name, spec.threshold)
    row: dict = {"higher_is_better": higher, "threshold": threshold, "base": base_score, "epochs": {}}
    best_so_far, best_so_far_epoch = base_score, 0
    for e in graded:
        score = _value(e, task, name)
        if score is None:
            continue
        if (score > best_so_far) if higher else (score < best_so_far):
            best_so_far, best_so_far_epoch = score, e["epoch"]
        drop = (base_score - score) if higher else (score - base_score)   # > 0 is worse
        cell = {"score": score, "best_so_far": best_so_far, "best_so_far_epoch": best_so_far_epoch,
                "delta_vs_base": score - base_score,
                "drop_from_best": (best_so_far - score) if higher else (score - best_so_far),
                "ci": None, "p_value": None, "forgotten": False}
        if drop > threshold:
            test = items.paired(task, name, e["tasks"][task], base["tasks"][task], higher, spec.confidence)
            if test is not None:
                cell["ci"], cell["p_value"] = test["ci"], test["p_value"]
                cell["forgotten"] = test["p_value"] is not None and test["p_value"] < 1 - spec.confidence
            else:
                cell["forgotten"] = None  # a real drop, but no per-item statistics to test it
        row["epochs"][str(e["epoch"])] = cell
    return row if row["epochs"] else None


# --------------------------------------------------------------------------- inflection
def smooth(values: Sequence[Optional[float]], window: int) -> list[Optional[float]]:
    """Centred moving average over `window` points (edges use the neighbours they have)."""
    half = window // 2
    out: list[Optional[float]] = []
    for i, v in enumerate(values):
        if v is None:
            out.append(None)
            continue
        near = [x for x in values[max(0, i - half): i + half + 1] if x is not None]
        out.append(sum(near) / len(near))
    return out


def _argbest(epochs: list[int], values: list[Optional[float]], higher: bool) -> Optional[int]:
    best = None
    for ep, v in zip(epochs, values):
        if v is not None and (best is None or (v > best[1] if higher else v < best[1])):
            best = (ep, v)
    return best[0] if best else None


def inflection(record: ModelRecord, items: _ItemStats, suite: Suite) -> dict:
    window = suite.diagnostics.smoothing
    confidence = suite.diagnostics.forgetting.confidence
    epochs = record["epochs"]
    by_epoch = {e["epoch"]: e for e in epochs}
    train_loss = {e["epoch"]: e["train_loss"] for e in epochs if isinstance(e["train_loss"], (int, float))}
    section: dict = {
        "smoothing": {"method": "centred moving average over epochs", "window": window},
        "train_loss": {"epochs": sorted(train_loss), "values": [train_loss[k] for k in sorted(train_loss)]},
        "series": {}, "disagreements": [], "inflections": [],
    }
    if len([e for e in epochs if e["epoch"] > 0]) < 2:
        section["verdict"] = {"status": "skipped", "summary": "needs at least two trained epochs"}
        return section
    eps = [e["epoch"] for e in epochs]
    last = eps[-1]
    for task, name, higher in _series_keys(record):
        raw = [_value(e, task, name) for e in epochs]
        if sum(v is not None for v in raw) < 2:
            continue
        smoothed = smooth(raw, window)
        best = _argbest(eps, raw, higher)
        peak = _argbest(eps, smoothed, higher)
        s: dict = {"higher_is_better": higher, "epochs": eps, "raw": raw, "smoothed": smoothed,
                   "best_epoch": best, "smoothed_best_epoch": peak, "inflection_epoch": None,
                   "decline": None, "status": "improving"}
        if peak is not None and peak != last:
            test = items.paired(task, name, by_epoch[last]["tasks"][task], by_epoch[peak]["tasks"][task],
                                higher, confidence)
            s["decline"] = test
            significant = test is not None and test["p_value"] is not None and test["p_value"] < 1 - confidence
            loss_fell = (peak in train_loss and last in train_loss and train_loss[last] < train_loss[peak])
            if peak == 0:
                s["status"] = "declining"     # never better than the base model: forgetting, not overfitting
            elif significant and loss_fell:
                s["status"], s["inflection_epoch"] = "inflection", peak
                section["inflections"].append(f"{task}/{name}")
            else:
                s["status"] = "plateau"
        section["series"][f"{task}/{name}"] = s
    for task in sorted({k.split("/", 1)[0] for k in section["series"]}):
        loss = section["series"].get(f"{task}/{LOSS}")
        if not loss:
            continue
        for key, s in section["series"].items():
            t, name = key.split("/", 1)
            flat = len({v for v in s["raw"] if v is not None}) == 1   # a flat series has no best epoch to argue
            if t == task and name != LOSS and not flat and s["best_epoch"] != loss["best_epoch"]:
                section["disagreements"].append({"task": task, "metric": name, "metric_best_epoch": s["best_epoch"],
                                                 "loss_best_epoch": loss["best_epoch"]})
    if section["inflections"]:
        parts = []
        for key in section["inflections"][:3]:
            s = section["series"][key]
            d = s["decline"]
            parts.append(f"{key} is best at epoch {s['inflection_epoch']}, then {abs(d['delta']):.2f} "
                         f"{'lower' if s['higher_is_better'] else 'higher'} by epoch {last} "
                         f"({_fmt_p(d['p_value'], d['samples'])})")
        more = f" (+{len(section['inflections']) - 3} more)" if len(section["inflections"]) > 3 else ""
        section["verdict"] = {"status": "warn", "summary": "overfitting: " + "; ".join(parts) + more +
                              " while training loss keeps falling"}
    else:
        section["verdict"] = {"status": "pass", "summary": "no metric peaked and then fell significantly "
                                                           "while training loss kept falling"}
    primary = {t.name: t.metrics[0] for t in suite.tasks if t.metrics}
    headline = [d for d in section["disagreements"] if primary.get(d["task"]) in (d["metric"], metric_family(d["metric"]))]
    if headline:
        d = headline[0]
        section["verdict"]["summary"] += (f"; best epoch by {d['task']} validation loss is {d['loss_best_epoch']}, "
                                          f"by {d['metric']} {d['metric_best_epoch']}")
    return section

