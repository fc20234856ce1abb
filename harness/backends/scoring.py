"""Lean reference scoring: the NLL of the scored tokens without batch × length × vocab logits.

A causal LM's forward builds logits for every position (prompt included) and a full-logits
cross-entropy then copies them to fp32 and runs a log-softmax over all of them: with a 150k-260k
vocabulary that is gigabytes for numbers needed only at the answer's positions. Here the decoder
runs to its final hidden states (no KV cache kept), only the positions whose next token is scored
are gathered, and the LM head is applied to those alone, in chunks of at most
`SCORE_CHUNK_BYTES` of fp32 logits, with the log-softmax in fp32 per chunk. What the model's own
forward does after its LM head (Gemma's final logit soft-capping, Cohere's logit scale, Granite's
logit scaling) is applied to each chunk in the head's dtype, as the model does, so the per-token
NLL is the one the full forward gives.
"""
from __future__ import annotations

from typing import Callable, Optional

import torch

from harness.chat import IGNORE_INDEX

# fp32 logits of one chunk of scored positions; harness.memory.terms mirrors it (the estimate)
SCORE_CHUNK_BYTES = 256 * 1024 ** 2


def lm_parts(model) -> tuple:
    """(decoder, LM head, what the forward does to the head's output) of a causal LM, PEFT or not."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model   # PeftModel
    head = base.get_output_embeddings()
    decoder = base.get_decoder()
    cfg = base.config.get_text_config() if hasattr(base.config, "get_text_config") else base.config
    cap = getattr(cfg, "final_logit_softcapping", None)
    scale = getattr(cfg, "logit_scale", None)            # Cohere: logits * logit_scale
    divide = getattr(cfg, "logits_scaling", None)        # Granite: logits / logits_scaling

    def after_head(logits: torch.Tensor) -> torch.Tensor:
        if cap is not None:
            logits = torch.tanh(logits / cap) * cap
        if scale is not None:
            logits = logits * scale
        if divide is not None:
            logits = logits / divide
        return logits

    return decoder, head, after_head


def chunk_tokens(vocab: int, chunk_bytes: int = SCORE_CHUNK_BYTES) -> int:
    """Scored positions per LM-head chunk: fp32 logits of at most `chunk_bytes`."""
    return max(1, chunk_bytes // (4 * vocab))


def scored_nll(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor,
               chunk_bytes: int = SCORE_CHUNK_BYTES,
               parts: Optional[tuple[torch.nn.Module, torch.nn.Module, Callable]] = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum of NLL, count) per row over the positions whose label is not IGNORE_INDEX.

    `labels` are aligned with `input_ids` (the token at t is predicted from position t - 1).
    """
    decoder, head, after_head = parts or lm_parts(model)
    out = decoder(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
    hidden = out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]
    target = labels[:, 1:]
    scored = target != IGNORE_INDEX
    rows = scored.nonzero()[:, 0]
    states = hidden[:, :-1][scored]          # (scored positions, hidden): copies those rows only
    targets = target[scored]
    del out, hidden
    sums = torch.zeros(input_ids.size(0), dtype=torch.float64, device=input_ids.device)
    step = chunk_tokens(head.weight.shape[0], chunk_bytes)
    for start in range(0, states.size(0), step):
        logits = after_head(head(states[start:start + step]))
        nll = torch.nn.functional.cross_entropy(logits.float(), targets[start:start + step], reduction="none")
        sums.index_add_(0, rows[start:start + step], nll.double())
        del logits, nll
    return sums, scored.sum(dim=1)
