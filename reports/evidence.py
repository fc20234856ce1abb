"""The report's tables for the diagnostics that state their own noise (docs/diagnostics.md):
what each test set can see (`diagnostics.power`) and what changed, item by item, between each
graded epoch and epoch 0 (`diagnostics.changes`). Both sections are optional: results written
before them give None, and a malformed key is skipped, never raised on.
"""
from __future__ import annotations

from typing import Any, Callable, Optional

from reports.collect import Series, as_dict, as_int, dig, num

TEXT_CHARS = 300       # a regression's source/reference/outputs in the table; the browser has them whole

SampleLink = Callable[[str, int, str, str], Optional[str]]   # (task, epoch, metric, id) -> href or None


def power_table(s: Series) -> Optional[dict]:
    """One row per task × metric: items, MDE before training (unpaired), threshold, items needed."""
    p = dig(s.model["diagnostics"], "power")
    rows = []
    for task, metrics in as_dict(p.get("tasks")).items():
        for metric, r in as_dict(metrics).items():
            if not isinstance(r, dict):
                continue
            mde, threshold = num(r.get("mde_unpaired")), num(r.get("threshold"))
            blind = mde is not None and threshold is not None and mde > threshold
            rows.append({"task": task, "metric": metric, "n": as_int(r.get("n")), "mde": mde, "threshold": threshold,
                         "blind": blind, "items_needed": as_int(r.get("items_needed_unpaired")) if blind else None})
    if not rows:
        return None
    return {"rows": rows, "confidence": num(p.get("confidence")), "power": num(p.get("power")),
            "family_size": as_int(p.get("family_size")), "alpha_per_test": num(p.get("alpha_per_test")),
            "epoch": as_int(p.get("epoch")), "pairing": str(p.get("pairing") or "")}


def item_changes(s: Series, link: SampleLink) -> list[dict]:
    """Per task: improved/worsened/unchanged per metric and graded epoch (vs epoch 0 and vs the
    previous epoch), McNemar p for rates, and the top regressions, each linked to its sample."""
    out = []
    for task, by_epoch in as_dict(dig(s.model["diagnostics"], "changes").get("tasks")).items():
        epochs = sorted((as_int(k), v) for k, v in as_dict(by_epoch).items()
                        if as_int(k) is not None and isinstance(v, dict))
        if not epochs:
            continue
        metrics: list[str] = []
        for _, entry in epochs:
            metrics += [m for m in as_dict(entry.get("vs_base")) if m not in metrics]
        rows, regressions = [], []
        for epoch, entry in epochs:
            rows.append({"epoch": epoch, "vs": 0, "cells": [_counts(dig(entry, "vs_base", m)) for m in metrics]})
            if as_dict(entry.get("vs_previous")):
                rows.append({"epoch": epoch, "vs": as_int(entry.get("previous_epoch")),
                             "cells": [_counts(dig(entry, "vs_previous", m)) for m in metrics]})
            regressions += [_regression(task, epoch, r, link) for r in entry.get("regressions") or []
                            if isinstance(r, dict) and r.get("id") is not None]
        last = next((r for r in reversed(rows) if r["vs"] == 0), None)
        first = next((c for c in (last["cells"] if last else []) if c), None)
        headline = (f"epoch {last['epoch']} vs epoch 0, {metrics[last['cells'].index(first)]}: "
                    f"{first['improved']} better, {first['worsened']} worse, {first['unchanged']} unchanged"
                    if first else "")
        out.append({"task": task, "metrics": metrics, "rows": rows, "regressions": regressions,
                    "headline": headline})
    return out


def _counts(cell: dict) -> Optional[dict]:
    got = {k: as_int(cell.get(k)) for k in ("improved", "worsened", "unchanged")}
    if any(v is None for v in got.values()):
        return None
    return {**got, "p": num(cell.get("mcnemar_p")), "rate": "mcnemar_p" in cell}


def _regression(task: str, epoch: int, r: dict, link: SampleLink) -> dict:
    item, metric = str(r["id"]), str(r.get("metric") or "")
    return {"epoch": epoch, "id": item, "metric": metric, "href": link(task, epoch, metric, item),
            "drop": num(r.get("drop")), "score": num(r.get("score")), "base_score": num(r.get("base_score")),
            **{k: _short(r.get(k)) for k in ("source", "reference", "output", "base_output")}}


def _short(v: Any) -> Optional[str]:
    if v is None:
        return None
    text = str(v)
    return text if len(text) <= TEXT_CHARS else text[:TEXT_CHARS] + "…"
