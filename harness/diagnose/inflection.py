"""The overfitting inflection (per task × metric, plus the task's validation loss).

The best epoch, and the epoch after which the metric stops improving while the training loss
keeps falling, when the last epoch is significantly worse than that peak (the one-sided paired
test of harness/stats/paired.py). Series are smoothed with a centred moving average of
`diagnostics.smoothing` epochs before the peak is located (1 = off). Validation loss and a
generation metric often disagree about the best epoch; both are reported. Definitions and
defaults: docs/diagnostics.md.
"""
from __future__ import annotations

from typing import Optional, Sequence

from harness.diagnose.evidence import LOSS, ItemStats, fmt_p, series_keys, value
from harness.metrics import metric_family
from harness.results import ModelRecord
from harness.suite import Suite


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


def inflection(record: ModelRecord, items: ItemStats, suite: Suite) -> dict:
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
    for task, name, higher in series_keys(record):
        raw = [value(e, task, name) for e in epochs]
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
                                confidence)
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
                         f"({fmt_p(d['p_value'])})")
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
