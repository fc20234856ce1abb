"""`harness gate`: decide pass or fail for a graded run, for CI.

Gates (`GateSpec` in suite.py) come from the suite stored in results.json or from a gates file
(YAML or JSON with a top-level `gates:` list). One GateSpec can set several conditions; each
set condition is one gate verdict:

    min / max                    absolute threshold on the gated checkpoint's corpus score
    max_drop_from_base           forgetting budget: drop against epoch 0 of the same model
    max_drop_from_baseline       regression budget: drop against a baseline results file

A drop is measured in the metric's direction (a rise of perplexity or TER is a drop). A drop
gate fails only when the observed drop exceeds the budget AND a one-sided paired bootstrap
over the same test items (paired by sample `id`) says the gated checkpoint is worse at the
gate's `confidence` (p < 1 - confidence). Without per-sample statistics on either side the
gate falls back to the plain threshold and says so (mode `threshold-only`).

Outputs: a rich table, exit code 0 pass / 1 fail / 2 bad input, JUnit XML (one test case per
gate), a Markdown summary, and the verdicts stored in results.json `gates`. See docs/gates.md.
"""
from __future__ import annotations

import difflib
import json
import math
import os
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence, Union

import numpy as np
import yaml
from pydantic import ValidationError

from harness.errors import UserError
from harness.metrics.base import Metric
from harness.metrics.bootstrap import paired_bootstrap
from harness.results import (
    ResultsError, RunDir, find_epoch, find_model, load_results, load_sample_stats, run_state, write_atomic,
    write_json,
)
from harness.suite import GateSpec, _format_error, _line_map

EXIT_PASS, EXIT_FAIL, EXIT_BAD_INPUT = 0, 1, 2
KINDS = ("min", "max", "max_drop_from_base", "max_drop_from_baseline")
DEFAULT_SAMPLES = 1000
_EPS = 1e-9  # float noise allowed at a threshold


class GateError(UserError, ValueError):
    """Bad gate input (gates file, unknown task or metric, missing epoch); one line, exit 2."""


# --------------------------------------------------------------------------- loading gates
def _validate(raw: Any, file: str, text: Optional[str] = None, key: str = "gates") -> list[GateSpec]:
    if not isinstance(raw, list):
        raise GateError(f"{file}: `{key}` must be a list of gates (task, metric, min/max/max_drop_...)")
    if not raw:
        raise GateError(f"{file}: `{key}` is empty: nothing to gate")
    lines: dict[tuple, int] = {}
    if text is not None:
        try:
            lines = _line_map(text)
        except yaml.YAMLError:
            lines = {}
    gates: list[GateSpec] = []
    for i, g in enumerate(raw):
        try:
            spec = GateSpec.model_validate(g)
        except ValidationError as e:
            raw_errors, seen = [], set()
            for err in e.errors():
                loc = err["loc"]
                if loc and loc[0] == "checkpoint":  # a union: one message, not one per member
                    if "checkpoint" in seen:
                        continue
                    seen.add("checkpoint")
                    err = {**err, "loc": ("checkpoint",), "type": "value_error",
                           "msg": "checkpoint is 'best', 'last' or an epoch number"}
                raw_errors.append(err)
            errors = [_format_error({**err, "loc": ("gates", i, *err["loc"])}, file, lines) for err in raw_errors]
            if key != "gates":
                errors = [m.replace("'gates.", f"'{key}.") for m in errors]
            raise GateError(errors[0] + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else "")) from None
        if all(getattr(spec, k) is None for k in KINDS):
            line = lines.get(("gates", i))
            where = f"{file}:{line}" if line else file
            raise GateError(f"{where}: gate '{key}.{i}' ({spec.task}/{spec.metric}) sets none of "
                            f"{', '.join(KINDS)}: add one")
        gates.append(spec)
    return gates


def load_gates_file(path: Union[str, Path]) -> list[GateSpec]:
    """Gates from a YAML or JSON file with a top-level `gates:` list (other keys are ignored,
    so a suite file works too)."""
    p = Path(path)
    if not p.is_file():
        raise GateError(f"{p}: gates file not found")
    text = p.read_text(encoding="utf-8")
    if p.suffix.lower() == ".json":
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as e:
            raise GateError(f"{p}:{e.lineno}: not valid JSON: {e.msg}") from None
    else:
        try:
            raw = yaml.safe_load(text)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            raise GateError(f"{p}{f':{mark.line + 1}' if mark else ''}: not valid YAML: "
                            f"{getattr(e, 'problem', e)}") from None
    if not isinstance(raw, dict) or "gates" not in raw:
        raise GateError(f"{p}: a gates file is a mapping with a top-level `gates:` list")
    return _validate(raw["gates"], str(p), text)


def gates_from_results(results: dict, source: str = "results.json") -> list[GateSpec]:
    """The gates of the suite stored in a results file."""
    suite = results.get("suite") if isinstance(results.get("suite"), dict) else {}
    raw = suite.get("gates")
    if not raw:
        raise GateError(f"{source}: the suite stored in the results defines no gates: "
                        f"give a gates file with --gates")
    return _validate(raw, source, key="suite.gates")


# ------------------------------------------------------------------------ evaluation parts
class _LogPerplexity(Metric):
    """`loss` (mean NLL per assistant token = ln perplexity), re-aggregated from perplexity stats."""

    name = "loss"
    higher_is_better = False

    def __init__(self, ppl: Metric):
        self.ppl = ppl

    def score(self, stats: np.ndarray) -> float:
        v = self.ppl.score(stats)
        return math.log(v) if v and v > 0 and math.isfinite(v) else float("nan")


def _metric_options(results: dict, task: str) -> dict[str, dict]:
    suite = results.get("suite") or {}
    for t in suite.get("tasks") or []:
        if isinstance(t, dict) and t.get("name") == task:
            options = {k: dict(v) for k, v in (t.get("metric_options") or {}).items() if isinstance(v, dict)}
            # The JSON Schema only shapes per-sample stats, not their aggregation: any schema
            # lets metric_for build json_schema_valid to re-aggregate stored stats.
            options.setdefault("json_validity", {}).setdefault("schema", True)
            return options
    return {"json_validity": {"schema": True}}


def _metric_object(results: dict, task: str, metric: str) -> Optional[Metric]:
    from harness.metrics import metric_for

    try:
        if metric == "loss":
            return _LogPerplexity(metric_for("perplexity", _metric_options(results, task)))
        return metric_for(metric, _metric_options(results, task))
    except KeyError:
        return None


def _did_you_mean(name: str, have: Iterable[str]) -> str:
    have = list(have)
    hint = difflib.get_close_matches(name, have, n=1)
    return f"; did you mean {hint[0]!r}?" if hint else f" (have: {', '.join(have) or 'none'})"


class _Side:
    """One scored (model, epoch, task, metric) of a results file."""

    def __init__(self, label: str, results: dict, run: RunDir, model: dict, epoch: dict, task: str,
                 metric: str, where: str):
        self.label, self.results, self.run, self.model, self.epoch = label, results, run, model, epoch
        self.task, self.metric = task, metric
        tasks = epoch.get("tasks") or {}
        if task not in tasks:
            raise GateError(f"{where}: task {task!r} not in {label} (model {model['name']!r}, epoch "
                            f"{epoch['epoch']}){_did_you_mean(task, tasks)}")
        self.record = tasks[task]
        metrics = self.record.get("metrics") or {}
        if metric == "loss":
            self.value = self.record.get("loss")
            self.higher_is_better = False
            self.signature = None
            if self.value is None:
                raise GateError(f"{where}: task {task!r} in {label} has no loss (the model's likelihood "
                                f"was not available)")
        else:
            if metric not in metrics:
                raise GateError(f"{where}: metric {metric!r} not graded on task {task!r} in {label}"
                                f"{_did_you_mean(metric, [*metrics, 'loss'])}")
            m = metrics[metric]
            if m.get("score") is None and m.get("skipped"):
                raise GateError(f"{where}: metric {metric!r} on task {task!r} was not computed in {label}: "
                                f"{m['skipped']}")
            self.value = m.get("score")
            obj = _metric_object(results, task, metric)
            self.higher_is_better = bool(m.get("higher_is_better",
                                               obj.higher_is_better if obj is not None else True))
            self.signature = m.get("signature")

    def stats(self, cache: dict) -> tuple[Optional[tuple[list[str], np.ndarray]], str]:
        """(ids, stats) or None, and why not."""
        key = "perplexity" if self.metric == "loss" else self.metric
        rel = self.record.get("samples")
        if not rel:
            return None, f"no per-sample data in {self.label}"
        if not (self.run.root / rel).exists():
            return None, f"sample file {rel} missing in {self.label}"
        ck = (str(self.run.root), rel, key)
        if ck not in cache:
            try:
                cache[ck] = load_sample_stats(self.run, self.record, key)
            except (ValueError, KeyError, TypeError, OSError) as e:
                raise ResultsError(f"{self.run.root / rel}: unreadable sample file: {e}") from None
        got = cache[ck]
        return got, "" if got is not None else f"no per-sample stats for {key} in {self.label}"


def _checkpoint_label(checkpoint: Any, epoch: int) -> str:
    return f"epoch {epoch}" if not isinstance(checkpoint, str) else f"{checkpoint} (epoch {epoch})"


def _fmt(v: Optional[float], digits: int = 2) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return f"{v:.{digits}f}"


def _fmt_threshold(v: float) -> str:
    return f"{v:g}"


def _fmt_p(p: Optional[float]) -> str:
    if p is None:
        return "–"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _p_eq(p: float) -> str:
    """'<0.001' or '=0.123', to follow a 'p'."""
    text = _fmt_p(p)
    return text if text.startswith("<") else f"={text}"


def _gate_name(spec: GateSpec, kind: str) -> str:
    t = _fmt_threshold(getattr(spec, kind))
    cond = {"min": f">= {t}", "max": f"<= {t}", "max_drop_from_base": f"drop vs base <= {t}",
            "max_drop_from_baseline": f"drop vs baseline <= {t}"}[kind]
    cp = spec.checkpoint if isinstance(spec.checkpoint, str) else f"epoch {spec.checkpoint}"
    return f"{spec.task}/{spec.metric} {cond} ({cp})"


def _pair(new: tuple[list[str], np.ndarray], old: tuple[list[str], np.ndarray]
          ) -> tuple[np.ndarray, np.ndarray, str]:
    """Rows of both sides for the ids they share (in the new side's order), and a note."""
    ids_new, st_new = new
    ids_old, st_old = old
    where_old = {i: k for k, i in enumerate(ids_old)}
    pairs = [(k, where_old[i]) for k, i in enumerate(ids_new) if i in where_old]
    note = ""
    if len(pairs) < max(len(ids_new), len(ids_old)):
        only_new = len(ids_new) - len(pairs)
        only_old = len(ids_old) - len(pairs)
        note = (f"paired on {len(pairs)} shared item ids only ({only_new} only in the gated run, "
                f"{only_old} only in the reference)")
    if not pairs:
        return st_new[:0], st_old[:0], note
    a, b = zip(*pairs)
    return st_new[list(a)], st_old[list(b)], note


# -------------------------------------------------------------------------------- evaluate
def evaluate_gates(results: dict, run: RunDir, gates: Sequence[Union[GateSpec, dict]],
                   baseline: Optional[Union[tuple[dict, RunDir], str, Path]] = None, *,
                   model: Optional[str] = None, samples: int = DEFAULT_SAMPLES, seed: Optional[int] = None) -> dict:
    """Verdicts of `gates` on `results` (the model named `model`, default the first).

    `baseline`: an earlier run, as load_results returns it (or its path); regression gates are
    skipped (status `skipped`, passed) without one. `samples` paired-bootstrap resamples,
    `seed` (default: the suite's bootstrap seed). Raises GateError / ResultsError on bad input.
    Returns {"passed", "verdict": {"status", "summary"}, "gates": [...], "model", "suite_name",
    "results", "baseline", "evaluated"}; docs/gates.md lists the fields of each gate.
    """
    if isinstance(baseline, (str, Path)):
        baseline = load_results(baseline)
    if not gates:
        raise GateError("no gates to evaluate")
    specs = _validate([g.model_dump() if isinstance(g, GateSpec) else g for g in gates], "gates")
    if not isinstance(results.get("models"), list) or not results["models"]:
        raise ResultsError(f"{run.results_path}: no graded models in the results")
    model_rec = find_model(results, model)
    if seed is None:
        seed = int(((results.get("suite") or {}).get("bootstrap") or {}).get("seed") or 0)
    base_model = None
    if baseline is not None:
        b_results, b_run = baseline
        if not isinstance(b_results.get("models"), list) or not b_results["models"]:
            raise ResultsError(f"{b_run.results_path}: no graded models in the baseline results")
        names = [m["name"] for m in b_results["models"]]
        if model_rec["name"] in names:
            base_model = find_model(b_results, model_rec["name"])
        elif len(names) == 1:
            base_model = b_results["models"][0]
        else:
            raise GateError(f"{b_run.results_path}: baseline has no model {model_rec['name']!r} and several "
                            f"others ({', '.join(names)}): cannot tell which to compare against")

    cache: dict = {}
    out: list[dict] = []
    problems: list[str] = []
    prepared = []
    # Check every gate's task, metric and checkpoint first, so bad input is reported before work.
    for i, spec in enumerate(specs):
        where = f"gate {i + 1} ({spec.task}/{spec.metric})"
        try:
            try:
                epoch = find_epoch(model_rec, spec.checkpoint)
            except ResultsError as e:
                raise GateError(f"{where}: {e}") from None
            side = _Side("the results", results, run, model_rec, epoch, spec.task, spec.metric, where)
            base = None
            if spec.max_drop_from_base is not None:
                try:
                    e0 = find_epoch(model_rec, 0)
                except ResultsError:
                    raise GateError(f"{where}: max_drop_from_base needs epoch 0 (the model before training), "
                                    f"which model {model_rec['name']!r} lacks") from None
                base = _Side("epoch 0", results, run, model_rec, e0, spec.task, spec.metric, where)
            ref = None
            if spec.max_drop_from_baseline is not None and baseline is not None:
                try:
                    b_epoch = find_epoch(base_model, spec.checkpoint)
                except ResultsError as e:
                    raise GateError(f"{where}: baseline {baseline[1].results_path}: {e}") from None
                ref = _Side(f"the baseline {baseline[1].results_path}", baseline[0], baseline[1], base_model,
                            b_epoch, spec.task, spec.metric, where)
                if side.signature and ref.signature and side.signature != ref.signature:
                    raise GateError(f"{where}: metric signatures differ between results ({side.signature}) "
                                    f"and baseline ({ref.signature}): the scores are not comparable")
            prepared.append((spec, side, base, ref))
        except GateError as e:
            problems.append(str(e))
    if problems:
        raise GateError(problems[0] + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""))

    for spec, side, base, ref in prepared:
        common = {
            "task": spec.task, "metric": spec.metric, "model": model_rec["name"],
            "checkpoint": spec.checkpoint, "epoch": side.epoch["epoch"],
            "higher_is_better": side.higher_is_better, "confidence": spec.confidence,
        }
        for kind in KINDS:
            threshold = getattr(spec, kind)
            if threshold is None:
                continue
            g = {"name": _gate_name(spec, kind), **common, "kind": kind, "value": side.value,
                 "threshold": threshold, "reference": None, "reference_value": None, "delta": None,
                 "drop": None, "p_value": None, "paired_items": None}
            if kind in ("min", "max"):
                g.update(_absolute(side, kind, threshold, spec.checkpoint))
            elif kind == "max_drop_from_base":
                g.update(_drop(side, base, "epoch 0", threshold, spec, cache, samples, seed))
            elif ref is None:
                g.update(status="skipped", passed=True, mode=None,
                         message="skipped: no baseline results given (--baseline)")
            else:
                label = f"baseline epoch {ref.epoch['epoch']}"
                g.update(_drop(side, ref, label, threshold, spec, cache, samples, seed))
                g["baseline"] = str(ref.run.results_path)
            out.append(g)

    failed = [g for g in out if g["status"] == "fail"]
    skipped = [g for g in out if g["status"] == "skipped"]
    fallback = [g for g in out if g["kind"].startswith("max_drop") and g["mode"] == "threshold-only"]
    if failed:
        summary = (f"{len(failed)} of {len(out)} gate{'s' if len(out) != 1 else ''} failed: "
                   + "; ".join(f"{g['task']}/{g['metric']} {g['short']}" for g in failed))
    elif len(skipped) == len(out):
        summary = "no gate evaluated"
    else:
        summary = f"all {len(out) - len(skipped)} gate{'s' if len(out) - len(skipped) != 1 else ''} passed"
    if skipped:
        summary += f"; {len(skipped)} skipped (no baseline)"
    if fallback:
        summary += f"; {len(fallback)} without significance test (no per-sample stats)"
    for g in out:
        g.pop("short", None)
    return {
        "passed": not failed,
        "verdict": {"status": "fail" if failed else "pass", "summary": summary},
        "gates": out,
        "model": model_rec["name"],
        "suite_name": results.get("suite_name"),
        "results": str(run.results_path),
        "baseline": str(baseline[1].results_path) if baseline is not None else None,
        "evaluated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _absolute(side: _Side, kind: str, threshold: float, checkpoint: Any) -> dict:
    v = side.value
    where = f"at {_checkpoint_label(checkpoint, side.epoch['epoch'])}"
    if v is None or not math.isfinite(v):
        return {"status": "fail", "passed": False, "mode": "threshold-only",
                "message": f"{side.metric} is undefined (null) {where}", "short": "undefined"}
    ok = v >= threshold - _EPS if kind == "min" else v <= threshold + _EPS
    op = (">=" if ok else "<") if kind == "min" else ("<=" if ok else ">")
    bound = "min" if kind == "min" else "max"
    text = f"{_fmt(v)} {op} {bound} {_fmt_threshold(threshold)}"
    return {"status": "pass" if ok else "fail", "passed": ok, "mode": "threshold-only",
            "message": f"{side.metric} {text} {where}", "short": text}


def _drop(side: _Side, ref: _Side, label: str, budget: float, spec: GateSpec, cache: dict,
          samples: int, seed: int) -> dict:
    v, r = side.value, ref.value
    res: dict[str, Any] = {"reference": label, "reference_value": r}
    if v is None or r is None or not (math.isfinite(v) and math.isfinite(r)):
        return {**res, "status": "fail", "passed": False, "mode": "threshold-only",
                "message": f"{side.metric} is undefined (null) here or at {label}", "short": "undefined"}
    higher = side.higher_is_better
    delta = v - r
    drop = (-delta if higher else delta) + 0.0  # no -0.0
    res.update(delta=delta, drop=drop)
    exceeds = drop > budget + _EPS
    change = (f"{side.metric} {_fmt(v)} vs {_fmt(r)} at {label}: "
              + (f"worse by {_fmt(drop)}" if drop > 0 else f"not worse ({'+' if delta >= 0 else ''}{_fmt(delta)})")
              + f" (budget {_fmt_threshold(budget)}")
    short = f"worse by {_fmt(drop)} vs {label} (budget {_fmt_threshold(budget)}"

    # Paired bootstrap on per-sample stats, when both sides have them.
    metric_obj = _metric_object(side.results, spec.task, spec.metric)
    new, why_new = side.stats(cache)
    old, why_old = ref.stats(cache)
    reasons = [w for w in (why_new, why_old) if w]
    if metric_obj is None:
        reasons.append(f"metric {spec.metric!r} cannot be re-aggregated by this harness")
    note = ""
    p = None
    if not reasons:
        st_new, st_old, note = _pair(new, old)
        res["paired_items"] = len(st_new)
        if len(st_new) < 2:
            reasons.append("fewer than 2 test items shared by id")
        else:
            alternative = "less" if higher else "greater"
            test = paired_bootstrap(metric_obj, st_new, st_old, samples=samples, seed=seed,
                                    confidence=spec.confidence, alternative=alternative)
            p = test["p_value"]
            if p is None:
                reasons.append("the paired bootstrap gave no p-value")
            else:
                res["p_value"] = p
                res["paired_delta"] = test["delta"]
                res["ci"] = test["ci"]
    alpha = 1 - spec.confidence
    notes = f"; {note}" if note else ""
    if reasons:
        passed = not exceeds
        why = "; ".join(reasons)
        return {**res, "status": "pass" if passed else "fail", "passed": passed, "mode": "threshold-only",
                "message": f"{change}); {why}: plain threshold, no significance test{notes}",
                "short": short + ")"}
    significant = p < alpha
    n = res["paired_items"]
    test_txt = (f"p{_p_eq(p)} {'<' if significant else '>='} {alpha:.3g}, one-sided paired bootstrap "
                f"on {n} items")
    if not exceeds:
        verdict, passed = f"within budget ({test_txt})", True
    elif significant:
        verdict, passed = f"significant ({test_txt})", False
    else:
        verdict, passed = f"over budget but not significant ({test_txt}): passes", True
    return {**res, "status": "pass" if passed else "fail", "passed": passed, "mode": "paired-bootstrap",
            "message": f"{change}); {verdict}{notes}", "short": f"{short}, p{_p_eq(p)})"}


# --------------------------------------------------------------------------------- outputs
def write_junit(verdicts: dict, path: Union[str, Path]) -> Path:
    """JUnit XML: one <testcase> per gate (failure / skipped), in one <testsuite>."""
    gates = verdicts.get("gates") or []
    failures = sum(g["status"] == "fail" for g in gates)
    skipped = sum(g["status"] == "skipped" for g in gates)
    errors = sum(g["status"] == "error" for g in gates)
    counts = {"tests": str(len(gates)), "failures": str(failures), "errors": str(errors),
              "skipped": str(skipped), "time": "0"}
    root = ET.Element("testsuites", {"name": "harness gate", **counts})
    suite_name = "harness gate"
    if verdicts.get("suite_name") or verdicts.get("model"):
        suite_name += ": " + "/".join(str(x) for x in (verdicts.get("suite_name"), verdicts.get("model")) if x)
    attrs = {"name": suite_name, **counts}
    if verdicts.get("evaluated"):
        attrs["timestamp"] = str(verdicts["evaluated"])[:19]  # JUnit wants no timezone suffix
    suite = ET.SubElement(root, "testsuite", attrs)
    props = ET.SubElement(suite, "properties")
    for key in ("results", "baseline", "model"):
        if verdicts.get(key):
            ET.SubElement(props, "property", {"name": key, "value": str(verdicts[key])})
    ET.SubElement(props, "property", {"name": "verdict", "value": verdicts["verdict"]["summary"]})
    for g in gates:
        case = ET.SubElement(suite, "testcase", {"name": g["name"], "classname": f"harness.gate.{g.get('task', '')}",
                                                 "time": "0"})
        details = "\n".join(f"{k}: {g.get(k)}" for k in ("model", "checkpoint", "epoch", "kind", "value", "threshold",
                                                          "reference", "reference_value", "delta", "p_value",
                                                          "paired_items", "mode") if k in g)
        if g["status"] == "fail":
            ET.SubElement(case, "failure", {"message": g["message"], "type": "GateFailed"}).text = details
        elif g["status"] == "error":
            ET.SubElement(case, "error", {"message": g["message"], "type": "BadInput"}).text = g["message"]
        elif g["status"] == "skipped":
            ET.SubElement(case, "skipped", {"message": g["message"]})
        ET.SubElement(case, "system-out").text = g["message"]
    ET.indent(root)
    text = ET.tostring(root, encoding="unicode", xml_declaration=False)
    p = Path(path)
    write_atomic(p, '<?xml version="1.0" encoding="UTF-8"?>\n' + text + "\n")
    return p


def _md_cell(text: Any) -> str:
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def render_markdown(verdicts: dict) -> str:
    """A GitHub-flavoured Markdown summary (heading, verdict line, one table row per gate)."""
    status = verdicts["verdict"]["status"]
    icon = {"pass": "✅", "fail": "❌"}.get(status, "⚠️")
    title = f"{verdicts.get('suite_name') or 'run'} / {verdicts.get('model') or ''}".rstrip(" /")
    lines = [f"### {icon} Gates {status.upper()}: {_md_cell(title)}", "",
             _md_cell(verdicts["verdict"]["summary"]), ""]
    if verdicts.get("baseline"):
        lines += [f"Baseline: `{_md_cell(verdicts['baseline'])}`", ""]
    lines += ["| result | gate | checkpoint | value | reference | delta | p | mode | details |",
              "|---|---|---|---:|---:|---:|---:|---|---|"]
    marks = {"pass": "✅ pass", "fail": "❌ fail", "skipped": "⏭️ skipped", "error": "⚠️ error"}
    for g in verdicts.get("gates") or []:
        ref = "–"
        if g.get("kind") in ("min", "max"):
            ref = f"{'≥' if g['kind'] == 'min' else '≤'} {_fmt_threshold(g['threshold'])}"
        elif g.get("reference_value") is not None:
            ref = f"{_fmt(g['reference_value'])} ({g['reference']})"
        cp = _checkpoint_label(g["checkpoint"], g["epoch"]) if g.get("epoch") is not None else str(g.get("checkpoint", "–"))
        cells = [marks.get(g["status"], g["status"]), f"`{g['name']}`", cp, _fmt(g.get("value")), ref,
                 _fmt(g.get("delta")), _fmt_p(g.get("p_value")), g.get("mode") or "–", g["message"]]
        lines.append("| " + " | ".join(_md_cell(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def print_table(verdicts: dict, console) -> None:
    """The verdicts as a rich table, then the one-line verdict."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"gates: {verdicts.get('model') or ''}", show_lines=False)
    for col, just in (("result", "left"), ("gate", "left"), ("checkpoint", "left"), ("value", "right"),
                      ("reference", "right"), ("delta", "right"), ("p", "right"), ("mode", "left"),
                      ("details", "left")):
        table.add_column(col, justify=just)
    colours = {"pass": "green", "fail": "red", "skipped": "yellow", "error": "red"}
    for g in verdicts["gates"]:
        ref = "–"
        if g["kind"] in ("min", "max"):
            ref = f"{'>=' if g['kind'] == 'min' else '<='} {_fmt_threshold(g['threshold'])}"
        elif g.get("reference_value") is not None:
            ref = f"{_fmt(g['reference_value'])} ({g['reference']})"
        table.add_row(Text(g["status"].upper(), style=colours.get(g["status"], "white")), Text(g["name"]),
                      Text(_checkpoint_label(g["checkpoint"], g["epoch"])), _fmt(g.get("value")), Text(ref),
                      _fmt(g.get("delta")), _fmt_p(g.get("p_value")), g.get("mode") or "–", Text(g["message"]))
    console.print(table)
    v = verdicts["verdict"]
    colour = colours.get(v["status"], "white")
    console.print(f"gates: [{colour}]{v['status']}[/] ", end="")
    console.print(v["summary"], markup=False, highlight=False)


def _error_verdicts(message: str, results_path: Any) -> dict:
    return {"passed": False, "verdict": {"status": "fail", "summary": f"bad input: {message}"},
            "evaluated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "gates": [{"name": "gate input", "task": "input", "status": "error", "passed": False,
                       "message": message}],
            "results": str(results_path)}


def _write_markdown(text: str, path: Union[str, Path]) -> None:
    p = Path(path)
    if os.environ.get("GITHUB_STEP_SUMMARY") and Path(os.environ["GITHUB_STEP_SUMMARY"]) == p:
        with open(p, "a", encoding="utf-8") as f:  # the job summary file is shared by the step
            f.write(text)
    else:
        write_atomic(p, text)


def run_gate(results_path: Union[str, Path], baseline_path: Optional[Union[str, Path]] = None,
             gates_path: Optional[Union[str, Path]] = None, junit: Optional[Union[str, Path]] = None,
             markdown: Optional[Union[str, Path]] = None, model: Optional[str] = None, console=None,
             write_back: bool = True) -> int:
    """`harness gate`: evaluate, print, write JUnit/Markdown, store verdicts; return the exit code."""
    if console is None:
        from rich.console import Console

        console = Console(soft_wrap=True)
    try:
        results, run = load_results(results_path)
        state = run_state(results)
        if state.status != "complete":   # a partial run is gated as of its last graded epoch: say so first
            console.print(f"run {state.status}: {state.detail or 'as of its last graded epoch'}",
                          style="yellow", markup=False, highlight=False)
        baseline = load_results(baseline_path) if baseline_path else None
        gates = load_gates_file(gates_path) if gates_path else gates_from_results(results, str(run.results_path))
        verdicts = evaluate_gates(results, run, gates, baseline, model=model)
    except (ResultsError, GateError) as e:
        console.print(f"error: {e}", style="red", markup=False, highlight=False)
        bad = _error_verdicts(str(e), results_path)
        try:
            if junit:
                write_junit(bad, junit)
            if markdown:
                _write_markdown(render_markdown(bad), markdown)
        except OSError:
            pass
        return EXIT_BAD_INPUT
    print_table(verdicts, console)
    try:
        if junit:
            write_junit(verdicts, junit)
        if markdown:
            _write_markdown(render_markdown(verdicts), markdown)
    except OSError as e:
        console.print(f"error: cannot write gate output: {e}", style="red", markup=False, highlight=False)
        return EXIT_BAD_INPUT
    if write_back:
        stored = {k: v for k, v in verdicts.items()}
        stored["source"] = str(gates_path) if gates_path else "suite"
        results["gates"] = stored
        try:
            write_json(run.results_path, results)
        except OSError as e:
            console.print(f"warning: verdicts not stored in {run.results_path}: {e}", style="yellow",
                          markup=False, highlight=False)
    return EXIT_PASS if verdicts["passed"] else EXIT_FAIL
