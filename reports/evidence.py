"""The report's tables of the evidence behind each verdict (docs/diagnostics.md): what each test
set can see (`diagnostics.power`), what changed item by item (`diagnostics.changes`), and the
forgetting, inflection and audit rows. Every section is optional: results written before it give
None or empty rows, and a malformed key is skipped, never raised on.
"""
from __future__ import annotations

import json
from typing import Any, Callable, Optional

from reports.collect import Series, as_dict, as_int, dig, forgetting_cells, num

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


# --------------------------------------------------------------------------- diagnostics evidence
def diagnostics_evidence(s: Series) -> dict:
    """Tables behind each verdict: forgetting cells, inflection series, audit checks."""
    diag = as_dict(s.model["diagnostics"])
    f, inf = as_dict(diag.get("forgetting")), as_dict(diag.get("inflection"))
    family = dig(f, "family")
    return {"forgetting": _forgetting_rows(f), "forgetting_test": str(f.get("test") or ""),
            "confidence": num(f.get("confidence")), "power": num(f.get("power")),
            "family": {"size": as_int(family.get("size")), "method": str(family.get("method") or ""),
                       "alpha": num(family.get("alpha")), "alpha_per_test": num(family.get("alpha_per_test"))}
            if family else None,
            "inflection": _inflection_rows(inf),
            "disagreements": [d for d in inf.get("disagreements") or [] if isinstance(d, dict)],
            "smoothing": dig(inf, "smoothing").get("window"), "audit": _audit_rows(as_dict(s.model["audit"]))}


def _forgetting_rows(f: dict) -> list[dict]:
    """One row per task/metric: its last graded epoch against epoch 0, with the test; forgotten first."""
    rows = []
    tasks = as_dict(f.get("tasks"))
    for task, metrics in tasks.items():
        for metric, row in as_dict(metrics).items():
            cells = forgetting_cells(tasks, task, metric) or {}
            if not cells or not isinstance(row, dict):
                continue
            last_epoch = max(cells)
            last = cells[last_epoch]
            ci = last.get("ci") if isinstance(last.get("ci"), list) and len(last["ci"]) == 2 else [None, None]
            rows.append({"key": f"{task}/{metric}", "base": num(row.get("base")), "epoch": last_epoch,
                         "score": num(last.get("score")), "delta": num(last.get("delta_vs_base")),
                         "best_so_far": num(last.get("best_so_far")), "best_so_far_epoch": last.get("best_so_far_epoch"),
                         "lo": num(ci[0]), "hi": num(ci[1]),
                         # the adjusted p decides the verdict; results without a family keep the raw one
                         "p": num(last["p_adjusted"]) if "p_adjusted" in last else num(last.get("p_value")),
                         "p_raw": num(last.get("p_value")), "adjusted": "p_adjusted" in last,
                         "threshold": num(row.get("threshold")), "forgotten": last.get("forgotten"),
                         "mde": num(last.get("mde")), "items_needed": as_int(last.get("items_needed")),
                         "n": as_int(row.get("n")), "status": forgetting_status(last),
                         "first_forgotten": min((e for e, c in cells.items() if c.get("forgotten")), default=None)})
    return sorted(rows, key=lambda r: (not r["forgotten"], r["status"] != "underpowered", r["key"]))


def forgetting_status(cell: dict) -> str:
    """forgotten | underpowered | pass | untested; results written before `status` say it with `forgotten`."""
    status = cell.get("status")
    if status in ("forgotten", "underpowered", "pass", "untested"):
        return str(status)
    return {True: "forgotten", False: "pass"}.get(cell.get("forgotten"), "untested")


def _inflection_rows(inf: dict) -> list[dict]:
    rows = []
    for key, sr in as_dict(inf.get("series")).items():
        if isinstance(sr, dict):
            dec = as_dict(sr.get("decline"))
            rows.append({"key": key, "best": sr.get("best_epoch"), "smoothed_best": sr.get("smoothed_best_epoch"),
                         "inflection": sr.get("inflection_epoch"), "status": str(sr.get("status") or ""),
                         "delta": num(dec.get("delta")), "p": num(dec.get("p_value"))})
    return rows


def _audit_rows(a: dict) -> list[dict]:
    rows = []
    for part in ("labels", "template", "data"):
        for c in as_dict(a.get(part)).get("checks") or []:
            if isinstance(c, dict):
                rows.append({"name": f"{part}.{c.get('name')}", "status": str(c.get("status") or ""),
                             "detail": str(c.get("detail") or ""), "rule": str(c.get("rule") or ""),
                             "examples": json.dumps(c.get("examples") or [], ensure_ascii=False)[:300]})
    return rows
