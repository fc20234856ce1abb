"""A model's graded epochs: the score of one, the best of them, and which checkpoints to keep."""
from __future__ import annotations

import shutil
from typing import Optional

from harness.grade import LoadedTask
from harness.results import RunDir
from harness.suite import Suite


def score_of(epoch_record: dict, key: str) -> tuple[Optional[float], bool]:
    """'TASK/METRIC' or 'TASK/loss' → (value, higher_is_better) at one graded epoch."""
    task, metric = key.split("/", 1)
    rec = epoch_record["tasks"][task]
    if metric == "loss":
        return rec.get("loss"), False
    m = rec["metrics"][metric]
    return m.get("score"), m.get("higher_is_better", True)


def best_epoch(record: dict, metric_key: str) -> Optional[dict]:
    best = None
    for e in record["epochs"]:
        try:
            value, higher = score_of(e, metric_key)
        except KeyError:
            return None
        if value is None:
            continue
        if best is None or (value > best["score"] if higher else value < best["score"]):
            best = {"metric": metric_key, "epoch": e["epoch"], "score": value, "checkpoint": e.get("checkpoint")}
    return best


def default_best_metric(suite: Suite, tasks: list[LoadedTask]) -> str:
    if suite.train and suite.train.early_stopping:
        return suite.train.early_stopping.metric
    first = tasks[0]
    gen = [m for m in first.metrics if m.needs == "output"]
    return f"{first.spec.name}/{(gen or first.metrics)[0].name}"


def rotate_checkpoints(record: dict, keep: Optional[int], run: RunDir) -> list[int]:
    """Delete epoch checkpoints beyond the newest `keep`, never the best one; returns deleted epochs."""
    if not keep:
        return []
    saved = [e for e in record["epochs"] if e.get("checkpoint")]
    best_epoch_number = (record.get("best") or {}).get("epoch")
    deleted = []
    for e in saved[:-keep]:
        if e["epoch"] == best_epoch_number:
            continue
        shutil.rmtree(run.root / e["checkpoint"], ignore_errors=True)
        e["checkpoint"], e["checkpoint_deleted"] = None, True
        deleted.append(e["epoch"])
    return deleted
