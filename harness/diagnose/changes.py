"""What changed, item by item, between each graded epoch and epoch 0 (and the previous epoch).

A corpus score moving by 2 points can be 10 items a little worse or one item ruined; the
per-item scores stored in samples/ tell which. For every task, graded epoch and metric: how
many items improved, worsened or stayed, the exact McNemar test for 0/1 metrics, and the top
regressions on the task's first metric (largest per-item drops against epoch 0, with the
source, the reference and both outputs; the report links each to its sample).
"""
from __future__ import annotations

from typing import Optional

from harness.diagnose.evidence import ItemStats
from harness.results import ModelRecord, TaskRecord
from harness.stats.rates import binomial_upper_tail, is_rate
from harness.suite import Suite

TOP_REGRESSIONS = 5
_EPS = 1e-9


def item_changes(record: ModelRecord, items: ItemStats, suite: Suite) -> dict:
    epochs = record["epochs"]
    base = next((e for e in epochs if e["epoch"] == 0), None)
    section: dict = {"tasks": {}, "top": TOP_REGRESSIONS}
    if base is None or len(epochs) < 2:
        return section
    previous = base
    for e in epochs:
        if e["epoch"] == 0:
            continue
        for task, rec in e["tasks"].items():
            if task not in base["tasks"]:
                continue
            entry: dict = {"vs_base": _counts(task, rec, base["tasks"][task], items),
                           "regressions": _regressions(task, rec, base["tasks"][task], items)}
            if previous is not base and task in previous["tasks"]:
                entry["vs_previous"] = _counts(task, rec, previous["tasks"][task], items)
                entry["previous_epoch"] = previous["epoch"]
            section["tasks"].setdefault(task, {})[str(e["epoch"])] = entry
        previous = e
    return section


def _scores(rows: Optional[list[dict]], name: str) -> dict[str, float]:
    return {str(r["id"]): r["scores"][name] for r in rows or [] if name in (r.get("scores") or {})
            and isinstance(r["scores"][name], (int, float))}


def _counts(task: str, new: TaskRecord, old: TaskRecord, items: ItemStats) -> dict:
    out: dict = {}
    a_rows, b_rows = items.rows(new), items.rows(old)
    for name in new["metrics"]:
        a, b = _scores(a_rows, name), _scores(b_rows, name)
        ids = [i for i in b if i in a]
        if not ids:
            continue
        metric = items.metric(task, name)
        sign = 1 if metric.higher_is_better is not False else -1
        diffs = [sign * (a[i] - b[i]) for i in ids]
        improved = sum(d > _EPS for d in diffs)
        worsened = sum(d < -_EPS for d in diffs)
        cell = {"improved": improved, "worsened": worsened, "unchanged": len(ids) - improved - worsened}
        if is_rate(metric):
            cell["mcnemar_p"] = binomial_upper_tail(worsened, improved + worsened)   # one-sided: worse
        out[name] = cell
    return out


def _regressions(task: str, new: TaskRecord, old: TaskRecord, items: ItemStats) -> list[dict]:
    spec = next((t for t in items.suite.tasks if t.name == task), None)
    names = [m for m in (spec.metrics if spec else []) if m in new["metrics"]] or list(new["metrics"])
    a_rows, b_rows = items.rows(new) or [], items.rows(old) or []
    if not names or not a_rows or not b_rows:
        return []
    name = next((n for n in new["metrics"] if n == names[0] or n.startswith(names[0])), names[0])
    a, b = _scores(a_rows, name), _scores(b_rows, name)
    metric = items.metric(task, name)
    sign = 1 if metric.higher_is_better is not False else -1
    drops = sorted(((sign * (b[i] - a[i]), i) for i in b if i in a), reverse=True)
    by_id_new = {str(r["id"]): r for r in a_rows}
    by_id_old = {str(r["id"]): r for r in b_rows}
    out = []
    for drop, i in drops[:TOP_REGRESSIONS]:
        if drop <= _EPS:
            break
        n, o = by_id_new[i], by_id_old[i]
        out.append({"id": i, "metric": name, "drop": drop, "score": a[i], "base_score": b[i],
                    "source": n.get("source"), "reference": n.get("reference"),
                    "output": n.get("output"), "base_output": o.get("output")})
    return out
