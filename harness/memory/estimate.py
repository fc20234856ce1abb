"""The estimate: static terms + the largest phase (training, optimizer step, grading) + overhead."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Optional

from harness.memory.activations import CHUNK_TOKENS, CHUNK_VOCAB, _layer_no_gc, _walk_train
from harness.memory.grading import auto_grading_batch, grading_bytes
from harness.memory.plan import TrainPlan, _trainable_dtype
from harness.memory.terms import _optimizer, _weights
from harness.memory.units import BYTES, MiB, _n, fmt_bytes
from harness.sharding import describe, per_gpu_terms

# Constants that are not derived from the model (docs/memory.md, "Framework overhead").
CUDA_CONTEXT_BYTES = 512 * MiB       # CUDA context + cuBLAS/cuDNN handles: NVML sees it, torch does not
ALLOCATOR_OVERHEAD = 0.08            # caching allocator: block rounding and fragmentation (reserved - allocated)
# The folk rule (MISSION.md fact 8): bytes per parameter for full fine-tuning with AdamW in mixed
# precision. Every estimate carries it; folk_rule.py sets it beside the estimate part by part.
FOLK_RULE_BYTES_PER_PARAM = 17.5


TERM_ORDER = ("weights", "master_weights", "gradients", "optimizer", "optimizer_step", "activations",
              "logits", "generation", "allocator", "cuda_context")
TERM_LABELS = {
    "weights": "weights", "master_weights": "fp32 master weights", "gradients": "gradients",
    "optimizer": "optimizer states", "optimizer_step": "optimizer step (transient)",
    "activations": "activations", "logits": "logits / loss buffers", "generation": "grading (KV cache, scoring)",
    "allocator": "allocator overhead", "cuda_context": "CUDA context",
}


@dataclass
class Estimate:
    """Peak memory by term (bytes). `total` is the peak: static terms + the largest phase + overhead."""

    terms: dict                  # every term, bytes
    total: int
    phases: dict                 # train / step / eval: the dynamic bytes of each phase
    peak_phase: str
    saved_for_backward: dict     # what autograd holds at the end of the forward: {layers, head}
    trainable_params: int
    total_params: int
    base_params: int
    folk_rule_bytes: int
    formulas: dict               # term → formula with the numbers filled in
    notes: list
    plan: Optional[TrainPlan] = None    # the plan estimated (grading batch resolved when it was auto)
    grading: dict = field(default_factory=dict)   # batch, why, generation and scoring bytes (grading.py)

    @property
    def trainable_share(self) -> float:
        return self.trainable_params / self.total_params if self.total_params else 0.0

    def stack(self) -> dict:
        """Terms that add up to `total`: the static ones and those of the peak phase."""
        keep = {"train": ("gradients", "activations", "logits"), "step": ("gradients", "optimizer_step"),
                "eval": ("generation",)}[self.peak_phase]
        static = ("weights", "master_weights", "optimizer", "allocator", "cuda_context")
        return {k: self.terms[k] for k in TERM_ORDER if (k in static or k in keep) and self.terms.get(k)}

    def as_dict(self) -> dict:
        return {"total_bytes": self.total, "terms": self.terms, "stack": self.stack(), "phases": self.phases,
                "peak_phase": self.peak_phase, "saved_for_backward": self.saved_for_backward,
                "parameters": {"total": self.total_params, "base": self.base_params,
                               "trainable": self.trainable_params, "trainable_share": self.trainable_share},
                "folk_rule_bytes": self.folk_rule_bytes, "formulas": self.formulas, "notes": self.notes,
                "grading": {k: v for k, v in self.grading.items() if k != "formula"}}


def estimate(plan: TrainPlan) -> Estimate:
    """Peak GPU memory of the plan, term by term (docs/memory.md)."""
    terms = dict.fromkeys(TERM_ORDER, 0)
    formulas: dict[str, str] = {}
    notes = list(plan.notes)
    terms["weights"], formulas["weights"] = _weights(plan)
    trainable = plan.trainable_params
    saved = {"layers": 0, "head": 0}
    train_dyn = step_dyn = 0
    if plan.train:
        gdt = _trainable_dtype(plan)
        terms["gradients"] = trainable * BYTES[gdt]
        formulas["gradients"] = f"{_n(trainable)} trainable params × {BYTES[gdt]} B ({gdt})"
        if plan.master_weights:
            terms["master_weights"] = trainable * 4
            formulas["master_weights"] = f"{_n(trainable)} trainable × 4 B (fp32 copy of half weights)"
        else:
            formulas["master_weights"] = ("none: the weights themselves are fp32" if plan.weight_dtype == "fp32"
                                          else "none: half-precision weights are updated in place")
        terms["optimizer"], formulas["optimizer"], terms["optimizer_step"], formulas["optimizer_step"] = \
            _optimizer(plan)
        walk = _walk_train(plan)
        saved = {"layers": walk["layers"], "head": walk["head"]}
        a, N, R, S = plan.arch, plan.tokens, plan.rows, plan.width
        act = walk["layers"]
        extra = []
        if plan.gradient_checkpointing:
            recompute = _layer_no_gc(plan)
            act += recompute
            extra.append(f"+ one layer recomputed in backward {fmt_bytes(recompute)}")
            if plan.mask == "bool":
                act += R * S * S
                extra.append(f"+ bool mask kept for the recompute {fmt_bytes(R * S * S)}")
            elif plan.mask == "eager":
                act += R * S * S * BYTES[walk["hidden_dtype"]]
                extra.append("+ float mask kept for the recompute")
            if plan.autocast and plan.method == "full":
                copies = plan.inventory.numel({"linear"}) * BYTES[plan.autocast]
                act += copies
                extra.append(f"+ autocast's cached half copies of the weights {fmt_bytes(copies)}")
        if plan.method == "qlora":
            biggest = max((row[1] * row[2] for row in plan.inventory.quantized_linears()), default=0)
            act += biggest * 2
            extra.append(f"+ one dequantized weight {fmt_bytes(biggest * 2)}")
        terms["activations"] = act
        per_tok_layer = (walk["layers"] / max(1, N * a.layers))
        formulas["activations"] = (
            f"saved for backward ≈ {per_tok_layer:,.0f} B/token/layer × {_n(N)} tokens "
            f"({R} × {S}) × {a.layers} layers = {fmt_bytes(walk['layers'])} "
            f"({plan.attn_implementation}, {'checkpointed: layer inputs only' if plan.gradient_checkpointing else 'no checkpointing'}"
            f"{', autocast ' + plan.autocast if plan.autocast else ''}) " + " ".join(extra)).strip()
        terms["logits"] = walk["head"] + walk["head_transient"]
        if plan.loss_impl == "full_logits":
            formulas["logits"] = (f"{_n(N)} tokens × vocab {a.vocab:,} × (4 B log-softmax saved + logits + "
                                  f"4 + 4 B loss gradients) = {fmt_bytes(terms['logits'])}")
        else:
            formulas["logits"] = (f"TRL chunked LM head: saved hidden states, targets, log Z "
                                  f"{fmt_bytes(walk['head'])} + tile min(tokens, {CHUNK_TOKENS}) × "
                                  f"min(vocab, {CHUNK_VOCAB:,}) + fp32 hidden-state gradient "
                                  f"{fmt_bytes(walk['head_transient'])}; no tokens × vocab logits")
        if plan.sharding is not None:   # several GPUs: harness/sharding.py divides the terms per GPU
            terms, how = per_gpu_terms(terms, plan.sharding)
            for k, h in how.items():
                formulas[k] = f"{formulas.get(k, '')} {h}".strip()
            notes.append(describe(plan.sharding))
        train_dyn = terms["gradients"] + terms["activations"] + terms["logits"]
        step_dyn = terms["gradients"] + terms["optimizer_step"]
    else:
        for k in ("gradients", "optimizer", "optimizer_step", "activations", "logits"):
            formulas[k] = "grading only: no training"
    plan, grading = _grading(plan, terms, train_dyn)
    terms["generation"], formulas["generation"] = grading["phase"], grading["formula"]
    eval_dyn = terms["generation"]
    phases = {"train": train_dyn, "step": step_dyn, "eval": eval_dyn}
    peak_phase = max(phases, key=lambda k: (phases[k], k == "train"))
    static = terms["weights"] + terms["master_weights"] + terms["optimizer"]
    allocated = static + phases[peak_phase]
    terms["allocator"] = int(ALLOCATOR_OVERHEAD * allocated)
    formulas["allocator"] = f"{ALLOCATOR_OVERHEAD:.0%} of the allocated peak {fmt_bytes(allocated)} (block rounding, fragmentation)"
    terms["cuda_context"] = CUDA_CONTEXT_BYTES if plan.device == "cuda" else 0
    formulas["cuda_context"] = (f"{fmt_bytes(CUDA_CONTEXT_BYTES)}: CUDA context and library handles (NVML counts "
                                "it, torch's allocator does not)" if plan.device == "cuda" else "CPU: none")
    if not plan.train:
        formulas["optimizer_step"] = formulas["master_weights"] = "grading only"
    total = allocated + terms["allocator"] + terms["cuda_context"]
    if plan.mask == "bool" and plan.padding_free:
        notes.append(f"the packed mask is {plan.width:,}² per layer: packing pays off with flash_attention_2")
    return Estimate(terms=terms, total=int(total), phases=phases, peak_phase=peak_phase,
                    saved_for_backward=saved, trainable_params=trainable, total_params=plan.total_params,
                    base_params=plan.inventory.total,
                    folk_rule_bytes=int(FOLK_RULE_BYTES_PER_PARAM * plan.inventory.total),
                    formulas=formulas, notes=notes, plan=plan, grading=grading)


def _grading(plan: TrainPlan, terms: dict, train_dyn: int) -> tuple[TrainPlan, dict]:
    """The grading batch (resolved when auto) and the grading phase's terms at that batch."""
    why = f"generation.batch_size {plan.eval_batch_size}"
    if plan.eval_batch_auto:
        ceiling = None
        if plan.device == "cuda" and plan.train:
            ceiling = train_dyn                       # grading never above the training phase
        elif plan.device == "cuda" and plan.budget_bytes is not None:
            static = terms["weights"] + terms["master_weights"] + terms["optimizer"]
            ceiling = int((plan.budget_bytes - CUDA_CONTEXT_BYTES) / (1 + ALLOCATOR_OVERHEAD)) - static
        auto, why = auto_grading_batch(plan, ceiling)
        if plan.eval_batch_fixed > auto:
            why += f"; a task's generation.batch_size {plan.eval_batch_fixed} is larger and counts"
        plan = dataclasses.replace(plan, eval_batch_size=max(auto, plan.eval_batch_fixed))
    B = plan.eval_batch_size
    g = grading_bytes(plan, B)
    if not g["phase"]:
        text = "no grading"
    else:
        parts = [f"{k}: {g['formulas'][k]}" for k in ("generation", "scoring", "probe") if g[k]]
        text = f"grading batch {B} ({why}); " + "; ".join(parts) + (" (the larger counts)" if len(parts) > 1 else "")
    return plan, {"batch": B, "auto": plan.eval_batch_auto, "why": why, "generation": g["generation"],
                  "scoring": g["scoring"], "probe": g["probe"], "probe_base": g["probe_base"], "phase": g["phase"],
                  "formula": text, "formulas": g["formulas"]}
