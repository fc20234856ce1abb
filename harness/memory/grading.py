"""The grading phase: generation and reference scoring of one grading batch, and the auto batch.

Every epoch's grading runs inside the training job, on top of the static terms (weights,
optimizer states), with the training's autocast (harness/memory/probes.py `grading_phase`). Its
two terms follow the implementation:

* generation (transformers `generate`, harness/backends/transformers_backend.py): the KV cache of
  the batch (prompt + new tokens), the prefill's per-layer working set, and the logits of the last
  position only (`logits_to_keep=1`) with their fp32 copy;
* scoring (harness/backends/scoring.py): the decoder's final hidden states (no KV cache kept), the
  decoder's per-layer working set, then the gathered hidden states of the scored positions and one
  LM-head chunk of at most SCORE_CHUNK_BYTES of fp32 logits (head output, fp32 copy, log-softmax);
* probe (harness/drift/scoring.py, when drift is measured): scoring of every position of the batch
  with the base's top-k rows beside it; the base's stored distributions are host memory.

`generation.batch_size: auto` (the default) picks the largest grading batch whose phase stays at
or below the training phase (on a GPU), or within the budget for a grading-only job; on CPU, or
without a budget for a grading-only job, it is AUTO_GRADING_BATCH_BOUND.
"""
from __future__ import annotations

from typing import Optional

from harness.memory.plan import TrainPlan
from harness.memory.units import BYTES, MiB, fmt_bytes
from harness.suite import AUTO_GRADING_BATCH_BOUND

SCORE_CHUNK_BYTES = 256 * MiB    # harness.backends.scoring.SCORE_CHUNK_BYTES (a test keeps them equal)
AUTO_GRADING_BATCH_MAX = 128     # the largest auto batch on a GPU: generation gains little beyond


def eval_dtypes(plan: TrainPlan) -> dict:
    """Bytes per element during grading: the residual stream (hidden), linear outputs (compute),
    keys and values in the cache. Grading runs under the training's autocast: linears compute in
    half precision while fp32 weights keep the residual stream (and Llama-style normed keys) fp32."""
    w = BYTES[plan.eval_dtype]
    c = BYTES[plan.autocast] if plan.autocast else w
    k = w if (plan.arch.qk_norm and plan.arch.norm == "llama") else c
    return {"hidden": w, "compute": c, "key": k, "value": c}


def kv_cache_bytes(plan: TrainPlan, batch: int, length: int) -> int:
    a, d = plan.arch, eval_dtypes(plan)
    per_tok = a.kv_heads * a.head_dim * (d["key"] + d["value"])
    full_layers = a.layers - a.sliding_layers
    window = min(length, a.sliding_window or length)
    return batch * per_tok * (full_layers * length + a.sliding_layers * window)


def forward_working_set(plan: TrainPlan, batch: int, length: int) -> int:
    """Largest per-layer working set of an inference forward (no autograd): freed layer by layer."""
    a, d = plan.arch, eval_dtypes(plan)
    b, hb = d["compute"], d["hidden"]
    tok = batch * length
    work = tok * (3 * a.hidden * max(hb, 4) + (a.heads + 2 * a.kv_heads) * a.head_dim * b * 2 + 3 * a.inter * b)
    if plan.attn_implementation == "eager":
        work += batch * a.heads * length * length * (b + 4)
    elif plan.attn_implementation == "sdpa":
        work += batch * length * length * (1 + b)
    return work


# Generation's fp32 buffers of one vocabulary row each beside the head output, measured
# (transformers 5 `_sample`, TorchDispatchMode, benchmarks/memory_estimate_vs_measured.py):
# greedy: the step's `.to(copy=True, dtype=float32)` and the previous step's copy, which
# `next_token_logits` still holds while the next forward runs (2 × 4 B); sampling adds the
# processed scores and probabilities still held from the previous step and the processors'
# own tensors: temperature and the default top-k 50 (masked copies, a bool mask): 21 B in
# all; top-p < 1 also sorts (values 4 B + int64 indices 8 B), takes softmax and cumsum, and
# two bool masks: 38 B in all.
GENERATION_ROW_BYTES = {"greedy": 8, "sample": 21, "sample_top_p": 38}


def _head_bytes(plan: TrainPlan, rows: int, log_softmax: bool) -> int:
    """LM-head output for `rows` positions (+ soft-capping temporaries) and what is made of it:
    for generation the fp32 buffers of GENERATION_ROW_BYTES; for scoring the fp32 copy (free
    when the head already computes in fp32) and the fp32 log-softmax."""
    a, c = plan.arch, eval_dtypes(plan)["compute"]
    made = (4 * (c != 4) + 4) if log_softmax else GENERATION_ROW_BYTES[plan.eval_sampling]
    per = c + made + (2 * c if a.final_softcap else 0)
    return rows * a.vocab * per


def score_chunk_tokens(plan: TrainPlan) -> int:
    return max(1, SCORE_CHUNK_BYTES // (4 * plan.arch.vocab))


def generation_bytes(plan: TrainPlan, batch: int) -> tuple[int, str]:
    P, G = plan.eval_prompt_len, plan.eval_new_tokens
    kv = kv_cache_bytes(plan, batch, P + G)
    work = forward_working_set(plan, batch, P)
    head = _head_bytes(plan, batch, log_softmax=False)
    a = plan.arch
    d = eval_dtypes(plan)
    text = (f"KV cache {a.layers} layers × {a.kv_heads} kv heads × {a.head_dim} × ({d['key']} + {d['value']} B) × "
            f"batch {batch} × ({P} prompt + {G} new) tokens = {fmt_bytes(kv)}"
            + (f" (sliding layers keep {a.sliding_window})" if a.sliding_layers else "")
            + f" + max(prefill working set {fmt_bytes(work)}, last-position logits batch {batch} × vocab "
              f"{a.vocab:,} × ({d['compute']} + {GENERATION_ROW_BYTES[plan.eval_sampling]} B fp32 "
              f"{'copies, this step and the last' if plan.eval_sampling == 'greedy' else 'copies and sampling buffers'})"
              f" {fmt_bytes(head)})")
    return kv + max(work, head), text


def scoring_bytes(plan: TrainPlan, batch: int) -> tuple[int, str]:
    S = plan.eval_score_len
    n = batch * (plan.eval_answer_len or S)
    a, d = plan.arch, eval_dtypes(plan)
    hidden = batch * S * a.hidden * d["hidden"]
    work = forward_working_set(plan, batch, S)
    chunk = min(n, score_chunk_tokens(plan))
    gathered = n * a.hidden * d["hidden"]
    head = _head_bytes(plan, chunk, log_softmax=True)
    text = (f"hidden states batch {batch} × {S} tokens × {a.hidden} × {d['hidden']} B = {fmt_bytes(hidden)} + "
            f"max(decoder working set {fmt_bytes(work)}, scored positions {n:,} × {a.hidden} × {d['hidden']} B "
            f"{fmt_bytes(gathered)} + one LM-head chunk {chunk:,} × vocab {a.vocab:,} × "
            f"({d['compute']}{' + 4 fp32 copy' if d['compute'] != 4 else ''} + 4 log-softmax"
            f"{' + 2 × ' + str(d['compute']) + ' soft-cap' if a.final_softcap else ''}) B "
            f"{fmt_bytes(head)}); no batch × length × vocab logits")
    return hidden + max(work, gathered + head), text


def probe_base_bytes(plan: TrainPlan) -> int:
    """The base model's stored distributions (host memory and the run directory, never the GPU):
    per scored position top-k token ids (2 B up to a 65,536 vocabulary, else 4) and fp32 log-probs."""
    return plan.probe_positions * plan.probe_top_k * ((2 if plan.arch.vocab <= 65536 else 4) + 4)


def probe_bytes(plan: TrainPlan, batch: int) -> tuple[int, str]:
    """The drift probe's batch (harness/drift/scoring.py): scoring of every position of max_seq_len
    items, plus per LM-head chunk the base's top-k rows on the device (int64 ids + fp32 log-probs)
    and this model's log-probs gathered at them (fp32 and fp64 for the KL)."""
    S, k = plan.probe_len or plan.eval_score_len, plan.probe_top_k
    a, d = plan.arch, eval_dtypes(plan)
    n = batch * S
    hidden = n * a.hidden * d["hidden"]
    work = forward_working_set(plan, batch, S)
    chunk = min(n, score_chunk_tokens(plan))
    base_rows = n * k * (8 + 4)
    head = _head_bytes(plan, chunk, log_softmax=True) + chunk * k * (4 + 3 * 8)
    text = (f"hidden states batch {batch} × {S} tokens × {a.hidden} × {d['hidden']} B = {fmt_bytes(hidden)} + "
            f"max(decoder working set {fmt_bytes(work)}, every position {n:,} × ({a.hidden} × {d['hidden']} B + "
            f"top-{k} base rows × 12 B) {fmt_bytes(n * a.hidden * d['hidden'] + base_rows)} + one LM-head chunk "
            f"{chunk:,} with its KL {fmt_bytes(head)}); the base's distributions {fmt_bytes(probe_base_bytes(plan))} "
            f"stay in host memory")
    return hidden + max(work, n * a.hidden * d["hidden"] + base_rows + head), text


def grading_bytes(plan: TrainPlan, batch: int) -> dict:
    """{generation, scoring, probe, phase, formulas} of one grading batch (the phase is the largest term)."""
    gen = score = probe = 0
    gen_text = score_text = probe_text = ""
    if batch and plan.eval_generates:
        gen, gen_text = generation_bytes(plan, batch)
    if batch and plan.eval_scores:
        score, score_text = scoring_bytes(plan, batch)
    if batch and plan.probe_top_k:
        probe, probe_text = probe_bytes(plan, batch)
    return {"generation": gen, "scoring": score, "probe": probe, "phase": max(gen, score, probe),
            "probe_base": probe_base_bytes(plan),
            "formulas": {"generation": gen_text, "scoring": score_text, "probe": probe_text}}


def auto_bound(plan: TrainPlan) -> int:
    """The most an auto batch can be: the bound on CPU or without a budget (grading-only), else
    AUTO_GRADING_BATCH_MAX; never more than the largest task's rows."""
    gpu = plan.device == "cuda" and (plan.train or plan.budget_bytes is not None)
    bound = AUTO_GRADING_BATCH_MAX if gpu else AUTO_GRADING_BATCH_BOUND
    return max(1, min(bound, plan.eval_items)) if plan.eval_items else bound


def auto_grading_batch(plan: TrainPlan, ceiling: Optional[int]) -> tuple[int, str]:
    """(batch, why): the largest batch ≤ auto_bound whose grading phase is ≤ `ceiling` (1 at least)."""
    bound = auto_bound(plan)
    if ceiling is None:
        return bound, (f"auto: the bound {AUTO_GRADING_BATCH_BOUND} on CPU or without a budget"
                       + (f", capped by the task's {plan.eval_items} rows" if bound < AUTO_GRADING_BATCH_BOUND else ""))
    lo, hi = 1, bound
    if grading_bytes(plan, hi)["phase"] <= ceiling:
        lo = hi
    else:
        while hi - lo > 1:          # the phase grows with the batch: bisect
            mid = (lo + hi) // 2
            if grading_bytes(plan, mid)["phase"] <= ceiling:
                lo = mid
            else:
                hi = mid
    return lo, f"auto: the largest batch ≤ {bound} with grading ≤ {fmt_bytes(max(0, ceiling))}"
