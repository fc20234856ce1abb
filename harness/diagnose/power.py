"""What each task's test set can see, stated once its first grading is done.

The MDE of every task × metric from one grading alone (no pairing known yet: the bound for two
independent gradings), at the per-test level of the family the run will test: tasks × metrics
× planned epochs for `train-and-grade` (Holm's first step, alpha / m), tasks × metrics for a
grade-only run (one comparison each, e.g. against a gate's baseline). Forgetting rows restate it
with the family actually tested, and each graded epoch with the paired SE it measured.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from harness.diagnose.evidence import LOSS, ItemStats, series_keys, value
from harness.results import ModelRecord
from harness.stats.intervals import score_interval
from harness.stats.power import items_needed, mde_from_se, rate_items_needed, rate_mde, unpaired_discordance
from harness.stats.rates import is_rate
from harness.suite import ForgettingSpec, Suite


def power_section(record: ModelRecord, items: ItemStats, suite: Suite) -> dict:
    spec = suite.diagnostics.forgetting
    first = record["epochs"][0] if record["epochs"] else None
    section: dict = {"confidence": spec.confidence, "power": spec.power, "tasks": {}}
    if first is None:
        return section
    keys = [k for k in series_keys({**record, "epochs": [first]}) if value(first, k[0], k[1]) is not None]
    epochs = suite.train.epochs if suite.train is not None and first["epoch"] == 0 else 1
    family = len(keys) * max(epochs, 1)
    alpha_test = (1 - spec.confidence) / max(family, 1)
    section.update(family_size=family, alpha_per_test=round(alpha_test, 12), epoch=first["epoch"],
                   pairing="unpaired (before any paired grading)")
    for task, name, _ in keys:
        threshold = spec.thresholds.get(name, spec.threshold)
        got = unpaired_power(task, name, first, items, spec, alpha_test, threshold)
        section["tasks"].setdefault(task, {})[name] = {"threshold": threshold, **got}
    return section


def power_lines(section: dict) -> list[str]:
    """One line per task: what its test set can see, and what it would take to see each threshold."""
    lines = []
    for task, ms in section.get("tasks", {}).items():
        parts = []
        n = None
        for name, r in ms.items():
            if r["mde_unpaired"] is None or name == LOSS:
                continue
            n = r["n"]
            need = "" if r["mde_unpaired"] <= r["threshold"] else \
                f" (threshold {r['threshold']:g}: {r['items_needed_unpaired']:,} items)"
            parts.append(f"{name} ≥ {r['mde_unpaired']:.2f}{need}")
        if parts:
            lines.append(f"power: {task} ({n} items) can see drops of " + ", ".join(parts) +
                         f" [{section['power']:.0%} power, family of {section['family_size']}]")
    return lines


def unpaired_power(task: str, name: str, base: dict, items: ItemStats, spec: ForgettingSpec,
                    alpha_test: float, threshold: float) -> dict:
    """MDE before any trained epoch: two independent gradings of epoch 0's quality."""
    st = items.stats(base["tasks"][task], name)
    if not st or len(st) < 2:
        return {"n": len(st or {}), "mde_unpaired": None, "items_needed_unpaired": None}
    ids = list(st)
    stats = np.array([st[i] for i in ids])
    metric = items.metric(task, name)
    n = len(ids)
    clusters = items.clusters(base["tasks"][task], ids)
    if is_rate(metric) and clusters is None:   # exact McNemar; clustered rates use the cluster bootstrap
        scale = getattr(metric, "scale", 1.0)
        d = unpaired_discordance(float(stats[:, 0].sum()), n)
        mde = rate_mde(n, d, alpha_test, spec.power, scale)
        needed = rate_items_needed(n, d, alpha_test, spec.power, scale, threshold)
    else:
        interval = score_interval(metric, stats, spec.samples, items.suite.bootstrap.seed, clusters=clusters)
        se = interval["se"]
        mde = mde_from_se(None if se is None else se * 2 ** 0.5, alpha_test, spec.power)
        needed = items_needed(n, mde, threshold)
    return {"n": n, "mde_unpaired": mde, "items_needed_unpaired": needed}


