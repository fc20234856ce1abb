"""Sample-browser data: per-sample rows of every epoch, paired by id, bounded in size.

The rows are embedded in the page as JSON inside `<script type="application/json">`. That
is the one place where model output meets the page's markup, so `script_json` escapes
`<`, `>` and `&` as `\\u003c`-style escapes: JSON.parse reads them back unchanged, and no
byte sequence of the data can close the tag or open a comment. The page's script then
shows rows with `textContent` only.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Optional
from urllib.parse import quote

from harness.results import TaskRecord, read_jsonl
from reports.collect import Series, higher_is_better, num

MAX_SAMPLES = 1000     # per model, task (and epoch): the first N rows by id order
MAX_CHARS = 2000       # a longer source/reference/output is cut, and the page says so


def script_json(obj: Any) -> str:
    """JSON that is safe between <script type="application/json"> and </script>."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return (text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def sample_sets(series: list[Series], max_samples: int = MAX_SAMPLES, max_chars: int = MAX_CHARS) -> list[dict]:
    """One set per (series, task): ids, source, reference, output[epoch][i], scores[metric][epoch][i]."""
    sets = []
    for s in series:
        tasks: list[str] = []
        for e in s.epochs:
            tasks += [t for t in e["tasks"] if t not in tasks]
        for task in tasks:
            got = _task_set(s, task, max_samples, max_chars)
            if got:
                sets.append(got)
    return sets


def sample_link(sets: list[dict], label: str) -> Callable[[str, int, str, str], Optional[str]]:
    """(task, epoch, metric, id) -> '#sample=SET/EPOCH/METRIC/ID', the hash at which the page's
    script opens that item in the sample browser (epoch against epoch 0), or None when the item
    is not among the embedded rows (capped at max_samples): the link would open nothing."""
    index = {s["task"]: (k, set(s["ids"]), s["epochs"]) for k, s in enumerate(sets) if s["label"] == label}

    def link(task: str, epoch: int, metric: str, item: str) -> Optional[str]:
        k, ids, epochs = index.get(task, (None, set(), []))
        if k is None or item not in ids or epoch not in epochs:
            return None
        return f"#sample={k}/{epoch}/{quote(metric, safe='')}/{quote(item, safe='')}"

    return link


def _task_set(s: Series, task: str, max_samples: int, max_chars: int) -> Optional[dict]:
    per_epoch: list[tuple[int, str, dict[str, dict]]] = []
    for e in s.epochs:
        path = _samples_file(s, e["tasks"].get(task))
        if path is None:
            continue
        rows = read_jsonl(path)
        per_epoch.append((e["epoch"], str(path.relative_to(s.run.root.resolve())),
                          {str(r.get("id")): r for r in rows if isinstance(r, dict)}))
    if not per_epoch:
        return None
    first = per_epoch[0][2]
    n_total = len(first)
    ids = list(first)[:max_samples]
    cut = 0

    def text(v: Any) -> Optional[str]:
        nonlocal cut
        if v is None:
            return None
        v = str(v)
        if len(v) > max_chars:
            cut += 1
            return v[:max_chars] + f" … [truncated: {len(v):,} characters]"
        return v

    metrics: list[str] = []
    for _, _, rows in per_epoch:
        for r in rows.values():
            metrics += [m for m in (r.get("scores") or {}) if m not in metrics]
            break
    ref_rows = [next((rows[i] for _, _, rows in per_epoch if i in rows), {}) for i in ids]
    return {
        "label": s.label,
        "task": task,
        "epochs": [ep for ep, _, _ in per_epoch],
        "files": [f for _, f, _ in per_epoch],
        "metrics": [{"name": m, "higher": higher_is_better([s], task, m)} for m in metrics],
        "ids": ids,
        "source": [text(r.get("source")) for r in ref_rows],
        "reference": [text(r.get("reference")) for r in ref_rows],
        "output": [[text((rows.get(i) or {}).get("output")) for i in ids] for _, _, rows in per_epoch],
        "cut_by_length": [[int((rows.get(i) or {}).get("finish_reason") == "length") for i in ids]
                          for _, _, rows in per_epoch],
        "scores": {m: [[_round(((rows.get(i) or {}).get("scores") or {}).get(m)) for i in ids]
                       for _, _, rows in per_epoch] for m in metrics},
        "n_total": n_total,
        "n_shown": len(ids),
        "n_truncated": cut,
        "max_chars": max_chars,
    }


def _samples_file(s: Series, task_record: Optional[TaskRecord]) -> Optional[Path]:
    """The task's sample file, only if it lies inside the run directory."""
    rel = task_record["samples"] if task_record is not None else None
    if not isinstance(rel, str) or not rel:
        return None
    root = s.run.root.resolve()
    path = (root / rel).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        return None
    return path


def _round(v: Any) -> Optional[float]:
    x = num(v)
    return None if x is None else round(x, 2)
