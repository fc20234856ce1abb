"""Preflight: the plan, its estimate, the budget and the remedy; rendered for `harness preflight`."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from harness.builtin import builtin_path
from harness.builtin_recipes import BUILTIN_PREFIX
from harness.memory.budget import resolve_budget
from harness.memory.configs import ModelConfigError, _offline
from harness.memory.estimate import FOLK_RULE_BYTES_PER_PARAM, TERM_LABELS, TERM_ORDER, Estimate, estimate
from harness.memory.folk_rule import folk_rule_rows
from harness.memory.plan import SharedPlan, TrainPlan, plan_from_suite
from harness.memory.remedies import suggest_fix
from harness.memory.units import fmt_bytes


def _tokenizer_for(spec, allow_download: bool = False, path: Optional[str] = None):
    """The model's tokenizer when it is at hand (local dir, built-in cache, HF cache); else None."""
    target = path or spec.path
    try:
        if target.startswith(BUILTIN_PREFIX):
            target = str(builtin_path(target[len(BUILTIN_PREFIX):]))
            if not (Path(target) / "tokenizer_config.json").exists():
                return None
        elif Path(target).expanduser().is_dir():
            if not (Path(target).expanduser() / "tokenizer_config.json").exists():
                return None
        elif not allow_download:
            from huggingface_hub import try_to_load_from_cache

            hit = try_to_load_from_cache(target, "tokenizer_config.json")
            if not isinstance(hit, str):
                return None
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(target, local_files_only=not allow_download)
    except Exception:  # no tokenizer: the estimate falls back to max_seq_len and says so
        return None


@dataclass
class PreflightResult:
    plan: TrainPlan
    estimate: Estimate
    budget: Optional[int]
    budget_source: str
    fix: list

    @property
    def fits(self) -> Optional[bool]:
        return None if self.budget is None else self.estimate.total <= self.budget

    def as_dict(self) -> dict:
        return {"model": self.plan.model_name, "plan": self.plan.describe(), "estimate": self.estimate.as_dict(),
                "folk_rule": folk_rule_rows(self.estimate), "budget_bytes": self.budget,
                "budget_source": self.budget_source, "fits": self.fits,
                "fix": [s.as_dict() for s in self.fix],
                "fix_total_bytes": self.fix[0].total_after if self.fix else None,
                "fix_fits": self.fix[0].fits if self.fix else None}


def preflight(suite, model_spec, gpu_memory: Optional[str] = None, tokenizer=None, allow_download: bool = False,
              budget: Optional[tuple] = None, shared: Optional[SharedPlan] = None) -> PreflightResult:
    """`shared`: the model's plan as a training run built it (on a GPU: the preflight's target)."""
    if shared is not None:
        plan = shared.copy(device="cuda")
    else:
        tok = tokenizer if tokenizer is not None else _tokenizer_for(model_spec, allow_download)
        plan = plan_from_suite(suite, model_spec, sample_tokenizer=tok)
    limit, source = budget if budget is not None else resolve_budget(gpu_memory, suite)
    plan.budget_bytes = limit
    est = estimate(plan)
    fix = suggest_fix(plan, limit) if (limit is not None and est.total > limit) else []
    return PreflightResult(est.plan, est, limit, source, fix)


def run_preflight(suite, gpu_memory: Optional[str], as_json: bool, console) -> int:
    """`harness preflight`: the breakdown for every model; exit 0 fits (or no budget), 3 does not fit."""
    budget = resolve_budget(gpu_memory, suite)
    results = [preflight(suite, spec, budget=budget) for spec in suite.models]
    fits = all(r.fits is not False for r in results)
    if as_json:
        doc = {"suite": suite.name, "fits": fits, "models": [r.as_dict() for r in results]}
        console.print_json(json.dumps(doc, default=str))
    else:
        for r in results:
            render_preflight(r, console)
    return 0 if fits else 3


def _method_text(p: TrainPlan) -> str:
    if not p.train:
        return f"grading only ({p.weight_dtype} weights)"
    m = {"full": "full fine-tuning", "lora": f"LoRA r={p.lora_r}", "qlora": f"QLoRA r={p.lora_r} (NF4)"}[p.method]
    prec = (f"{p.precision} autocast over {p.weight_dtype} weights" if p.autocast
            else f"{p.precision}" + (f" ({p.weight_dtype} weights)" if p.weight_dtype != p.precision else ""))
    return (f"{m} · {p.optimizer} · {prec} · {p.attn_implementation} · "
            f"{'gradient checkpointing' if p.gradient_checkpointing else 'no gradient checkpointing'}")


def _share(x: float) -> str:
    return f"{x:.2%}" if x >= 0.01 else f"{x:.4%}"


def render_preflight(r: PreflightResult, console) -> None:
    """One line per term (estimate and its formula), the folk rule side by side, verdict, remedy."""
    p, e = r.plan, r.estimate

    def out(text: str = "") -> None:
        console.print(text, highlight=False, soft_wrap=True)

    out(f"[bold]memory preflight: {p.model_name}[/]  [dim](config {p.config_source})[/]")
    out(f"  {_method_text(p)}")
    out(f"  parameters {e.total_params:,}" + (f" · trainable {e.trainable_params:,} = {_share(e.trainable_share)}"
                                              if p.train else ""))
    if p.train:
        shape = (f"1 packed row of {p.batch_size} × {p.seq_len} tokens" if p.padding_free
                 else f"{p.batch_size} × {p.seq_len} tokens")
        out(f"  micro-batch {shape} · grad_accum {p.grad_accum} · "
            f"loss: {'TRL chunked LM head' if p.loss_impl == 'chunked' else 'full logits'}")
        out(f"  length: {p.length_source}")
    if p.eval_batch_size:
        out(f"  grading: batch {p.eval_batch_size}"
            + (f" ({e.grading['why']})" if p.eval_batch_auto else "")
            + f", prompt {p.eval_prompt_len} + {p.eval_new_tokens} new tokens, "
            f"scoring {p.eval_score_len} tokens ({p.eval_length_source})")
    out()
    stack = e.stack()
    width = max(len(TERM_LABELS[k]) for k in TERM_ORDER) + 2
    for k in TERM_ORDER:
        v = e.terms.get(k, 0)
        if not v and k not in ("weights", "gradients", "optimizer", "activations"):
            continue
        mark = "" if (k in stack or not v) else "  [dim](not at the peak)[/]"
        out(f"  {TERM_LABELS[k]:<{width}}{fmt_bytes(v):>11}  [dim]{e.formulas.get(k, '')}[/]{mark}")
    names = {"train": "training forward/backward", "step": "optimizer step", "eval": "grading"}
    out(f"  [bold]{'total (peak)':<{width}}{fmt_bytes(e.total):>11}[/]  [dim]static terms + the largest phase "
        f"({names[e.peak_phase]}) + overhead[/]")
    static = e.terms["weights"] + e.terms["master_weights"] + e.terms["optimizer"]
    out(f"  [dim]phases on top of the static {fmt_bytes(static)}: "
        + " · ".join(f"{names[k]} {fmt_bytes(v)}" for k, v in e.phases.items() if v or k == "train") + "[/]")
    out()
    out(f"  [bold]the 17.5 bytes/parameter rule[/]: {FOLK_RULE_BYTES_PER_PARAM} × {e.base_params:,} = "
        f"{fmt_bytes(e.folk_rule_bytes)} (estimate {fmt_bytes(e.total)})")
    for row in folk_rule_rows(e):
        diff = row["difference_bytes"]
        out(f"  {row['part']:<12} rule {row['rule_bytes_per_param']:>4g} B/param = {fmt_bytes(row['rule_bytes']):>10}"
            f"   estimate {fmt_bytes(row['estimate_bytes']):>10}   {'+' if diff >= 0 else '-'}"
            f"{fmt_bytes(abs(diff)):<10}  [dim]{row['why']}[/]")
    for note in e.notes:
        out(f"  [yellow]note:[/] {note}")
    out()
    if r.budget is None:
        out(f"  verdict: [dim]{r.budget_source}[/]")
    elif r.fits:
        out(f"  verdict: [green]fits[/] {fmt_bytes(r.budget)} ({r.budget_source}): estimate {fmt_bytes(e.total)}, "
            f"{fmt_bytes(r.budget - e.total)} to spare")
    else:
        out(f"  verdict: [red]does not fit[/] {fmt_bytes(r.budget)} ({r.budget_source}): estimate "
            f"{fmt_bytes(e.total)}")
        if r.fix and r.fix[0].fits:
            out("  first configuration that fits (practitioners' order; changes it does not need undone):")
        elif r.fix:
            out("  [red]nothing in the practitioners' list fits[/]; the most it can do:")
        for i, step in enumerate(r.fix, 1):
            out(f"    {i}. {step.change}  [dim]cost: {step.cost}[/]")
        if r.fix:
            out(f"    → estimate {fmt_bytes(r.fix[0].total_after)}"
                + (f", fits {fmt_bytes(r.budget)}" if r.fix[0].fits else f" > {fmt_bytes(r.budget)}"))
    out()


def fits_or_explain(suite, model_spec, gpu_memory: Optional[str] = None,
                    shared: Optional[SharedPlan] = None) -> tuple[bool, str]:
    """The check `train-and-grade` runs first: (fits, one line). No budget or no config: (True, why).
    `shared`: the model's plan, built from the training tokenizer and the rows already loaded."""
    try:
        budget = resolve_budget(gpu_memory, suite)
        if budget[0] is None:
            return True, f"memory preflight: {budget[1]}"
        if shared is not None:
            r = preflight(suite, model_spec, budget=budget, shared=shared)
        else:
            r = preflight(suite, model_spec, tokenizer=_tokenizer_for(model_spec, allow_download=not _offline()),
                          budget=budget)
    except ModelConfigError as e:
        return True, f"memory preflight skipped: {e}"
    e = r.estimate
    head = f"{r.plan.model_name}: estimated peak {fmt_bytes(e.total)}"
    if r.fits:
        return True, f"{head} fits {fmt_bytes(r.budget)} ({r.budget_source})"
    big = sorted(((v, k) for k, v in e.stack().items()), reverse=True)[:2]
    line = (f"{head} > budget {fmt_bytes(r.budget)} ({r.budget_source}); largest: "
            + ", ".join(f"{TERM_LABELS[k]} {fmt_bytes(v)}" for v, k in big))
    if r.fix and r.fix[0].fits:
        line += ("; first configuration that fits: " + "; ".join(f"{s.change} ({s.cost})" for s in r.fix)
                 + f" → {fmt_bytes(r.fix[0].total_after)}")
    return False, line + "; see `harness preflight` for the breakdown, or pass --force"
