"""What every diagnostic reads: a run's scores per epoch and its per-item statistics.

Everything comes from the run directory (results.json and samples/), so the diagnostics are the
same right after training, on an interrupted run, or recomputed later by `harness report`.
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np

from harness.grade import metric_options
from harness.metrics import metric_for
from harness.metrics.base import Metric
from harness.results import EpochRecord, ModelRecord, RunDir, TaskRecord, read_jsonl, sample_stats
from harness.stats.paired import compare_worse
from harness.suite import Suite

LOSS = "loss"


class TokenLoss(Metric):
    """Validation loss: mean NLL per assistant token (token-weighted), as in each task's `loss`."""

    name = LOSS
    higher_is_better = False
    needs = "likelihood"

    def score(self, stats: np.ndarray) -> float:
        tokens = stats[:, 1].sum()
        return float(stats[:, 0].sum() / tokens) if tokens > 0 else float("nan")

    def scores_from_totals(self, totals: np.ndarray, counts: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(totals[:, 1] > 0, totals[:, 0] / np.where(totals[:, 1] > 0, totals[:, 1], 1), np.nan)


class ItemStats:
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

    def rows(self, task_record: TaskRecord) -> Optional[list[dict]]:
        """The task's sample rows (read once per file), or None without a samples file."""
        rel = task_record["samples"]
        if not rel:
            return None
        if rel not in self._rows:
            path = self.run.root / rel
            self._rows[rel] = read_jsonl(path) if path.exists() else None
        return self._rows[rel]

    def stats(self, task_record: TaskRecord, name: str) -> Optional[dict[str, np.ndarray]]:
        """item id → statistics row, read once per sample file and metric."""
        rows = self.rows(task_record)
        rel = task_record["samples"]
        if rows is None:
            return None
        if (rel, name) not in self._stats:
            got = sample_stats(rows, name)
            self._stats[(rel, name)] = dict(zip(got[0], got[1])) if got else None
        return self._stats[(rel, name)]

    def clusters(self, task_record: TaskRecord, ids: list[str]) -> Optional[list[str]]:
        """Cluster label of each id (the sample rows' `cluster`), or None when items are independent."""
        rows = self.rows(task_record) or []
        labels = {str(r["id"]): r["cluster"] for r in rows if r.get("cluster") is not None}
        if not labels:
            return None
        return [str(labels.get(i, f"item:{i}")) for i in ids]

    def aligned(self, task: str, name: str, new: TaskRecord, old: TaskRecord
                ) -> Optional[tuple[list[str], np.ndarray, np.ndarray]]:
        """(ids, new stats, old stats) on the items both graded, or None (no stats, < 2 items)."""
        a, b = self.stats(new, name), self.stats(old, name)
        if a is None or b is None:
            return None
        ids = [i for i in b if i in a]
        if len(ids) < 2:
            return None
        return ids, np.array([a[i] for i in ids]), np.array([b[i] for i in ids])

    def paired(self, task: str, name: str, new: TaskRecord, old: TaskRecord, confidence: float
               ) -> Optional[dict]:
        """One-sided paired test 'new is worse than old' on the items both graded (stats/paired.py)."""
        got = self.aligned(task, name, new, old)
        if got is None:
            return None
        ids, a, b = got
        return compare_worse(self.metric(task, name), a, b, samples=self.suite.diagnostics.forgetting.samples,
                             seed=self.suite.bootstrap.seed, confidence=confidence,
                             clusters=self.clusters(old, ids))


def series_keys(record: ModelRecord) -> list[tuple[str, str, bool]]:
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


def value(epoch_record: EpochRecord, task: str, name: str) -> Optional[float]:
    rec = epoch_record["tasks"].get(task)
    if rec is None:
        return None
    if name == LOSS:
        v = rec["loss"]
    else:
        v = rec["metrics"][name]["score"] if name in rec["metrics"] else None
    return v if isinstance(v, (int, float)) and math.isfinite(v) else None


def fmt_p(p: Optional[float]) -> str:
    """p as text: 'p<0.001' below a thousandth (the usual floor of reporting), else 3 digits."""
    if p is None:
        return "p n/a"
    return "p<0.001" if p < 0.001 else f"p={p:.3g}"
