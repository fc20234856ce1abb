"""The activation walk: what autograd saves for backward in one training forward, op by op."""
from __future__ import annotations

import dataclasses
from typing import Optional

from harness.memory.plan import TrainPlan
from harness.memory.units import BYTES

CHUNK_TOKENS, CHUNK_VOCAB = 4096, 32768   # TRL's chunked LM head tile (trl.kernels.chunked_logprob)


class _T:
    """A tensor of the walk: size, dtype, whether autograd tracks it, whether it is a parameter."""

    __slots__ = ("id", "n", "dt", "rg", "param")

    def __init__(self, tid: int, n: int, dt: str, rg: bool, param: bool):
        self.id, self.n, self.dt, self.rg, self.param = tid, n, dt, rg, param

    @property
    def nbytes(self) -> int:
        return self.n * BYTES[self.dt]


def _promote(a: str, b: str) -> str:
    if "fp64" in (a, b):
        return "fp64"
    if "fp32" in (a, b):
        return "fp32"
    return a if a in ("bf16", "fp16") else b


class _Walk:
    """Replays one training forward op by op and records what autograd saves for backward.

    Each op saves exactly what PyTorch's derivative formulas save, only for inputs whose gradient
    is needed (mul saves the *other* operand of each input that requires grad, a linear saves its
    input when the weight is trained and its weight when the input needs a gradient, ...).
    Storages are counted once, parameters never (they are the weights term). Validated against
    saved_tensors_hooks on CPU (tests/test_memory.py).
    """

    def __init__(self, plan: TrainPlan):
        self.p = plan
        self.ac = plan.autocast
        self.cpu = plan.device == "cpu"
        self.saved: dict[int, tuple[int, str]] = {}
        self.phase = "layers"
        self.counting = True
        self._next = 0
        self.qdt = "bf16"   # QLoRA compute dtype (bnb_4bit_compute_dtype)

    # ---- tensors
    def t(self, n: int, dt: str, rg: bool = False, param: bool = False) -> _T:
        self._next += 1
        return _T(self._next, int(n), dt, rg, param)

    def save(self, *xs: Optional[_T]) -> None:
        if not self.counting:
            return
        for x in xs:
            if x is not None and not x.param:
                self.saved.setdefault(x.id, (x.nbytes, self.phase))

    def cast(self, x: _T, dt: str) -> _T:
        return x if x.dt == dt else self.t(x.n, dt, x.rg)

    # ---- elementwise
    def mul(self, a: _T, b: _T) -> _T:
        out = self.t(max(a.n, b.n), _promote(a.dt, b.dt), a.rg or b.rg)
        if a.rg:
            self.save(b)
        if b.rg:
            self.save(a)
        return out

    def add(self, a: _T, b: _T) -> _T:
        return self.t(max(a.n, b.n), _promote(a.dt, b.dt), a.rg or b.rg)

    def saves_input(self, x: _T, dt: Optional[str] = None) -> _T:   # pow, silu, gelu
        if x.rg:
            self.save(x)
        return self.t(x.n, dt or x.dt, x.rg)

    def dropout(self, x: _T, p: float) -> _T:
        if p <= 0:
            return x
        if self.cpu:   # CPU: input * (bernoulli noise / (1-p)); mul saves the noise
            return self.mul(x, self.t(x.n, x.dt))
        out = self.t(x.n, x.dt, x.rg)   # CUDA native_dropout saves a one-byte mask
        if x.rg:
            self.save(self.t(x.n, "bool"))
        return out

    # ---- layers
    def linear(self, x: _T, w: _T, n_in: int, n_out: int, quant: bool = False, lora: Optional[tuple] = None) -> _T:
        rows = x.n // n_in
        if quant:   # bnb Linear4bit: computes in bf16 from a dequantized weight, saves nothing but the
            out = self.t(rows * n_out, x.dt, x.rg)   # (quantized) weight, returns the input's dtype
        else:
            xc = self.cast(x, self.ac) if self.ac else x
            wc = self.cast(w, self.ac) if self.ac else w
            out = self.t(rows * n_out, xc.dt, x.rg or w.rg)
            if w.rg:
                self.save(xc)
            if x.rg:
                self.save(wc)
        if lora is not None:
            a_w, b_w, r, p, ldt = lora
            xl = self.cast(x, ldt)                    # PEFT casts the input to the adapter's dtype
            d = self.dropout(xl, p)
            a = self.linear(d, a_w, n_in, r)
            self.linear(a, b_w, r, n_out)
            out = self.t(out.n, out.dt, True)         # result + lora_B(lora_A(dropout(x))) * scaling
        return out

    def rmsnorm(self, x: _T, w: _T, width: int) -> _T:
        xf = self.cast(x, "fp32")
        self.saves_input(xf, "fp32")                          # pow(2)
        vectors = x.n // width
        r = self.t(vectors, "fp32", xf.rg)                    # rsqrt(mean + eps) saves its result
        if r.rg:
            self.save(r)
        hs = self.mul(xf, r)
        if self.p.arch.norm == "gemma":                       # (x * (1 + w.float())).type_as(x)
            w1 = self.t(w.n, "fp32", w.rg)
            return self.cast(self.mul(hs, w1), x.dt)
        return self.mul(w, self.cast(hs, x.dt))               # w * x.to(input_dtype)


def _walk_train(plan: TrainPlan) -> dict:
    """Saved-for-backward bytes of one micro-batch: by phase, per layer, and what GC keeps."""
    a, W = plan.arch, _Walk(plan)
    R, S = plan.rows, plan.width
    N = R * S
    h, f, nh, nkv, d, V = a.hidden, a.inter, a.heads, a.kv_heads, a.head_dim, a.vocab
    full = plan.method == "full"
    quant = plan.method == "qlora"
    wdt = plan.weight_dtype
    other_dt = "fp32" if quant else wdt       # prepare_model_for_kbit_training casts the rest to fp32
    targets = plan.inventory.target_suffixes(plan.lora_targets) if plan.method in ("lora", "qlora") else set()

    def weight(n, kind="linear") -> _T:
        dt = other_dt if kind != "linear" else wdt
        return W.t(n, dt, rg=full, param=True)

    def lin(x, name, n_in, n_out):
        lora = None
        if name in targets:
            lora = (W.t(n_in * plan.lora_r, "fp32", True, True), W.t(plan.lora_r * n_out, "fp32", True, True),
                    plan.lora_r, plan.lora_dropout, "fp32")
        return W.linear(x, weight(n_in * n_out), n_in, n_out, quant=quant, lora=lora)

    def norm(x, width):
        return W.rmsnorm(x, weight(width, "norm"), width)

    hid_dt = other_dt      # embedding output (embeddings are never autocast)
    cos = [W.t(S * d, hid_dt) for _ in range(2 * a.rope_tables)]   # cos/sin (1, seq, head_dim), shared by layers

    def rope(x, table):
        c, s_ = cos[2 * table], cos[2 * table + 1]
        return W.add(W.mul(x, c), W.mul(W.t(x.n, x.dt, x.rg), s_))

    def attention(q, k, v):
        impl = plan.attn_implementation
        cdt = W.ac or q.dt
        if impl == "eager":
            kr = W.t(N * nh * d, k.dt, k.rg) if nkv < nh else k
            vr = W.t(N * nh * d, v.dt, v.rg) if nkv < nh else v
            qc, kc = W.cast(q, cdt), W.cast(kr, cdt)
            rg = q.rg or k.rg
            if rg:
                W.save(qc, kc)                                   # bmm saves both operands
            scores = W.t(R * nh * S * S, "fp32", rg)             # softmax(dtype=float32) saves its result
            if rg:
                W.save(scores)
            pc, vc = W.cast(W.cast(scores, q.dt), cdt), W.cast(vr, cdt)
            if rg or v.rg:
                W.save(pc, vc)
            return W.t(N * nh * d, cdt, rg or v.rg)              # transpose(1, 2).contiguous()
        rg = q.rg or k.rg or v.rg
        gqa_native = impl == "flash_attention_2" or plan.mask == "none"
        if not gqa_native and nkv < nh:                          # repeat_kv before SDPA when a mask is given
            k, v = W.t(N * nh * d, k.dt, k.rg), W.t(N * nh * d, v.dt, v.rg)
        qc, kc, vc = W.cast(q, cdt), W.cast(k, cdt), W.cast(v, cdt)
        out = W.t(N * nh * d, cdt, rg)
        if rg:
            W.save(qc, kc, vc, out, W.t(N * nh, "fp32"))         # + logsumexp
            if plan.mask == "bool" and impl == "sdpa":
                W.save(W.t(R * S * S, cdt))                      # the bool mask, converted per call
        return out

    def layer(x, li):
        table = 1 if (a.rope_tables > 1 and li < len(a.sliding) and a.sliding[li]) else 0
        res = x
        hs = norm(x, h)
        q = lin(hs, "q_proj", h, nh * d)
        k = lin(hs, "k_proj", h, nkv * d)
        v = lin(hs, "v_proj", h, nkv * d)
        if a.qk_norm:
            q, k = norm(q, d), norm(k, d)
        q, k = rope(q, table), rope(k, table)
        o = lin(attention(q, k, v), "o_proj", nh * d, h)
        if a.sandwich:
            o = norm(o, h)
        x = W.add(res, o)
        res = x
        hs = norm(x, h)
        g = lin(hs, "gate_proj", h, f)
        u = lin(hs, "up_proj", h, f)
        m = lin(W.mul(W.saves_input(g), u), "down_proj", f, h)
        if a.sandwich:
            m = norm(m, h)
        return W.add(res, m)

    # embedding
    emb = W.t(V * h, other_dt, full, True)
    ids = W.t(N, "int64")
    x = W.t(N * h, emb.dt, emb.rg or plan.gradient_checkpointing)   # GC enables input grads (PEFT too)
    if emb.rg:
        W.save(ids)
    if a.embed_scale:
        x = W.mul(x, W.t(1, emb.dt))
    per_layer: list[int] = []
    for li in range(a.layers):
        before = sum(b for b, _ in W.saved.values())
        if plan.gradient_checkpointing:
            W.save(x)                                            # checkpoint keeps the layer input
            W.counting = False                                   # the rest is recomputed in backward
            x = layer(x, li)
            W.counting = True
        else:
            x = layer(x, li)
        per_layer.append(sum(b for b, _ in W.saved.values()) - before)
    x = norm(x, h)
    W.phase = "head"
    head_transient = 0
    lm_w = emb if a.tied else W.t(V * h, other_dt, full, True)
    cdt = W.ac or (W.qdt if quant else x.dt)
    if plan.loss_impl == "full_logits":
        logits = W.linear(x, lm_w, h, V)
        lf = W.cast(logits, "fp32")
        ls = W.t(N * V, "fp32", lf.rg)
        if ls.rg:
            W.save(ls, W.t(N, "int64"), W.t(1, "fp32"))         # log_softmax result; nll target, weight
        # alive at the start of backward: the logits the model returns; then the loss gradients
        head_transient = N * V * (BYTES[logits.dt] + 4 + 4)
    else:
        compact = not W.cpu                                      # Triton: only labelled positions
        nl = max(1, int(round(R * (S - 1) * plan.labelled_share))) if compact else R * (S - 1)
        if not compact and R == 1:
            hid = x                                              # reshape of a contiguous slice: a view
        else:
            hid = W.t(nl * h, x.dt, x.rg)
        W.save(hid, lm_w, W.t(nl, "int64"), W.t(nl, "fp32"), W.t(nl, "fp32"))   # + targets, log_z, entropy
        if compact:
            W.save(W.t(R * (S - 1), "bool"))                     # masked_scatter keeps the label mask
        else:
            W.save(W.t(R * (S - 1), "bool"), W.t(R * (S - 1), "bool"))   # masked_fill(~mask) twice
        W.save(W.t(1, "int64"))                                  # the token count the loss divides by
        tile = min(nl, CHUNK_TOKENS) * min(V, CHUNK_VOCAB) * BYTES[cdt]
        head_transient = tile + nl * h * 4                       # tile; fp32 gradient of the hidden states
        if full and lm_w.dt != "fp32":
            head_transient += V * h * 4                          # fp32 accumulator of the head's gradient
        if cdt != lm_w.dt:
            head_transient += min(V, CHUNK_VOCAB) * h * BYTES[cdt]
    layers = sum(b for b, ph in W.saved.values() if ph == "layers")
    head = sum(b for b, ph in W.saved.values() if ph == "head")
    return {"layers": layers, "head": head, "head_transient": head_transient, "per_layer": per_layer,
            "tokens": N, "hidden_dtype": hid_dt}


def _layer_no_gc(plan: TrainPlan) -> int:
    """What one decoder layer saves when it is recomputed during backward (gradient checkpointing)."""
    one = dataclasses.replace(plan, gradient_checkpointing=False, arch=dataclasses.replace(plan.arch, layers=2))
    per = _walk_train(one)["per_layer"]
    return per[-1]
