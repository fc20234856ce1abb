"""Gate evaluation: each set condition of each GateSpec → one verdict (see harness/gate/__init__.py)."""
from __future__ import annotations

import difflib
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Collection, Iterable, Optional, Sequence, Union

import numpy as np

from harness.gate.checks import run_refusals, same_data
from harness.gate.drift import DriftSide
from harness.gate.specs import KINDS, GateError, _validate
from harness.metrics import metric_for
from harness.metrics.base import Metric, split_harness_version
from harness.results import (GatesRecord, ResultsError, RunDir, find_epoch, find_model, gate_record, gates_record,
                             load_results, load_sample_stats)
from harness.stats.family import holm
from harness.stats.paired import compare_worse
from harness.suite import GateSpec

DEFAULT_SAMPLES = 1000
_EPS = 1e-9  # float noise allowed at a threshold


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
    options: dict[str, dict] = {}
    for t in suite.get("tasks") or []:
        if isinstance(t, dict) and t.get("name") == task:
            options = {k: dict(v) for k, v in (t.get("metric_options") or {}).items() if isinstance(v, dict)}
            break
    # The JSON Schema only shapes per-sample stats, not their aggregation: any schema
    # lets metric_for build json_schema_valid to re-aggregate stored stats.
    jv = options.setdefault("json_validity", {})
    if jv.get("schema") is None:
        jv["schema"] = True
    return options


def _metric_object(results: dict, task: str, metric: str) -> Optional[Metric]:
    try:
        if metric == "loss":
            return _LogPerplexity(metric_for("perplexity", _metric_options(results, task)))
        return metric_for(metric, _metric_options(results, task))
    except (KeyError, ValueError):   # options this harness does not know: no re-aggregation
        return None


def same_method(signature: str, ref_signature: str, where: str) -> Optional[str]:
    """Refuse scores computed differently; a harness upgrade alone (the signatures' last part,
    `|harness:VERSION`) does not change how a metric is computed: a note says so."""
    mine, mine_version = split_harness_version(signature)
    ref, ref_version = split_harness_version(ref_signature)
    if mine != ref:
        raise GateError(f"{where}: metric signatures differ between results ({signature}) "
                        f"and baseline ({ref_signature}): the scores are not comparable")
    if mine_version != ref_version:
        return f"baseline graded by harness {ref_version or 'before 0.1.0'}, results by {mine_version or '?'}"
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
        tasks = epoch["tasks"]
        if task not in tasks:
            raise GateError(f"{where}: task {task!r} not in {label} (model {model['name']!r}, epoch "
                            f"{epoch['epoch']}){_did_you_mean(task, tasks)}")
        self.record = tasks[task]
        metrics = self.record["metrics"]
        if metric == "loss":
            self.value = self.record["loss"]
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
            if m["score"] is None:
                raise GateError(f"{where}: metric {metric!r} on task {task!r} was not computed in {label}: "
                                f"{m.get('skipped') or 'no score'}")
            self.value = m["score"]
            if m["higher_is_better"] is not None:
                self.higher_is_better = m["higher_is_better"]
            else:   # a file that does not say: the metric's own direction
                obj = _metric_object(results, task, metric)
                self.higher_is_better = obj.higher_is_better if obj is not None else True
            self.signature = m["signature"]

    def stats(self, cache: dict) -> tuple[Optional[tuple[list[str], np.ndarray]], str]:
        """(ids, stats) or None, and why not."""
        key = "perplexity" if self.metric == "loss" else self.metric
        rel = self.record["samples"]
        if not rel:
            return None, f"no per-sample data in {self.label}"
        if not (self.run.root / rel).exists():
            return None, f"sample file {rel} missing in {self.label}"
        ck = (str(self.run.root), rel, key)
        if ck not in cache:
            try:
                cache[ck] = load_sample_stats(self.run, self.record, key)
            except ResultsError:   # already names the file and line
                raise
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
                   model: Optional[str] = None, samples: int = DEFAULT_SAMPLES, seed: Optional[int] = None,
                   allow: Collection[str] = ()) -> GatesRecord:
    """Verdicts of `gates` on `results` (the model named `model`, default the first).

    `baseline`: an earlier run, as load_results returns it (or its path); regression gates are
    skipped (status `skipped`, passed) without one. `allow`: refusals (harness/gate/checks.py)
    to turn into notes. `samples` paired-bootstrap resamples,
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
    notes = run_refusals(results, str(run.results_path), model_rec, allow)
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
        if any(g.max_drop_from_baseline is not None for g in specs):
            notes += run_refusals(b_results, str(b_run.results_path), base_model, allow, label="baseline")

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
            if spec.drift is not None:
                prepared.append((spec, DriftSide("the results", run, model_rec, epoch, spec.drift, where), None, None))
                continue
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
                if side.signature and ref.signature:
                    note = same_method(side.signature, ref.signature, where)
                    if note and note not in notes:
                        notes.append(note)
                note = same_data(side.record, ref.record, where, str(baseline[1].results_path), allow)
                if note and note not in notes:
                    notes.append(note)
            prepared.append((spec, side, base, ref))
        except GateError as e:
            problems.append(str(e))
    if problems:
        raise GateError(problems[0] + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""))

    for spec, side, base, ref in prepared:
        for kind in KINDS:
            threshold = getattr(spec, kind)
            if threshold is None:
                continue
            g = gate_record(_gate_name(spec, kind), spec.task, spec.metric, model_rec["name"], spec.checkpoint,
                            side.epoch["epoch"], side.higher_is_better, spec.confidence, kind, side.value,
                            threshold)
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

    pending = [g for g in out if "_pending" in g]
    tested = [g for g in pending if not g["_pending"]["reasons"]]
    for g, adj in zip(tested, holm([g["p_value"] for g in tested])):
        g["_p_adjusted"] = adj
    for g in pending:
        _decide_drop(g, g.pop("_p_adjusted", None), len(tested))
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
    if notes:
        summary += "; " + "; ".join(notes)
    for g in out:
        g.pop("short", None)
    return gates_record(out, summary, model_rec["name"], results.get("suite_name"), str(run.results_path),
                        str(baseline[1].results_path) if baseline is not None else None,
                        datetime.now(timezone.utc).isoformat(timespec="seconds"), sorted(allow))


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
    """The change against `ref` and its one-sided paired test (raw p); `_decide_drop` judges it
    once every gate's p is known (Holm across the gates)."""
    v, r = side.value, ref.value
    res: dict[str, Any] = {"reference": label, "reference_value": r}
    if v is None or r is None or not (math.isfinite(v) and math.isfinite(r)):
        return {**res, "status": "fail", "passed": False, "mode": "threshold-only",
                "message": f"{side.metric} is undefined (null) here or at {label}", "short": "undefined"}
    higher = side.higher_is_better
    delta = v - r
    drop = (-delta if higher else delta) + 0.0  # no -0.0
    res.update(delta=delta, drop=drop)
    change = (f"{side.metric} {_fmt(v)} vs {_fmt(r)} at {label}: "
              + (f"worse by {_fmt(drop)}" if drop > 0 else f"not worse ({'+' if delta >= 0 else ''}{_fmt(delta)})")
              + f" (budget {_fmt_threshold(budget)}")
    short = f"worse by {_fmt(drop)} vs {label} (budget {_fmt_threshold(budget)}"

    # Paired test on per-sample stats, when both sides have them.
    metric_obj = _metric_object(side.results, spec.task, spec.metric)
    new, why_new = side.stats(cache)
    old, why_old = ref.stats(cache)
    reasons = [w for w in (why_new, why_old) if w]
    if metric_obj is None:
        reasons.append(f"metric {spec.metric!r} cannot be re-aggregated by this harness")
    note = ""
    if not reasons:
        st_new, st_old, note = _pair(new, old)
        res["paired_items"] = len(st_new)
        if len(st_new) < 2:
            reasons.append("fewer than 2 test items shared by id")
        else:
            test = compare_worse(metric_obj, st_new, st_old, samples=samples, seed=seed,
                                 confidence=spec.confidence)
            if test["p_value"] is None:
                reasons.append("the paired test gave no p-value")
            else:
                res.update(p_value=test["p_value"], paired_delta=test["delta"], ci=test["ci"], test=test["test"])
    res["_pending"] = {"exceeds": drop > budget + _EPS, "change": change, "short": short, "reasons": reasons,
                       "notes": f"; {note}" if note else "", "alpha": 1 - spec.confidence}
    return res


def _decide_drop(g: dict, p_adjusted: Optional[float], family: int) -> None:
    """Pass/fail of a drop gate: over budget AND significant after Holm over the run's `family` tests."""
    pend = g.pop("_pending")
    exceeds, change, short, notes, alpha = (pend["exceeds"], pend["change"], pend["short"], pend["notes"],
                                            pend["alpha"])
    if pend["reasons"]:
        passed = not exceeds
        why = "; ".join(pend["reasons"])
        g.update(status="pass" if passed else "fail", passed=passed, mode="threshold-only",
                 message=f"{change}); {why}: plain threshold, no significance test{notes}", short=short + ")")
        return
    g["p_adjusted"] = p_adjusted
    significant = p_adjusted < alpha
    adj = f", Holm-adjusted over {family} gate tests" if family > 1 else ""
    test_txt = (f"p{_p_eq(p_adjusted)} {'<' if significant else '>='} {alpha:.3g}, {g['test']} "
                f"on {g['paired_items']} items{adj}")
    if not exceeds:
        verdict, passed = f"within budget ({test_txt})", True
    elif significant:
        verdict, passed = f"significant ({test_txt})", False
    else:
        verdict, passed = f"over budget but not significant ({test_txt}): passes", True
    g.update(status="pass" if passed else "fail", passed=passed, mode="paired-test",
             message=f"{change}); {verdict}{notes}", short=f"{short}, p{_p_eq(p_adjusted)})")
