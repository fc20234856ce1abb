"""What the report shows, read from run directories into plain data (no HTML, no charts).

A report is about *series*: one model of one run. A run directory may hold several models
(base vs instruct), and `harness report A B` compares several runs, so a single-run report
and a comparison page are the same thing with one or more series.

The model, epoch, task and metric records are typed (`harness.results`): `load_results`
passes every record through its constructor, so each key is there and is read directly.
The diagnostic sections inside a model record are optional (grade-only runs have no
`train`, `audit` or `memory`; other sections may be written by newer code): their readers
here return None for "not run" and never raise on a missing or malformed key.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from harness.results import EpochRecord, MetricRecord, ModelRecord, RunDir, load_results

NOT_RUN = {"status": "none", "summary": "not run"}


@dataclass
class Series:
    """One model of one run, as the report shows it."""

    label: str        # legend / column name: model name, or run name (+ model) when comparing
    run: RunDir
    results: dict
    model: ModelRecord

    @property
    def epochs(self) -> list[EpochRecord]:
        return self.model["epochs"]


def load_series(run_dirs: list[Path]) -> list[Series]:
    runs = [load_results(p) for p in run_dirs]
    run_names = _unique([r.root.resolve().name for _, r in runs],
                        [str(r.root.resolve()) for _, r in runs])
    series = []
    for (results, run), run_name in zip(runs, run_names):
        models = results["models"]
        for model in models:
            name = model["name"]
            if len(runs) == 1:
                label = name
            else:
                label = run_name if len(models) == 1 else f"{run_name} / {name}"
            series.append(Series(label, run, results, model))
    labels = _unique([s.label for s in series], [s.label for s in series])
    for s, label in zip(series, labels):
        s.label = label
    return series


def _unique(names: list[str], longer: list[str]) -> list[str]:
    """Names made distinct: fall back to the longer form, then number the rest."""
    out = [n if names.count(n) == 1 else lg for n, lg in zip(names, longer)]
    seen: dict[str, int] = {}
    for i, n in enumerate(out):
        if out.count(n) > 1:
            seen[n] = seen.get(n, 0) + 1
            out[i] = f"{n} ({seen[n]})"
    return out


# --------------------------------------------------------------------------- numbers
def num(x: Any) -> Optional[float]:
    """A finite float, or None (results store NaN as null; be strict about types too)."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    return float(x) if math.isfinite(x) else None


def as_int(x: Any) -> Optional[int]:
    """An integer, or None; epoch keys of JSON objects are strings ("3")."""
    if isinstance(x, str):
        return int(x) if x.strip().lstrip("-").isdigit() else None
    v = num(x)
    return None if v is None else int(v)


def as_dict(x: Any) -> dict:
    return x if isinstance(x, dict) else {}


def dig(x: Any, *keys: str) -> dict:
    """The dict at x[k1][k2]...; {} where a level is missing or not a dict (an optional section)."""
    for key in keys:
        x = as_dict(x).get(key)
    return as_dict(x)


def graded_metric(epoch: EpochRecord, task: str, metric: str) -> Optional[MetricRecord]:
    """The metric's record at one epoch when it was scored there, else None."""
    rec = epoch["tasks"][task]["metrics"].get(metric) if task in epoch["tasks"] else None
    return rec if rec is not None and num(rec["score"]) is not None else None


def score_at(epoch: EpochRecord, task: str, metric: str) -> Optional[float]:
    rec = graded_metric(epoch, task, metric)
    return None if rec is None else num(rec["score"])


def metric_keys(series: list[Series]) -> list[tuple[str, str]]:
    """(task, metric) pairs with at least one score, in first-seen order."""
    keys: list[tuple[str, str]] = []
    for s in series:
        for e in s.epochs:
            for task, rec in e["tasks"].items():
                for metric in rec["metrics"]:
                    if score_at(e, task, metric) is not None and (task, metric) not in keys:
                        keys.append((task, metric))
    return keys


def higher_is_better(series: list[Series], task: str, metric: str) -> bool:
    for s in series:
        for e in s.epochs:
            rec = graded_metric(e, task, metric)
            if rec is not None and rec["higher_is_better"] is not None:
                return rec["higher_is_better"]
    return metric not in ("perplexity", "ter", "loss")


@dataclass
class Curve:
    """One metric of one task of one series, against epoch."""

    label: str
    epochs: list[int]
    scores: list[Optional[float]]
    lo: list[Optional[float]]
    hi: list[Optional[float]]
    best_epoch: Optional[int]
    inflection_epoch: Optional[int]


def metric_curve(s: Series, task: str, metric: str, higher: bool) -> Optional[Curve]:
    epochs, scores, lo, hi = [], [], [], []
    for e in s.epochs:
        if metric not in (e["tasks"][task]["metrics"] if task in e["tasks"] else {}):
            continue
        rec = e["tasks"][task]["metrics"][metric]
        ci = rec.get("ci") or [None, None]     # a skipped metric has no interval
        epochs.append(e["epoch"])
        scores.append(num(rec["score"]))
        lo.append(num(ci[0]))
        hi.append(num(ci[1]))
    if not any(v is not None for v in scores):
        return None
    best, inflection = best_and_inflection(s, task, metric, epochs, scores, higher)
    return Curve(s.label, epochs, scores, lo, hi, best, inflection)


def best_and_inflection(s: Series, task: str, metric: str, epochs: list[int],
                        scores: list[Optional[float]], higher: bool) -> tuple[Optional[int], Optional[int]]:
    """From diagnostics.inflection when present; otherwise the best epoch from the scores."""
    diag = dig(s.model["diagnostics"], "inflection", "series", f"{task}/{metric}")
    best = diag.get("best_epoch") if isinstance(diag.get("best_epoch"), int) else None
    inflection = diag.get("inflection_epoch") if isinstance(diag.get("inflection_epoch"), int) else None
    if best is None:
        pairs = [(v, e) for e, v in zip(epochs, scores) if v is not None]
        if pairs:
            best = (max if higher else min)(pairs, key=lambda p: p[0])[1]
    return best, inflection


# --------------------------------------------------------------------------- losses
@dataclass
class LossCurves:
    label: str
    train_steps: list[float]
    train_loss: list[float]
    val: dict[str, tuple[list[float], list[float]]]   # task -> (steps, losses)
    steps_per_epoch: Optional[float]


def loss_curves(s: Series) -> LossCurves:
    train = s.model["train"] or {}
    steps, losses = [], []
    for row in train.get("log") or []:
        if isinstance(row, dict) and num(row.get("loss")) is not None and num(row.get("step")) is not None:
            steps.append(float(row["step"]))
            losses.append(float(row["loss"]))
    val: dict[str, tuple[list[float], list[float]]] = {}
    for e in s.epochs:
        step = num(e["step"])
        for task, rec in e["tasks"].items():
            loss = num(rec["loss"])
            if step is not None and loss is not None:
                val.setdefault(task, ([], []))
                val[task][0].append(step)
                val[task][1].append(loss)
    return LossCurves(s.label, steps, losses, val, num(train.get("steps_per_epoch")))


# --------------------------------------------------------------------------- forgetting
@dataclass
class ForgettingMatrix:
    rows: list[str]                          # "task/metric"
    epochs: list[int]
    delta: list[list[Optional[float]]]       # rows x epochs, change vs epoch 0 (metric's own units)
    gain: list[list[Optional[float]]]        # the same, signed so that > 0 is better
    forgotten: list[list[bool]]
    computed: list[bool]                     # row not in the forgetting diagnostics: from the scores
    source: str                              # "diagnostics" | "scores"


def forgetting_matrix(s: Series) -> Optional[ForgettingMatrix]:
    section = dig(s.model["diagnostics"], "forgetting")
    tasks = section.get("tasks") if isinstance(section.get("tasks"), dict) else None
    keys = [(t, m) for t, m in metric_keys([s])]
    graded = sorted({e["epoch"] for e in s.epochs if e["epoch"] > 0})
    if not graded:
        return None
    rows, delta, gain, forgotten, computed = [], [], [], [], []
    for task, metric in keys:
        higher = higher_is_better([s], task, metric)
        cells = forgetting_cells(tasks, task, metric) if tasks is not None else None
        from_scores = cells is None
        if cells is None:
            base = _score_at(s, task, metric, 0)
            cells = {}
            for ep in graded:
                v = _score_at(s, task, metric, ep)
                cells[ep] = {"delta_vs_base": None if v is None or base is None else v - base}
        row_d = [num((cells.get(ep) or {}).get("delta_vs_base")) for ep in graded]
        if not any(d is not None for d in row_d):
            continue
        rows.append(f"{task}/{metric}")
        delta.append(row_d)
        gain.append([None if d is None else (d if higher else -d) for d in row_d])
        forgotten.append([bool((cells.get(ep) or {}).get("forgotten")) for ep in graded])
        computed.append(from_scores and tasks is not None)
    if not rows:
        return None
    return ForgettingMatrix(rows, graded, delta, gain, forgotten, computed,
                            "diagnostics" if tasks is not None else "scores")


def forgetting_cells(tasks: dict, task: str, metric: str) -> Optional[dict[int, dict]]:
    """diagnostics.forgetting.tasks[task][metric].epochs as {epoch: cell}; list or dict form."""
    rec = ((tasks.get(task) or {}).get(metric)) if isinstance(tasks.get(task), dict) else None
    epochs = (rec or {}).get("epochs") if isinstance(rec, dict) else None
    if isinstance(epochs, dict):
        out = {}
        for k, v in epochs.items():
            try:
                out[int(k)] = v if isinstance(v, dict) else {}
            except ValueError:
                continue
        return out
    if isinstance(epochs, list):
        return {int(c.get("epoch", i)): c for i, c in enumerate(epochs) if isinstance(c, dict)}
    return None


def _score_at(s: Series, task: str, metric: str, epoch: int) -> Optional[float]:
    for e in s.epochs:
        if e["epoch"] == epoch:
            return score_at(e, task, metric)
    return None


# --------------------------------------------------------------------------- memory
@dataclass
class MemoryBreakdown:
    estimate: dict[str, float]          # term -> bytes
    measured: dict[str, float]
    folk_rule: Optional[float]
    folk_rule_computed: bool
    budget: Optional[float]


def memory_breakdown(s: Series) -> Optional[MemoryBreakdown]:
    mem = s.model["memory"]
    if mem is None:
        return None
    estimate = _bytes_dict(mem.get("estimate"))
    measured = _bytes_dict(mem.get("measured"))
    folk = num(mem.get("folk_rule_bytes"))
    computed = False
    total = num(s.model["parameters"]["total"]) if s.model["parameters"] else None
    if folk is None and total is not None:
        folk, computed = 17.5 * total, True
    if not estimate and not measured and folk is None:
        return None
    return MemoryBreakdown(estimate, measured, folk, computed, num(mem.get("budget_bytes")))


@dataclass
class GradingMemory:
    """One graded epoch: the grading batch and the grading phase's peak per term, measured vs estimated."""

    epoch: Any
    batch: Optional[int]
    auto: bool
    device: str
    measured: dict[str, Optional[float]]     # generation / scoring -> bytes
    estimate: dict[str, Optional[float]]


def grading_memory(s: Series) -> list[GradingMemory]:
    """epochs[i].grading_memory of a run (absent in runs made before it was recorded)."""
    out = []
    for e in s.epochs:
        g = e.get("grading_memory")
        if not isinstance(g, dict):
            continue
        measured, estimate = g.get("measured") or {}, g.get("estimate") or {}
        out.append(GradingMemory(e["epoch"], g.get("batch_size"), bool(g.get("batch_size_auto")),
                                 str(g.get("device") or "?"),
                                 {k: num(measured.get(k)) for k in ("generation", "scoring")},
                                 {k: num(estimate.get(k)) for k in ("generation", "scoring")}))
    return out


def _bytes_dict(d: Any) -> dict[str, float]:
    if not isinstance(d, dict):
        return {}
    return {str(k): float(v) for k, v in d.items() if num(v) is not None and v >= 0}


# --------------------------------------------------------------------------- header
def verdict(section: Any) -> dict:
    v = section.get("verdict") if isinstance(section, dict) else None
    if not isinstance(v, dict):
        return dict(NOT_RUN)
    status = str(v.get("status") or "none")
    return {"status": status if status in ("pass", "warn", "fail", "skipped") else "none",
            "summary": str(v.get("summary") or status)}


def verdicts(s: Series) -> list[dict]:
    diag = s.model["diagnostics"] or {}
    out = [
        {"name": "forgetting", **verdict(diag.get("forgetting"))},
        {"name": "inflection", **verdict(diag.get("inflection"))},
        {"name": "audits", **verdict(s.model["audit"])},
        {"name": "gates", **verdict(s.results.get("gates"))},
        {"name": "memory fit", **verdict(s.model["memory"])},
    ]
    if isinstance(diag.get("checkpoint"), dict):   # the checkpoint to keep sits beside the verdicts it weighs
        out.insert(2, {"name": "checkpoint", **verdict(diag["checkpoint"])})
    for name, section in diag.items():
        shown = name in ("forgetting", "inflection", "checkpoint")
        if not shown and isinstance(section, dict) and "verdict" in section:
            out.append({"name": str(name), **verdict(section)})
    provenance = predictions_provenance(s)
    if provenance:
        out.append({"name": "predictions", "status": "warn", "summary": provenance})
    return out


def checkpoint_to_keep(s: Series) -> Optional[dict]:
    """diagnostics.checkpoint for the summary card and its evidence block; None when not run."""
    c = dig(s.model["diagnostics"], "checkpoint")
    if not c:
        return None
    comparisons = []
    for ep, row in sorted(as_dict(c.get("comparisons")).items(), key=lambda kv: as_int(kv[0]) or 0):
        if isinstance(row, dict) and as_int(ep) is not None:
            comparisons.append({"epoch": as_int(ep), "delta": num(row.get("delta_vs_best")),
                                "p": num(row.get("p_adjusted")), "p_raw": num(row.get("p_value")),
                                "test": str(row.get("test") or "")})
    tie = [e for e in (c.get("tie_set") or []) if as_int(e) is not None]
    return {"metric": str(c.get("metric") or ""), "best_epoch": as_int(c.get("best_epoch")),
            "tie_set": tie, "recommended": as_int(c.get("recommended")), "stability": num(c.get("stability")),
            "forgotten_epochs": [e for e in (c.get("forgotten_epochs") or []) if as_int(e) is not None],
            "comparisons": comparisons, **verdict(c)}


def predictions_provenance(s: Series) -> str:
    """What a predictions file changed about the test set ('' when nothing): references it
    brought itself, items it left out (graded with --allow-partial). See docs/results.md."""
    notes = []
    for e in s.epochs:
        for task, rec in e["tasks"].items():
            overridden = rec.get("references_overridden") or 0
            if overridden:
                notes.append(f"{task}: {overridden} of {rec['n']} references from the predictions file")
            cov = rec.get("coverage") if isinstance(rec.get("coverage"), dict) else {}
            if cov and num(cov.get("graded")) is not None and cov.get("graded", 0) < cov.get("total", 0):
                notes.append(f"{task}: predictions for {cov['graded']} of {cov['total']} items only")
    return "; ".join(notes)


def describe_source(src: Any, limit: int = 140) -> str:
    """A data source as one short line: `synthetic kind=translation direction=en-fr n=1200`."""
    def flat(v: Any) -> str:
        if isinstance(v, dict):
            return " ".join(f"{k}={flat(x)}" if not isinstance(x, dict) else f"{k}({flat(x)})"
                            for k, x in v.items() if x is not None)
        if isinstance(v, list):
            return ",".join(flat(x) for x in v)
        return str(v)

    text = flat(src)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def header(s: Series) -> dict:
    """The facts of the summary header for one series."""
    suite = s.results.get("suite") or {}
    train_cfg = suite.get("train") or {}
    params = s.model["parameters"] or {}
    graded = [e["epoch"] for e in s.epochs]
    data = [describe_source(d) for d in (train_cfg.get("data") or [])] if isinstance(train_cfg, dict) else []
    tasks = [f"{name} (n={rec['n']})" for name, rec in s.epochs[-1]["tasks"].items()] if s.epochs else []
    return {
        "label": s.label,
        "name": s.model["name"],
        "path": s.model["path"],
        "adapter": s.model["adapter"],
        "method": s.model["method"],
        "run": str(s.run.root),
        "status": str(s.results.get("status") or "?"),
        "suite_name": str(s.results.get("suite_name") or suite.get("name") or ""),
        "params_total": num(params.get("total")),
        "params_trainable": num(params.get("trainable")),
        "trainable_share": num(params.get("trainable_share")),
        "data": data,
        "tasks": tasks,
        "epochs_graded": max(graded) if graded else None,
        "epochs_planned": train_cfg.get("epochs") if isinstance(train_cfg, dict) else None,
        "early_stopped": s.model["early_stopped"],
        "best": s.model["best"],
        "keep": checkpoint_to_keep(s),
        "verdicts": verdicts(s),
    }


# --------------------------------------------------------------------------- tables
def score_table(series: list[Series]) -> list[dict]:
    """Rows task/metric; per series: base (epoch 0), final and best score with their epochs."""
    rows = []
    for task, metric in metric_keys(series):
        higher = higher_is_better(series, task, metric)
        cells = []
        for s in series:
            pts = [(e["epoch"], score_at(e, task, metric)) for e in s.epochs]
            pts = [(e, v) for e, v in pts if v is not None]
            if not pts:
                cells.append(None)
                continue
            best = (max if higher else min)(pts, key=lambda p: p[1])
            final = graded_metric(next(e for e in s.epochs if e["epoch"] == pts[-1][0]), task, metric)
            cells.append({"base": pts[0][1] if pts[0][0] == 0 else None, "final": pts[-1][1],
                          "final_epoch": pts[-1][0], "best": best[1], "best_epoch": best[0],
                          "final_ci": interval_text(final)})
        finals = [c["final"] for c in cells if c]
        top = (max if higher else min)(finals) if len(finals) > 1 else None
        for c in cells:
            if c:
                c["top"] = top is not None and c["final"] == top
        rows.append({"task": task, "metric": metric, "higher": higher, "cells": cells,
                     "tokenizer": metric_tokenizer(series, task, metric), **interval_kind(series, task, metric)})
    return rows


def interval_kind(series: list[Series], task: str, metric: str) -> dict:
    """How a metric's intervals were made: `wilson` when any is a Wilson score interval (a rate
    metric), and the largest design effect over its records (clustered items; None without)."""
    methods, deffs = set(), []
    for s in series:
        for e in s.epochs:
            rec = graded_metric(e, task, metric)
            if rec is not None and rec.get("ci"):
                methods.add(str(rec.get("ci_method") or ""))
                deffs.append(num(rec.get("design_effect")))
    found = [d for d in deffs if d is not None]
    return {"wilson": "wilson" in methods, "design_effect": max(found) if found else None}


def interval_text(rec: Optional[MetricRecord]) -> str:
    """'95% CI [lo, hi], wilson; design effect 1.84' for a cell's title ('' without an interval)."""
    ci = (rec or {}).get("ci")
    if not isinstance(ci, list) or len(ci) != 2 or num(ci[0]) is None or num(ci[1]) is None:
        return ""
    text = f"CI [{ci[0]:,.2f}, {ci[1]:,.2f}]"
    if rec.get("ci_method"):
        text += f", {rec['ci_method']}"
    if num(rec.get("design_effect")) is not None:
        text += f"; design effect {rec['design_effect']:.2f}"
    return text


def metric_tokenizer(series: list[Series], task: str, metric: str) -> Optional[str]:
    """The tokenizer in a metric's signature (BLEU/TER 'tok:zh', ROUGE 'tokenizer:char'), for the score table.

    TER's CJK splitting is shown as '+asian'; several tokenizers across runs are joined by ' / '.
    """
    found: list[str] = []
    for s in series:
        for e in s.epochs:
            rec = graded_metric(e, task, metric)
            signature = (rec["signature"] if rec is not None else None) or ""
            parts = dict(p.split(":", 1) for p in signature.split("|") if ":" in p)
            tok = parts.get("tok") or parts.get("tokenizer")
            if tok and parts.get("asian") == "yes":
                tok += "+asian"
            if tok and tok not in found:
                found.append(tok)
    return " / ".join(found) or None


def signatures(series: list[Series]) -> list[dict]:
    """Metric signatures (sacrebleu's and the others') as graded, one row per distinct one."""
    seen, rows = set(), []
    for s in series:
        for e in s.epochs:
            for task, rec in e["tasks"].items():
                for metric, v in rec["metrics"].items():
                    sig = v.get("signature")        # a skipped metric has none
                    if sig and (task, metric, sig) not in seen:
                        seen.add((task, metric, sig))
                        rows.append({"task": task, "metric": metric, "signature": str(sig)})
    return rows


HARDWARE_KEYS = ("device", "gpu", "cpu_count", "platform")


def environment_table(series: list[Series]) -> tuple[list[str], list[dict]]:
    """(run columns, rows {key, kind, values}) of library versions and hardware, per run."""
    runs, envs = [], []
    for s in series:
        if str(s.run.root) not in runs:
            runs.append(str(s.run.root))
            envs.append(s.results.get("environment") or {})
    keys: list[str] = []
    for env in envs:
        keys += [k for k in env if k not in keys]
    rows = [{"key": k, "kind": "hardware" if k in HARDWARE_KEYS else "library",
             "values": ["" if env.get(k) is None else str(env.get(k)) for env in envs]} for k in keys]
    rows.sort(key=lambda r: r["kind"] != "hardware")
    return runs, rows


def suite_texts(series: list[Series]) -> list[tuple[str, str]]:
    """(run, resolved suite YAML) per run: suite.yaml as saved, else the dict from results."""
    out, seen = [], set()
    for s in series:
        key = str(s.run.root)
        if key in seen:
            continue
        seen.add(key)
        path = s.run.root / "suite.yaml"
        if path.is_file():
            text = path.read_text(encoding="utf-8", errors="replace")
        else:
            import yaml

            text = yaml.safe_dump(s.results.get("suite") or {}, sort_keys=False, allow_unicode=True)
        out.append((key, text))
    return out
