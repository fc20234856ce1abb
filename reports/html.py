"""`render_report`: run directories → one self-contained report.html.

One run directory gives RUN/report.html; several give a comparison page (curves of every
run and model on the same axes). Everything comes from the run directories (results.json,
samples/, suite.yaml), so a report can be re-rendered at any time without re-running.

The page is a jinja2 template with autoescape on; the only markup not escaped by jinja is
what this package makes itself: the charts' SVG (from matplotlib, whose writer escapes
text), the page's own CSS/JS, and the sample rows' JSON, escaped by `script_json`. A
Content-Security-Policy allows no network and only the page's own script (by hash), so
even a hypothetical injection could neither run nor phone home.
"""
from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path
from typing import Optional

import jinja2
from markupsafe import Markup

from harness import __version__
from harness.results import run_state, write_atomic
from reports import charts
from reports.collect import (Series, checkpoint_to_keep, environment_table, forgetting_matrix,
                             grading_memory, header, higher_is_better, interval_kind, load_series, loss_curves,
                             memory_breakdown, metric_curve, metric_keys, score_table, signatures, suite_texts)
from reports.data import training_data
from reports.evidence import diagnostics_evidence, item_changes, power_table
from reports.perf import perf_tables
from reports.samples import MAX_CHARS, MAX_SAMPLES, sample_link, sample_sets, script_json

TEMPLATES = Path(__file__).parent / "templates"


def render_report(run_dirs: list[Path], out: Optional[Path] = None, max_samples: int = MAX_SAMPLES,
                  max_chars: int = MAX_CHARS) -> Path:
    """Write the report of one run (default RUN/report.html) or a comparison of several
    (default ./compare.html); return its path."""
    run_dirs = [Path(p) for p in run_dirs]
    if not run_dirs:
        raise ValueError("render_report needs at least one run directory")
    series = load_series(run_dirs)
    if out is None:
        out = run_dirs[0] / "report.html" if len(run_dirs) == 1 else Path("compare.html")
    html = render_html(series, comparison=len(run_dirs) > 1, max_samples=max_samples, max_chars=max_chars,
                       perf=perf_tables(run_dirs))
    write_atomic(Path(out), html)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(out, 0o666 & ~umask)   # a report is for sharing; the temp file it came from was 0600
    return Path(out)


def render_html(series: list[Series], comparison: bool, max_samples: int = MAX_SAMPLES,
                max_chars: int = MAX_CHARS, perf: list[dict] = ()) -> str:
    css = (TEMPLATES / "report.css").read_text(encoding="utf-8")
    js = (TEMPLATES / "report.js").read_text(encoding="utf-8")
    sets = sample_sets(series, max_samples, max_chars)
    env = _environment()
    runs, env_rows = environment_table(series)
    batch = charts.ChartBatch()   # drawn together below, before the template reads them
    context = {
        "title": _title(series, comparison),
        "comparison": comparison,
        "version": __version__,
        "runs": _runs(series),
        "headers": [header(s) for s in series],
        "labels": [s.label for s in series],
        "colours": [charts.colour(i) for i in range(len(series))],
        "loss_svg": batch.add(charts.loss_chart, [loss_curves(s) for s in series], "loss-"),
        "metric_charts": _metric_charts(series, batch),
        "points_only": bool(series) and all(len(s.epochs) <= 1 for s in series),
        "forgetting": _forgetting(series, batch),
        "drift": _drift(series, batch),
        "evidence": [{"label": s.label, **diagnostics_evidence(s), "power_table": power_table(s),
                      "checkpoint": checkpoint_to_keep(s), "changes": item_changes(s, sample_link(sets, s.label))}
                     for s in series],
        "memory": _memory(series, batch),
        "data": training_data(series),
        "scores": score_table(series),
        "sample_sets": [{"label": s["label"], "task": s["task"], "n_total": s["n_total"],
                         "n_shown": s["n_shown"], "n_truncated": s["n_truncated"],
                         "files": s["files"]} for s in sets],
        "sample_json": Markup(script_json({"sets": sets})),
        "max_samples": max_samples,
        "max_chars": max_chars,
        "env_runs": runs,
        "env_rows": env_rows,
        "signatures": signatures(series),
        "suites": suite_texts(series),
        "perf": list(perf),
        "css": Markup(css),
        "js": Markup(js),
        "csp": _csp(js),
    }
    batch.draw()
    return env.get_template("report.html.j2").render(**context)


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                             bytecode_cache=_bytecode_cache())
    env.filters["num"] = _fmt_num
    env.filters["count"] = lambda v: "?" if v is None else f"{int(v):,}"
    env.filters["pct"] = lambda v: "?" if v is None else f"{100 * v:.3g}%"
    env.filters["mib"] = lambda v: "–" if v is None else f"{v / 2 ** 20:,.1f} MiB"
    env.filters["pval"] = _fmt_p
    env.filters["sig"] = lambda v: "–" if v is None else f"{v:.2g}"
    return env


def _bytecode_cache() -> Optional[jinja2.BytecodeCache]:
    """The compiled templates, kept in $HARNESS_CACHE/templates (jinja2 keys them by the template's
    source checksum, so an edited template compiles afresh): compiling the page's template was a
    tenth of a report's time. None where that directory cannot be made (compiled every time)."""
    from harness.builtin_recipes import cache_root

    directory = cache_root() / "templates"
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return jinja2.FileSystemBytecodeCache(str(directory))


def _fmt_p(p) -> str:
    """A p-value as the diagnostics print it: '<0.001' below a thousandth, else 3 significant digits."""
    if p is None:
        return "–"
    return "<0.001" if p < 0.001 else f"{p:.3g}"


def _fmt_num(v, digits: int = 2) -> str:
    if v is None:
        return "–"
    return f"{v:,.{digits}f}"


def _csp(js: str) -> str:
    digest = base64.b64encode(hashlib.sha256(js.encode("utf-8")).digest()).decode()
    return (f"default-src 'none'; script-src 'sha256-{digest}'; style-src 'unsafe-inline'; "
            f"img-src data:; base-uri 'none'; form-action 'none'")


def _title(series: list[Series], comparison: bool) -> str:
    suites = list(dict.fromkeys(str(s.results.get("suite_name") or "") for s in series)) or ["(no models)"]
    return ("comparison: " if comparison else "") + ", ".join(suites)


def _runs(series: list[Series]) -> list[dict]:
    out, seen = [], set()
    for s in series:
        if str(s.run.root) in seen:
            continue
        seen.add(str(s.run.root))
        state = run_state(s.results)   # a killed run reads "interrupted", not "running"
        out.append({"root": str(s.run.root), "status": state.status, "status_detail": state.detail,
                    "created": str(s.results.get("created") or ""), "finished": str(s.results.get("finished") or ""),
                    "models": [x.label for x in series if x.run.root == s.run.root]})
    return out


def _metric_charts(series: list[Series], batch: charts.ChartBatch) -> list[dict]:
    out = []
    for k, (task, metric) in enumerate(metric_keys(series)):
        higher = higher_is_better(series, task, metric)
        curves = [metric_curve(s, task, metric, higher) for s in series]
        curves = [c for c in curves if c is not None]
        if curves:
            out.append({"task": task, "metric": metric, **interval_kind(series, task, metric),
                        "svg": batch.add(charts.metric_chart, task, metric, higher, curves, f"m{k}-")})
    return out


def _forgetting(series: list[Series], batch: charts.ChartBatch) -> list[dict]:
    out = []
    for k, s in enumerate(series):
        m = forgetting_matrix(s)
        out.append({"label": s.label, "source": m.source if m else None,
                    "svg": batch.add(charts.forgetting_chart, m, f"f{k}-") if m else None})
    return out


def _drift(series: list[Series], batch: charts.ChartBatch) -> list[dict]:
    out = []
    for k, s in enumerate(series):
        section = (s.model.get("diagnostics") or {}).get("drift")
        if section:
            out.append({"label": s.label, "verdict": section.get("verdict") or {},
                        "probed": (section.get("probe") or {}).get("summary", ""),
                        "svg": batch.add(charts.drift_chart, section, f"d{k}-")})
    return out


def _memory(series: list[Series], batch: charts.ChartBatch) -> list[dict]:
    out = []
    for k, s in enumerate(series):
        mb = memory_breakdown(s)
        out.append({"label": s.label, "svg": batch.add(charts.memory_chart, mb, f"mem{k}-") if mb else None,
                    "folk_rule_computed": bool(mb and mb.folk_rule_computed), "grading": grading_memory(s)})
    return out
