"""`harness report SWEEP_DIR`: one page for a whole sweep (harness/sweep/analysis.py says what it means).

Every trial's curves on shared axes (loss and each metric; with several seeds, the mean per
config and its seed band from lowest to highest seed), the trials ranked by objective with
their intervals, the tie set with the best trial, parameter importance, the forgetting verdict
of every run, and the summary naming the config to use. Each trial's own runs keep their own
report.html (`harness report SWEEP_DIR/trials/trial-N/seed-S`).
"""
from __future__ import annotations

from pathlib import Path
from statistics import fmean
from typing import Optional

from markupsafe import Markup

from harness import __version__
from harness.results import RunDir, write_atomic
from harness.sweep.analysis import SweepSummary, TrialSummary, summarise
from reports import charts
from reports.collect import Curve, Series, higher_is_better, loss_curves, metric_curve, metric_keys
from reports.html import TEMPLATES, _environment


def render_sweep_report(sweep_dir: Path, out: Optional[Path] = None, summary: Optional[SweepSummary] = None) -> Path:
    sweep_dir = Path(sweep_dir)
    summary = summary or summarise(sweep_dir)
    out = out or sweep_dir / "report.html"
    write_atomic(out, render_sweep_html(summary))
    return out


def render_sweep_html(s: SweepSummary) -> str:
    series = {t.number: _series(t) for t in s.trials}
    first = [ss[0] for ss in series.values() if ss]
    css = (TEMPLATES / "report.css").read_text(encoding="utf-8")
    batch = charts.ChartBatch()
    context = {
        "version": __version__,
        "meta": s.meta,
        "summary": s,
        "rows": [_row(t, s) for t in s.trials],
        "loss_svg": batch.add(charts.loss_chart, [loss_curves(x) for x in first], "loss-"),
        "metric_charts": _metric_charts(s.trials, series, batch),
        "importance": sorted((s.importance or {}).items(), key=lambda kv: -kv[1]),
        "n_complete": sum(t.state == "complete" for t in s.trials),
        "css": Markup(css),
        "csp": "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'",
    }
    batch.draw()
    return _environment().get_template("sweep.html.j2").render(**context)


def _series(t: TrialSummary) -> list[Series]:
    return [Series(t.label, RunDir(r.root), r.results, r.results["models"][0]) for r in t.runs
            if r.results and r.results.get("models")]


def _metric_charts(trials: list[TrialSummary], series: dict[int, list[Series]], batch: charts.ChartBatch) -> list[dict]:
    """One chart per (task, metric): a curve per trial; several seeds: their mean, banded by the seeds' range."""
    every = [x for ss in series.values() for x in ss]
    out = []
    for k, (task, metric) in enumerate(metric_keys(every)):
        higher = higher_is_better(every, task, metric)
        curves = []
        for t in trials:
            per_seed = [c for c in (metric_curve(x, task, metric, higher) for x in series[t.number]) if c]
            if not per_seed:
                continue
            curves.append(per_seed[0] if len(per_seed) == 1 else _seed_band(t.label, per_seed, higher))
        if curves:
            out.append({"task": task, "metric": metric,
                        "svg": batch.add(charts.metric_chart, task, metric, higher, curves, f"m{k}-")})
    return out


def _seed_band(label: str, curves: list[Curve], higher: bool) -> Curve:
    epochs = sorted(set.intersection(*(set(c.epochs) for c in curves)))
    at = [{e: v for e, v in zip(c.epochs, c.scores)} for c in curves]
    cols = [[a[e] for a in at if a.get(e) is not None] for e in epochs]
    mean = [fmean(v) if v else None for v in cols]
    pairs = [(m, e) for m, e in zip(mean, epochs) if m is not None and e >= 1]
    best = (max if higher else min)(pairs)[1] if pairs else None
    return Curve(f"{label} (mean of {len(curves)} seeds)", epochs, mean, [min(v) if v else None for v in cols],
                 [max(v) if v else None for v in cols], best, None)


def _row(t: TrialSummary, s: SweepSummary) -> dict:
    return {"number": t.number, "params": t.params, "state": t.state, "value": t.value, "interval": t.interval,
            "spread": t.spread, "feasible": t.feasible, "best": s.best is t, "tie": t.tie,
            "in_tie_set": t.number in s.tie_set,
            "seeds": [{"seed": r.seed, "value": r.value, "epoch": r.epoch, "forgetting": r.forgetting or "–",
                       "path": str(r.root.relative_to(s.root)), "pruned_at": r.info.get("pruned_at_epoch")}
                      for r in t.runs]}
