"""Catastrophic forgetting: every task × metric × graded epoch against epoch 0 (the base model).

A cell is *forgotten* when its drop below epoch 0 exceeds the threshold (metric units) AND the
one-sided paired test rejects "no drop" after Holm's adjustment over the whole family of the
run's cells (harness/stats/family.py), so that a run where nothing changed is flagged with
probability at most 1 - confidence, not once per test.

Each cell also states what the test set can see (harness/stats/power.py): the minimum
detectable effect (MDE) at the family's per-test level alpha / m and the suite's power, before
training (unpaired, from epoch 0 alone) and at each graded epoch (paired, measured). A cell whose
MDE is above the threshold, and whose interval does not rule out a drop of the threshold either
(an improvement can), is *underpowered*: a drop of the threshold could pass unseen, and the
verdict says so with the item count that would fix it, never a bare pass.
"""
from __future__ import annotations

from typing import Optional, Sequence

from harness.diagnose.evidence import LOSS, ItemStats, fmt_p, series_keys, value
from harness.results import ModelRecord
from harness.stats.family import holm
from harness.stats.power import items_needed, mde_from_se, paired_discordance, rate_items_needed, rate_mde
from harness.stats.rates import is_rate
from harness.suite import ForgettingSpec, Suite

FAMILY_METHOD = "holm"


def forgetting(record: ModelRecord, items: ItemStats, suite: Suite, also: Sequence[dict] = ()) -> dict:
    """`also`: other tests of the run (drift's cells, each with `p_value`) that join the Holm
    family; each gets its `p_adjusted` here."""
    spec = suite.diagnostics.forgetting
    alpha = 1 - spec.confidence
    epochs = record["epochs"]
    section: dict = {"threshold": spec.threshold, "thresholds": dict(spec.thresholds),
                     "confidence": spec.confidence, "power": spec.power, "samples": spec.samples,
                     "test": "one-sided paired test vs epoch 0 over the same test items (bootstrap; "
                             "exact McNemar for rates), Holm-adjusted over the run's family",
                     "tasks": {}, "flagged": [], "flagged_at_best": [], "underpowered": []}
    base = next((e for e in epochs if e["epoch"] == 0), None)
    graded = [e for e in epochs if e["epoch"] > 0]
    if base is None or not graded:
        for cell, adjusted in zip(also, holm([c["p_value"] for c in also])):
            cell["p_adjusted"] = adjusted
        section["verdict"] = {"status": "skipped", "summary": "needs epoch 0 and at least one trained epoch"}
        return section
    keys = [k for k in series_keys(record) if value(base, k[0], k[1]) is not None]
    family = sum(1 for task, name, _ in keys for e in graded if value(e, task, name) is not None) \
        + sum(1 for c in also if c["p_value"] is not None)
    section["family"] = {"size": family, "method": FAMILY_METHOD, "alpha": round(alpha, 12),
                         "alpha_per_test": round(alpha / max(family, 1), 12)}
    for task, name, higher in keys:
        row = _row(task, name, higher, base, graded, items, spec, alpha / max(family, 1))
        if row is not None:
            section["tasks"].setdefault(task, {})[name] = row
    cells = [c for ms in section["tasks"].values() for r in ms.values() for c in r["epochs"].values()]
    cells += list(also)
    for cell, adjusted in zip(cells, holm([c["p_value"] for c in cells])):
        cell["p_adjusted"] = adjusted
    for ms in section["tasks"].values():
        for row in ms.values():
            for cell in row["epochs"].values():
                _judge(cell, row["threshold"], alpha, row["higher_is_better"])
    section["verdict"] = _verdict(section, record, graded[-1]["epoch"], spec)
    return section


def _row(task: str, name: str, higher: bool, base: dict, graded: list[dict], items: ItemStats,
         spec: ForgettingSpec, alpha_test: float) -> Optional[dict]:
    """One task × metric across graded epochs: change vs epoch 0 and vs the best so far, tested."""
    base_score = value(base, task, name)
    threshold = spec.thresholds.get(name, spec.threshold)
    row: dict = {"higher_is_better": higher, "threshold": threshold, "base": base_score, "epochs": {},
                 "n": len(items.stats(base["tasks"][task], name) or {})}
    best_so_far, best_so_far_epoch = base_score, 0
    for e in graded:
        score = value(e, task, name)
        if score is None:
            continue
        if (score > best_so_far) if higher else (score < best_so_far):
            best_so_far, best_so_far_epoch = score, e["epoch"]
        cell = {"score": score, "best_so_far": best_so_far, "best_so_far_epoch": best_so_far_epoch,
                "delta_vs_base": score - base_score,
                "drop": (base_score - score) if higher else (score - base_score),   # > 0 is worse
                "drop_from_best": (best_so_far - score) if higher else (score - best_so_far),
                "ci": None, "p_value": None, "test": None, "mde": None, "items_needed": None}
        test = items.paired(task, name, e["tasks"][task], base["tasks"][task], spec.confidence)
        if test is not None and test["p_value"] is not None:
            cell.update(ci=test["ci"], p_value=test["p_value"], test=test["test"], se=test["se"], n=test["n"])
            mde, needed = _paired_power(items.metric(task, name), test, spec, alpha_test, threshold)
            cell.update(mde=mde, items_needed=needed)
        row["epochs"][str(e["epoch"])] = cell
    return row if row["epochs"] else None


def _paired_power(metric, test: dict, spec: ForgettingSpec, alpha_test: float, threshold: float
                  ) -> tuple[Optional[float], Optional[int]]:
    n = test["n"]
    if "worse" in test:   # exact McNemar: what matters is how many items change at all
        scale = getattr(metric, "scale", 1.0)
        d = paired_discordance(test["worse"] + test["better"], n)
        return (rate_mde(n, d, alpha_test, spec.power, scale),
                rate_items_needed(n, d, alpha_test, spec.power, scale, threshold))
    mde = mde_from_se(test["se"], alpha_test, spec.power)
    return mde, items_needed(n, mde, threshold)


def _judge(cell: dict, threshold: float, alpha: float, higher: bool) -> None:
    """status: forgotten | pass (a drop of the threshold is ruled out, or the test could see one and
    did not) | underpowered (neither: a drop of the threshold could pass unseen) | untested."""
    p = cell["p_adjusted"]
    if p is None:
        cell["forgotten"], cell["status"] = None, "untested"
        return
    ci = cell["ci"]
    # the drop's upper confidence bound: an improvement whose interval rules out a drop of the
    # threshold has nothing left to see, however small the test set
    cell["drop_bound"] = None if not ci else (-ci[0] if higher else ci[1])
    if cell["drop"] > threshold and p < alpha:
        cell["forgotten"], cell["status"] = True, "forgotten"
        return
    cell["forgotten"] = False
    ruled_out = cell["drop_bound"] is not None and cell["drop_bound"] <= threshold
    could_see = cell["mde"] is not None and cell["mde"] <= threshold
    cell["status"] = "pass" if ruled_out or could_see else "underpowered"


def _verdict(section: dict, record: ModelRecord, last_epoch: int, spec: ForgettingSpec) -> dict:
    best_epoch = record["best"]["epoch"] if record["best"] else None
    worst: list[tuple[bool, float, str]] = []
    for task, ms in section["tasks"].items():
        for name, row in ms.items():
            key = f"{task}/{name}"
            last = row["epochs"].get(str(last_epoch))
            if last and last["forgotten"]:
                section["flagged"].append(key)
                desc = f"{key} {row['base']:.2f}→{last['score']:.2f}"
                if last["ci"]:
                    desc += (f" (Δ {last['delta_vs_base']:+.2f}, {spec.confidence:.0%} CI "
                             f"[{last['ci'][0]:+.2f}, {last['ci'][1]:+.2f}], {fmt_p(last['p_adjusted'])})")
                # generation metrics lead the summary; likelihood ones (perplexity, loss) follow
                worst.append((name in ("perplexity", LOSS), -abs(last["delta_vs_base"]) / max(abs(row["base"]), 1e-9),
                              desc))
            elif last and last["status"] == "underpowered":
                section["underpowered"].append(key)
            at_best = row["epochs"].get(str(best_epoch)) if best_epoch else None
            if at_best and at_best["forgotten"]:
                section["flagged_at_best"].append(key)
    blind = _blind_spots(section, last_epoch)
    if section["flagged"]:
        worst.sort()
        more = f" (+{len(worst) - 3} more)" if len(worst) > 3 else ""
        summary = f"forgotten by epoch {last_epoch}: " + "; ".join(w[-1] for w in worst[:3]) + more
        return {"status": "fail", "summary": summary + (f"; {blind}" if blind else "")}
    untested = [f"{t}/{m}" for t, ms in section["tasks"].items() for m, r in ms.items()
                if any(c["status"] == "untested" and c["drop"] > r["threshold"] for c in r["epochs"].values())]
    if untested:
        return {"status": "warn", "summary": "drop beyond threshold without per-item statistics to test it: "
                                             f"{', '.join(untested[:3])}"}
    recovered = sorted({f"{t}/{m}" for t, ms in section["tasks"].items() for m, r in ms.items()
                        if any(c["forgotten"] for c in r["epochs"].values())})
    if recovered:
        return {"status": "warn", "summary": "forgotten at an earlier epoch, recovered by the last: "
                                             f"{', '.join(recovered[:3])}" + (f"; {blind}" if blind else "")}
    if blind:
        return {"status": "warn", "summary": f"nothing seen forgotten, but {blind}"}
    return {"status": "pass", "summary": f"no task fell more than its threshold below epoch 0 "
                                         f"({len(section['tasks'])} tasks checked, each able to see its threshold)"}


def _blind_spots(section: dict, last_epoch: int) -> str:
    """'underpowered: KEY sees drops ≥ MDE (threshold T; N items needed)', for the rows the last epoch could not judge."""
    parts = []
    for key in section["underpowered"]:
        task, name = key.split("/", 1)
        row = section["tasks"][task][name]
        cell = row["epochs"][str(last_epoch)]
        need = f"; {cell['items_needed']:,} items needed" if cell["items_needed"] else ""
        parts.append(f"{key} ({cell['n']} items) sees drops ≥ {cell['mde']:.2f} "
                     f"(threshold {row['threshold']:g}{need})")
    if not parts:
        return ""
    more = f" (+{len(parts) - 2} more)" if len(parts) > 2 else ""
    return "underpowered: " + "; ".join(parts[:2]) + more
