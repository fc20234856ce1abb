"""results.json `models[i].memory`: the estimate next to what was measured, per term, with a verdict."""
from __future__ import annotations

from typing import Optional

from harness.memory.budget import resolve_budget
from harness.memory.configs import load_model_config
from harness.memory.estimate import Estimate, estimate
from harness.memory.folk_rule import folk_rule_rows
from harness.memory.plan import SharedPlan, plan_from_suite
from harness.memory.units import fmt_bytes, parse_size
from harness.suite import AUTO_GRADING_BATCH_BOUND


COMPARED_TERMS = ("weights", "gradients", "optimizer", "activations", "logits")


def compare(est: Estimate, measured: Optional[dict]) -> dict:
    """Estimate vs measured, per term (activations and logits: bytes saved for backward)."""
    measured = measured or {}
    sfb = est.saved_for_backward
    expected = {"weights": est.terms["weights"], "gradients": est.terms["gradients"],
                "optimizer": est.terms["optimizer"], "activations": sfb.get("layers", 0), "logits": sfb.get("head", 0)}
    rows: dict[str, dict] = {}

    def put(name, e, m, what):
        rows[name] = {"estimate": int(e), "measured": None if m is None else int(m),
                      "ratio": (round(m / e, 4) if (m is not None and e) else None), "what": what}

    for k in COMPARED_TERMS:
        what = {"activations": "saved for backward up to the final norm",
                "logits": "saved for backward by the LM head and loss"}.get(k, "bytes after the first optimizer step")
        put(k, expected[k], measured.get(k), what)
    if all(measured.get(k) is not None for k in ("weights", "gradients", "optimizer")):
        put("weights+gradients+optimizer", sum(expected[k] for k in ("weights", "gradients", "optimizer")),
            sum(measured[k] for k in ("weights", "gradients", "optimizer")), "exact bytes")
    t = est.terms
    if measured.get("cuda_peak_allocated") is not None:
        put("peak_allocated", est.total - t["allocator"] - t["cuda_context"], measured["cuda_peak_allocated"],
            "torch.cuda.max_memory_allocated over the run")
    if measured.get("cuda_peak_reserved") is not None:
        put("peak_reserved", est.total - t["cuda_context"], measured["cuda_peak_reserved"],
            "torch.cuda.max_memory_reserved over the run")
    if measured.get("nvml_used_peak") is not None:
        put("nvml_used", est.total, measured["nvml_used_peak"] - measured.get("nvml_used_before", 0),
            "NVML used memory, highest sample, minus what was used before training")
    return rows


def memory_record(suite, model_spec, path: Optional[str], measured: Optional[dict], tokenizer=None,
                  shared: Optional[SharedPlan] = None) -> dict:
    """models[i].memory for results.json: estimate by term, measured by term, comparison, verdict.
    `shared`: the model's plan as the run built it (path and tokenizer then unused)."""
    try:
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    except ImportError:
        device = "cpu"
    try:
        if shared is not None:
            plan = shared.copy()
        else:
            mc = load_model_config(path) if path else None
            plan = plan_from_suite(suite, model_spec, sample_tokenizer=tokenizer, device=device, model_config=mc)
        est = estimate(plan)
    except Exception as e:   # the record is a diagnostic: never fail a finished run over it
        return {"verdict": {"status": "skipped", "summary": f"no estimate: {type(e).__name__}: {e}"},
                "measured": {k: v for k, v in (measured or {}).items() if k in COMPARED_TERMS}}
    budget, source = resolve_budget(None, suite, nvml="total") if device == "cuda" else (
        (parse_size(suite.memory.gpu_memory), "suite memory.gpu_memory") if suite.memory.gpu_memory else (None, ""))
    cmp = compare(est, measured)
    per_term = {k: v for k, v in (measured or {}).items() if k in COMPARED_TERMS}
    peaks = {k: v for k, v in (measured or {}).items() if k not in COMPARED_TERMS}
    ratios = [f"{k} {cmp[k]['ratio']:.2f}" for k in ("weights+gradients+optimizer", "activations", "logits")
              if k in cmp and cmp[k]["ratio"] is not None]
    accuracy = ("measured/estimated: " + ", ".join(ratios)) if ratios else "not measured"
    measured_total = peaks.get("nvml_used_peak", 0) - peaks.get("nvml_used_before", 0) if "nvml_used_peak" in peaks \
        else peaks.get("cuda_peak_reserved")
    if budget is None:
        status = "skipped"
        summary = f"no GPU budget ({device} run); estimated peak {fmt_bytes(est.total)}; {accuracy}"
    else:
        worst = max(est.total, measured_total or 0)
        status = "fail" if worst > budget else ("warn" if worst > 0.9 * budget else "pass")
        summary = (f"estimated peak {fmt_bytes(est.total)}"
                   + (f", measured {fmt_bytes(measured_total)}" if measured_total else "")
                   + f" {'fits' if worst <= budget else 'exceeds'} {fmt_bytes(budget)}; {accuracy}")
    return {
        "verdict": {"status": status, "summary": summary},
        "estimate": est.stack(), "measured": per_term, "peaks": peaks, "comparison": cmp,
        "terms": est.terms, "formulas": est.formulas, "total_bytes": est.total, "peak_phase": est.peak_phase,
        "saved_for_backward": est.saved_for_backward, "folk_rule_bytes": est.folk_rule_bytes,
        "folk_rule": folk_rule_rows(est), "budget_bytes": budget, "budget_source": source,
        "parameters": {"total": est.total_params, "trainable": est.trainable_params,
                       "trainable_share": est.trainable_share},
        "plan": plan.describe(), "notes": est.notes,
    }


def grading_estimate(suite, model_spec, path: Optional[str], tokenizer=None, device: str = "cpu",
                     gpu_memory: Optional[str] = None, shared: Optional[SharedPlan] = None) -> dict:
    """The grading batch every epoch of this model uses (resolved when auto) and its estimated terms.
    `shared`: the model's plan as the run built it (path, tokenizer and device then its own).

    {batch, auto, why, generation, scoring}: bytes per term at that batch. When no estimate can
    be made (an unknown architecture...), an auto batch falls back to AUTO_GRADING_BATCH_BOUND.
    """
    fixed = [t.generation.batch_size for t in suite.tasks if t.generation.batch_size != "auto"]
    try:
        if shared is not None:
            plan = shared.copy()
        else:
            mc = load_model_config(path) if path else None
            plan = plan_from_suite(suite, model_spec, sample_tokenizer=tokenizer, device=device, model_config=mc)
        if plan.device == "cuda":   # the card's total: the model may already be loaded
            plan.budget_bytes = resolve_budget(gpu_memory, suite, nvml="total")[0]
        g = estimate(plan).grading
        return {k: g[k] for k in ("batch", "auto", "why", "generation", "scoring")}
    except Exception as e:   # the batch must still be chosen: grading does not depend on the estimate
        batch = max(fixed + ([AUTO_GRADING_BATCH_BOUND] if len(fixed) < len(suite.tasks) else []))
        return {"batch": batch, "auto": len(fixed) < len(suite.tasks), "generation": None, "scoring": None,
                "why": f"auto: the bound {AUTO_GRADING_BATCH_BOUND} (no estimate: {type(e).__name__}: {str(e)[:120]})"}


def grading_record(grading: dict, epochs: list) -> dict:
    """models[i].memory.grading: the batch, and per term the estimate next to the highest measured peak."""
    measured: dict[str, Optional[int]] = {}
    for term in ("generation", "scoring"):
        seen = [e["measured"][term] for e in epochs if e and e.get("measured", {}).get(term) is not None]
        measured[term] = max(seen) if seen else None
    est = {k: grading.get(k) for k in ("generation", "scoring")}
    return {"batch_size": grading.get("batch"), "batch_size_auto": grading.get("auto"), "why": grading.get("why"),
            "estimate": est, "measured": measured,
            "ratio": {k: (round(measured[k] / est[k], 4) if measured[k] is not None and est[k] else None)
                      for k in est},
            "device": next((e.get("device") for e in epochs if e), None),
            "how": next((e.get("how") for e in epochs if e), None)}
