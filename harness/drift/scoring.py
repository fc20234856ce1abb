"""Teacher-forced probe scoring: per-item NLL, and per-item KL(base ‖ model) against stored base
distributions, with the batching and chunked LM head of harness/backends/scoring.py.

The base model's distribution at each scored position is kept as its top-k log-probabilities
plus the tail's mass 1 - Σ top-k. At a later epoch the model's distribution is coarsened the
same way (its probabilities of the base's top-k tokens, and the rest), and the truncated KL is

    KL_k = Σ_{t in top-k} p_t log(p_t / q_t) + p_tail log(p_tail / q_tail)

which is the exact KL between the two coarsened distributions: by the data-processing
inequality (coarsening is a function of the token), KL_k <= KL(p ‖ q), with equality when
every token outside the base's top-k has the same ratio q/p. The gap is what the tail hides;
tests/test_drift.py checks it against the exact KL on the built-in model.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

import numpy as np
import torch

from harness.backends.scoring import SCORE_CHUNK_BYTES, chunk_tokens, lm_parts
from harness.drift.probe import TokenizedProbe


@dataclass
class BaseDistributions:
    """The base model's top-k log-probabilities at every scored position, items one after another."""

    top_ids: np.ndarray      # uint16 (a vocabulary up to 65,536) or int32 [positions, k]
    top_logp: np.ndarray     # float32 [positions, k]
    offsets: np.ndarray      # int64 [items + 1]: item i's positions are offsets[i]:offsets[i+1]

    @property
    def tail_mass(self) -> float:
        """Mean base probability outside the top k: what the truncated KL cannot see."""
        return float(np.mean(1 - np.exp(self.top_logp.astype(np.float64)).sum(axis=1))) if len(self.top_logp) else 0.0

    @property
    def nbytes(self) -> int:
        return self.top_ids.nbytes + self.top_logp.nbytes + self.offsets.nbytes

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, top_ids=self.top_ids, top_logp=self.top_logp, offsets=self.offsets)
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> "BaseDistributions":
        with np.load(path) as z:
            return cls(z["top_ids"], z["top_logp"], z["offsets"])


@dataclass
class ProbeScores:
    nll: np.ndarray                  # float64 [items]: summed NLL of each item's reply tokens (all, for text)
    tokens: np.ndarray               # int64 [items]: scored tokens (KL's positions)
    nll_tokens: np.ndarray           # int64 [items]: the tokens in `nll`
    kl: Optional[np.ndarray] = None  # float64 [items]: summed truncated KL (with a base)
    base: Optional[BaseDistributions] = None   # captured (with top_k)


def _batches(probe: TokenizedProbe, batch_size: int, pad: int) -> Iterator[tuple[list[int], torch.Tensor, torch.Tensor]]:
    """(item indices, ids, attention mask), items sorted by length so a batch wastes little padding."""
    order = sorted(range(len(probe.input_ids)), key=lambda i: len(probe.input_ids[i]))
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        width = max(len(probe.input_ids[i]) for i in idx)
        ids = torch.full((len(idx), width), pad, dtype=torch.long)
        attn = torch.zeros((len(idx), width), dtype=torch.long)
        for row, i in enumerate(idx):
            n = len(probe.input_ids[i])
            ids[row, :n] = torch.tensor(probe.input_ids[i])
            attn[row, :n] = 1
        yield idx, ids, attn


def truncated_kl(base_logp: torch.Tensor, model_logp_at_base: torch.Tensor) -> torch.Tensor:
    """KL of the coarsened distributions (top-k tokens + tail), per position; inputs [positions, k].

    Element-wise in the inputs' float32 (the log-probabilities are float32 already), each sum
    accumulated in float64: the tails' masses 1 - Σ p come out of that sum, so near-zero tails
    keep their precision (within 1e-8 of an all-float64 computation per position)."""
    p = base_logp.exp()
    head = (p * (base_logp - model_logp_at_base)).sum(-1, dtype=torch.float64)
    p_tail = (1 - p.sum(-1, dtype=torch.float64)).clamp(min=0)
    q_tail = (1 - model_logp_at_base.exp().sum(-1, dtype=torch.float64)).clamp(min=1e-30)
    tail = torch.where(p_tail > 0, p_tail * (p_tail.clamp(min=1e-30).log() - q_tail.log()), torch.zeros_like(p_tail))
    return head + tail


@torch.inference_mode()
def score_probe(model, probe: TokenizedProbe, batch_size: int, *, top_k: int = 0,
                base: Optional[BaseDistributions] = None, chunk_bytes: int = SCORE_CHUNK_BYTES,
                full_logprobs: Optional[list] = None) -> ProbeScores:
    """Per-item NLL (and KL against `base`); `top_k` > 0 also captures this model's distributions.

    `full_logprobs`, a list, receives each batch's full log-probabilities (tests and benchmarks:
    the exact KL)."""
    decoder, head, after_head = parts = lm_parts(model)
    device = next(model.parameters()).device
    n = len(probe.input_ids)
    nll, kl = np.zeros(n), np.zeros(n)
    tokens = np.array([max(len(x) - 1, 0) for x in probe.input_ids], dtype=np.int64)
    weights = [_nll_weights(probe, i) for i in range(n)]
    nll_tokens = np.array([int(w.sum()) for w in weights], dtype=np.int64)
    tops: list = [None] * n
    was_training = model.training
    model.eval()
    try:
        for idx, ids, attn in _batches(probe, batch_size, _pad_id(model)):
            ids, attn = ids.to(device), attn.to(device)
            out = decoder(input_ids=ids, attention_mask=attn, use_cache=False)
            hidden = out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]
            valid = attn[:, 1:].bool()
            rows = valid.nonzero()[:, 0]
            states, targets = hidden[:, :-1][valid], ids[:, 1:][valid]
            w = torch.cat([torch.from_numpy(weights[i]) for i in idx]).to(device)   # same order as targets
            del out, hidden
            if base is not None:   # the base's rows in the same order: item by item, positions ascending
                sel = np.concatenate([np.arange(base.offsets[i], base.offsets[i + 1]) for i in idx])
                b_ids = torch.from_numpy(base.top_ids[sel].astype(np.int64)).to(device)
                b_logp = torch.from_numpy(base.top_logp[sel]).to(device)
            sums = torch.zeros(len(idx), dtype=torch.float64, device=device)
            kls = torch.zeros(len(idx), dtype=torch.float64, device=device)
            batch_top_ids, batch_top_logp = [], []
            step = chunk_tokens(head.weight.shape[0], chunk_bytes)
            for s in range(0, states.size(0), step):
                logp = after_head(head(states[s:s + step])).float().log_softmax(-1)
                r = rows[s:s + step]
                sums.index_add_(0, r, -logp.gather(1, targets[s:s + step, None])[:, 0].double() * w[s:s + step])
                if base is not None:
                    kls.index_add_(0, r, truncated_kl(b_logp[s:s + step], logp.gather(1, b_ids[s:s + step])))
                if top_k:
                    v, i = logp.topk(min(top_k, logp.size(-1)), dim=-1)
                    batch_top_logp.append(v.cpu())
                    batch_top_ids.append(i.cpu().numpy().astype(np.uint16 if logp.size(-1) <= 65536 else np.int32))
                if full_logprobs is not None:
                    full_logprobs.append((idx, r.cpu(), logp.cpu()))
                del logp
            for row, i in enumerate(idx):
                nll[i], kl[i] = float(sums[row]), float(kls[row])
            if top_k:
                counts = valid.sum(1).tolist()
                cuts = np.cumsum(counts)[:-1]
                split_ids = np.split(np.concatenate(batch_top_ids), cuts)
                split_logp = np.split(torch.cat(batch_top_logp).numpy(), cuts)
                for row, i in enumerate(idx):
                    tops[i] = (split_ids[row], split_logp[row])
    finally:
        model.train(was_training)
    captured = None
    if top_k:
        offsets = np.concatenate([[0], np.cumsum(tokens)]).astype(np.int64)
        captured = BaseDistributions(np.concatenate([t[0] for t in tops]), np.concatenate([t[1] for t in tops]),
                                     offsets)
    return ProbeScores(nll, tokens, nll_tokens, kl if base is not None else None, captured)


def _nll_weights(probe: TokenizedProbe, i: int) -> np.ndarray:
    """1.0 at each target position whose NLL counts: a conversation's replies, else every position."""
    n = max(len(probe.input_ids[i]) - 1, 0)
    mask = probe.replies[i] if i < len(probe.replies) else None
    return np.asarray(mask, dtype=np.float64)[:n] if mask is not None else np.ones(n)


def _pad_id(model) -> int:
    pad = getattr(model.config, "pad_token_id", None)
    return pad if isinstance(pad, int) else 0


def exact_kl_per_item(base_full: list, model_full: list, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(KL sums, positions) per item from two `full_logprobs` captures of the same probe (same batching)."""
    kl, count = np.zeros(n), np.zeros(n, dtype=np.int64)
    for (idx, rows, bl), (_, _, ql) in zip(base_full, model_full):
        per = (bl.double().exp() * (bl.double() - ql.double())).sum(-1)
        for r, v in zip(rows.tolist(), per.tolist()):
            kl[idx[r]] += v
            count[idx[r]] += 1
    return kl, count
