"""Drift: how far each graded epoch's next-token distribution has moved from the base model's.

Three signals, in nats per scored token, each tested at every graded epoch (definitions and
thresholds: docs/diagnostics.md, "Drift"):
  kl          KL(base ‖ epoch) on the probe set (top-k + tail: a lower bound of the exact KL)
  kl_prompts  the same on the suite's task prompts
  nll         NLL drift on the probe set: mean NLL per token at the epoch minus at epoch 0, per
              probe group (the built-in probe's languages), the worst group being the signal
Intervals and tests come from the paired bootstrap over items (harness/stats), the same
resamples for both sides. KL is never below 0, so its one-sided test asks whether it exceeds
the warn threshold; NLL drift's asks whether the epoch is worse than epoch 0, as forgetting's
tests do. Every p-value joins forgetting's Holm family (harness/diagnose/forgetting.py), so the
run's false-alarm budget is one, whatever is tested.
"""
from __future__ import annotations

from typing import Callable, Optional

import numpy as np

from harness.diagnose.evidence import TokenLoss, fmt_p
from harness.results import ModelRecord, RunDir, read_jsonl
from harness.stats.paired import compare_worse, normal_tail
from harness.stats.resampling import finite, percentile_interval, resample_plan, resample_scores, standard_error
from harness.suite import Suite

PROBE, PROMPTS = "probe", "prompts"
SIGNALS = {"kl": (PROBE, "kl"), "kl_prompts": (PROMPTS, "kl"), "nll": (PROBE, "nll")}
UNIT = "nats/token"


def _reader(run: RunDir) -> Callable[[str], Optional[list[dict]]]:
    """Each drift stats file's rows, read once however many signals and groups test it."""
    cache: dict[str, Optional[list[dict]]] = {}

    def rows(rel: str) -> Optional[list[dict]]:
        if rel not in cache:
            path = run.root / rel
            cache[rel] = read_jsonl(path) if path.is_file() else None
        return cache[rel]
    return rows


def _stats(file_rows: Optional[list[dict]], set_name: str, field: str) -> Optional[tuple[list[str], np.ndarray]]:
    """(item ids, [[sum, tokens]]) of one set's items in a drift stats file's rows, or None."""
    rows = [r for r in file_rows or [] if r["set"] == set_name or r["set"].startswith(set_name + ":")]
    if not rows:
        return None
    count = "nll_tokens" if field == "nll" else "tokens"   # NLL: the replies' tokens (every token of text)
    return [r["id"] for r in rows], np.array([[r[field], r.get(count, r["tokens"])] for r in rows], dtype=float)


def _aligned(new: tuple, old: tuple) -> tuple[np.ndarray, np.ndarray]:
    pos = {i: k for k, i in enumerate(old[0])}
    keep = [(k, pos[i]) for k, i in enumerate(new[0]) if i in pos]
    return new[1][[a for a, _ in keep]], old[1][[b for _, b in keep]]


def _kl_cell(stats: np.ndarray, warn: float, suite: Suite) -> dict:
    """KL per token with its bootstrap interval; p: one-sided, 'KL exceeds the warn threshold'."""
    spec, boot = suite.diagnostics.forgetting, suite.bootstrap
    metric = TokenLoss()
    value = metric.score(stats)
    cell = {"value": value, "ci": None, "se": None, "p_value": None, "n": len(stats)}
    if len(stats) >= 2 and spec.samples > 0:
        idx, weights = resample_plan(len(stats), spec.samples, boot.seed)
        values = finite(resample_scores(metric, stats, idx, weights))
        ci = percentile_interval(values, spec.confidence)
        cell.update(ci=list(ci) if ci else None, se=standard_error(values))
        cell["p_value"] = normal_tail(value - warn, cell["se"], spec.samples)
    return cell


def _nll_cell(new: np.ndarray, old: np.ndarray, suite: Suite) -> dict:
    """NLL per token at the epoch minus epoch 0, paired over items; p: one-sided, 'worse than epoch 0'."""
    spec, boot = suite.diagnostics.forgetting, suite.bootstrap
    test = compare_worse(TokenLoss(), new, old, samples=spec.samples, seed=boot.seed, confidence=spec.confidence)
    return {"value": test["delta"], "ci": test["ci"], "se": test["se"], "p_value": test["p_value"], "n": test["n"],
            "base": TokenLoss().score(old), "score": TokenLoss().score(new)}


def drift_tests(record: ModelRecord, run: RunDir, suite: Suite, base: Optional[dict] = None) -> Optional[dict]:
    """The drift section with every cell's raw p-value (Holm-adjusted later, with forgetting's family).

    Epochs after 0 are compared with the model's epoch 0; `base`, an epoch record of another
    model (`harness grade --drift-base`), makes this model's epoch 0 the compared one."""
    spec = suite.diagnostics.drift
    epochs = [e for e in record["epochs"] if e.get("drift")]
    old = base if base is not None else next((e for e in epochs if e["epoch"] == 0), None)
    compared = [e for e in epochs if (e["epoch"] > 0 if base is None else e["epoch"] == 0)]
    if old is None or not compared:
        return None
    sets, read = old["drift"]["sets"], _reader(run)
    section: dict = {"unit": UNIT, "base_model": compared[0]["drift"]["base_model"],
                     "top_k": compared[0]["drift"]["top_k"],
                     "probe": _probed(suite, sets), "signals": {}, "cost": _cost(epochs)}
    thresholds = {"kl": (spec.kl_warn, spec.kl_fail), "kl_prompts": (spec.kl_warn, spec.kl_fail),
                  "nll": (spec.nll_warn, spec.nll_fail)}
    for name, (set_name, field) in SIGNALS.items():
        if set_name not in sets:
            continue
        warn, fail = thresholds[name]
        row: dict = {"set": set_name, "warn": warn, "fail": fail, "epochs": {}}
        if field == "kl":
            for e in compared:
                got = _stats(read(e["drift"]["stats"]), set_name, field)
                if got is not None:
                    row["epochs"][str(e["epoch"])] = _kl_cell(got[1], warn, suite)
        else:
            row["groups"] = _nll_groups(read, old, compared, sorted(sets[set_name].get("groups") or {}), suite)
            for ep in sorted({ep for cells_ in row["groups"].values() for ep in cells_}, key=int):
                # the signal is its worst group: French getting better must not hide English getting worse
                group, cell = max(((g, c[ep]) for g, c in row["groups"].items() if ep in c),
                                  key=lambda gc: gc[1]["value"])
                cell["group"] = group
                row["epochs"][ep] = cell
        section["signals"][name] = row
    return section


def _nll_groups(read: Callable[[str], Optional[list[dict]]], old: dict, compared: list[dict], groups: list[str], suite: Suite) -> dict:
    """{group: {epoch: NLL drift cell}}: each probe group (or the whole probe) tested on its own."""
    out: dict = {}
    for g in groups or [None]:
        sel = PROBE if g is None else f"{PROBE}:{g}"
        before = _stats(read(old["drift"]["stats"]), sel, "nll")
        for e in compared:
            after = _stats(read(e["drift"]["stats"]), sel, "nll")
            if before is not None and after is not None:
                out.setdefault(g or PROBE, {})[str(e["epoch"])] = _nll_cell(*_aligned(after, before), suite)
    return out


def _row_cells(row: dict) -> list[dict]:
    if "groups" in row:
        return [c for cells_ in row["groups"].values() for c in cells_.values()]
    return list(row["epochs"].values())


def cells(section: Optional[dict]) -> list[dict]:
    """Every tested cell (each NLL group's too), in a fixed order: what joins forgetting's Holm family."""
    if not section:
        return []
    return [c for row in section["signals"].values() for c in _row_cells(row)]


def judge(section: Optional[dict], suite: Suite) -> None:
    """Status of every cell (p_adjusted set by the family) and the section's verdict."""
    if not section:
        return
    alpha = 1 - suite.diagnostics.forgetting.confidence
    for row in section["signals"].values():
        for cell in _row_cells(row):
            p = cell.get("p_adjusted")
            significant = p is not None and p < alpha and cell["value"] > row["warn"]
            cell["significant"] = significant
            cell["status"] = ("fail" if cell["value"] > row["fail"] else "warn") if significant else "pass"
    section["verdict"] = _verdict(section, suite)


def _describe(name: str, epoch: str, cell: dict, confidence: float) -> str:
    ci = f", {confidence:.0%} CI [{cell['ci'][0]:+.3f}, {cell['ci'][1]:+.3f}]" if cell["ci"] else ""
    sign = "+" if name == "nll" else ""
    group = f" ({cell['group']})" if cell.get("group") and cell["group"] != PROBE else ""
    return f"{name}{group} {cell['value']:{sign}.3f} at epoch {epoch}{ci}, {fmt_p(cell.get('p_adjusted'))}"


def _verdict(section: dict, suite: Suite) -> dict:
    confidence = suite.diagnostics.forgetting.confidence
    probed = section["probe"]["summary"]
    last: dict[str, tuple[str, dict]] = {}
    earlier = []
    for name, row in section["signals"].items():
        if not row["epochs"]:
            continue
        ep = max(row["epochs"], key=int)
        last[name] = (ep, row["epochs"][ep])
        earlier += [f"{name} at epoch {k}" for k, c in row["epochs"].items() if k != ep and c["significant"]]
    for status in ("fail", "warn"):
        hits = [_describe(n, ep, c, confidence) for n, (ep, c) in last.items() if c["status"] == status]
        if hits:
            what = "drifted beyond the fail threshold" if status == "fail" else "drifted beyond the warn threshold"
            return {"status": status, "summary": f"{what}: " + "; ".join(hits) + f" ({probed})"}
    if earlier:
        return {"status": "warn", "summary": "drifted at an earlier epoch, back within threshold by the last: "
                                             + ", ".join(earlier[:3]) + f" ({probed})"}
    values = ", ".join(f"{n} {c['value']:.3f}" for n, (_, c) in last.items())
    return {"status": "pass", "summary": f"no significant drift ({values} {UNIT}; {probed})"}


def _probed(suite: Suite, sets: dict) -> dict:
    """What was probed and what was not, said in the report and the verdict."""
    probe = suite.diagnostics.probe
    parts = []
    if PROBE in sets:
        parts.append(f"probe {probe.data.describe() if probe else 'set'} ({sets[PROBE]['items']} items)")
    if PROMPTS in sets:
        parts.append(f"task prompts ({sets[PROMPTS]['items']} items)")
    summary = "probed: " + ", ".join(parts) if parts else "nothing probed"
    if PROBE not in sets:
        summary += "; no probe set (diagnostics.probe): NLL drift not measured, general text not probed"
    return {"source": probe.data.describe() if probe else None, "sets": sets, "summary": summary}


def _cost(epochs: list[dict]) -> dict:
    """Probe seconds per graded epoch next to that epoch's grading seconds."""
    probe = sum(e["drift"]["seconds"] for e in epochs)
    graded = sum(sum((t.get("seconds") or 0) for t in e["tasks"].values()) for e in epochs)
    return {"probe_seconds": round(probe, 3), "grading_seconds": round(graded, 3),
            "share": round(probe / graded, 4) if graded else None}
