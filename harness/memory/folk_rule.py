"""The 17.5 bytes/parameter folk rule (MISSION.md fact 8) next to the estimate, part by part."""
from __future__ import annotations

from harness.memory.estimate import Estimate
from harness.memory.plan import _trainable_dtype
from harness.memory.units import BYTES, fmt_bytes

# The rule's 17.5 bytes per parameter (estimate.FOLK_RULE_BYTES_PER_PARAM), part by part.
FOLK_RULE_PARTS = {"weights": 2.0, "gradients": 4.0, "optimizer": 8.0, "activations": 2.0, "framework": 1.5}


def folk_rule_rows(est: Estimate) -> list[dict]:
    """The 17.5 bytes/param rule next to the estimate, part by part, with why they differ."""
    p, t, N = est.plan, est.terms, est.base_params
    tr = est.trainable_params
    share = est.trainable_share
    rows = []

    def row(part, estimate, why):
        rule = FOLK_RULE_PARTS[part] * N
        rows.append({"part": part, "rule_bytes_per_param": FOLK_RULE_PARTS[part], "rule_bytes": int(rule),
                     "estimate_bytes": int(estimate), "difference_bytes": int(estimate - rule), "why": why})

    if p.method == "qlora":
        why_w = "NF4 4-bit linears (~0.52 B/param); embeddings and norms fp32 after prepare_model_for_kbit_training"
    elif p.weight_dtype == "fp32":
        why_w = ("the runner keeps fp32 weights (4 B/param) and autocasts to "
                 f"{p.precision}; the rule assumes bf16 weights" if p.autocast else
                 "fp32 training: 4 B/param; the rule assumes bf16 weights")
    else:
        why_w = f"{p.weight_dtype} weights: 2 B/param as the rule" + (" + fp32 master copy" if p.master_weights else "")
    if p.method in ("lora", "qlora") and p.train:
        why_w += f"; + LoRA adapters ({tr:,} params, fp32)"
    row("weights", t["weights"] + t["master_weights"], why_w)
    if not p.train:
        why_g = "grading only: no gradients"
    elif p.method == "full":
        why_g = f"{BYTES[_trainable_dtype(p)]} B per param ({_trainable_dtype(p)} gradients of every parameter)"
    else:
        why_g = f"only the adapter is trained: {tr:,} params ({share:.2%}), fp32"
    row("gradients", t["gradients"], why_g)
    if not p.train:
        why_o = "grading only: no optimizer"
    else:
        why_o = {"adamw": f"AdamW m and v in {_trainable_dtype(p)}: {2 * BYTES[_trainable_dtype(p)]} B per trainable param",
                 "adamw_8bit": "8-bit m and v: ~2 B per trainable param (embeddings and tensors < 4096 stay 32-bit)",
                 "sgd": "SGD without momentum keeps no state",
                 "adafactor": "Adafactor keeps factored row/column second moments only"}[p.optimizer]
        if p.method != "full":
            why_o += f", for the {tr:,} adapter params only"
    row("optimizer", t["optimizer"], why_o)
    if p.train:
        per_tok = (t["activations"] + t["logits"]) / max(1, p.tokens)
        why_a = (f"activations scale with batch × sequence, not parameters: {p.tokens:,} tokens per micro-batch × "
                 f"{per_tok:,.0f} B/token ({p.attn_implementation}, "
                 f"{'gradient checkpointing' if p.gradient_checkpointing else 'no checkpointing'}; "
                 f"loss buffers {fmt_bytes(t['logits'])} with vocabulary {p.arch.vocab:,})")
        act = t["activations"] + t["logits"]
    else:
        why_a, act = "grading only: no activations kept for backward", 0
    if est.peak_phase == "eval":
        act = t["generation"]
        why_a = (f"the peak is grading, not training: {fmt_bytes(t['generation'])} for the grading batch of "
                 f"{p.eval_batch_size} (KV cache, scoring); the rule has no such term")
    elif est.peak_phase == "step":
        act = t["optimizer_step"]
        why_a = "the peak is the optimizer step (foreach temporaries), after activations are freed"
    row("activations", act, why_a)
    row("framework", t["allocator"] + t["cuda_context"],
        "CUDA context (a constant) + allocator overhead (8% of the peak); not proportional to parameters")
    return rows
