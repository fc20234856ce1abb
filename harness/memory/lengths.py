"""Data-aware lengths: the sequence lengths batches will really have, from a sample of the suite's rows."""
from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Optional

from harness.data import load_rows

REFERENCE_NLL_MAX_LEN = 4096              # harness.backends.transformers_backend.reference_nll

TEMPLATE_TOKENS = 32             # chat-template tokens per conversation (a default system prompt, BOS...)
TEMPLATE_TOKENS_PER_MESSAGE = 8  # role markers and separators per message


@dataclass(frozen=True)
class LoadedRows:
    """Rows a caller has already loaded (the pipeline, before training): the lengths are counted
    from them instead of reading the data again. None: read that part as usual."""

    train: Optional[list] = None    # every training row, the sources concatenated in suite order
    tasks: Optional[list] = None    # each task's rows (a list per task), in suite order


def _render_len(tokenizer, messages, add_generation_prompt=False) -> int:
    out = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=add_generation_prompt,
                                        return_dict=True)
    return len(out["input_ids"])


def _byte_bound(messages, add_generation_prompt=False) -> int:
    """An upper bound on the token count without a tokenizer: byte-level BPE and SentencePiece with
    byte fallback never make more tokens than UTF-8 bytes; plus the template's own tokens."""
    n = TEMPLATE_TOKENS + sum(len(m["content"].encode("utf-8")) + TEMPLATE_TOKENS_PER_MESSAGE for m in messages)
    return n + (TEMPLATE_TOKENS_PER_MESSAGE if add_generation_prompt else 0)


def _sample(rows: list, limit: int, seed: int = 0) -> list:
    if len(rows) <= limit:
        return rows
    return random.Random(seed).sample(rows, limit)


def _data_aware(plan, suite, tokenizer, limit: int = 1000, loaded: Optional[LoadedRows] = None) -> None:
    """Lengths from the data, written into `plan` (plan.py's TrainPlan, being built): tokenized with
    the model's tokenizer, or bounded by byte counts.

    With a tokenizer the training batch width becomes what the data needs (capped by
    max_seq_len; packed rows are max_seq_len long). Without one, training keeps max_seq_len
    (the most a batch can be) and the byte bound only feeds the remedies; grading rows are
    never truncated, so their lengths always come from the data. `loaded`: the rows already in
    memory, counted as if they had been read here.
    """
    exact = tokenizer is not None
    how = "tokenized" if exact else "UTF-8 byte bound"

    def count(messages, gen=False):
        return _render_len(tokenizer, messages, gen) if exact else _byte_bound(messages, gen)

    def load(spec, n, rows=None):
        if not exact:   # the bound reads only the first rows: cheap, and enough for a hint
            if rows is not None:
                return rows[:n]
            spec = spec.model_copy(update={"limit": min(spec.limit or n, n)})
        return rows if rows is not None else load_rows(spec, suite)

    loaded = loaded or LoadedRows()
    if suite.train is not None:
        try:
            if exact and loaded.train is not None:   # (the byte bound reads each source's first rows itself)
                rows = loaded.train
            else:
                rows = [ex for spec in suite.train.data for ex in load(spec, 500)]
            sample = _sample(rows, limit)
            lengths = [count(ex.messages) for ex in sample]
        except Exception as e:  # data behind the network, a tokenizer without a template: say so, go on
            plan.notes.append(f"training data not read ({type(e).__name__}: {str(e)[:120]}); "
                              "lengths from max_seq_len")
            lengths = []
        if lengths:
            plan.lengths, plan.lengths_exact = lengths, exact
            capped = [min(n, plan.max_seq_len) for n in lengths]
            truncated = sum(n > plan.max_seq_len for n in lengths) / len(lengths)
            what = f"{len(sample)} of {len(rows)} rows" if len(sample) < len(rows) else f"{len(rows)} rows"
            if not exact:
                plan.length_source = (f"max_seq_len {plan.max_seq_len} (no tokenizer; by a UTF-8 byte bound the "
                                      f"training rows are at most {max(lengths)} tokens)")
            elif plan.packing:
                total = sum(capped) * (len(rows) / len(sample))
                plan.seq_len = plan.max_seq_len if total >= plan.batch_size * plan.max_seq_len \
                    else max(1, math.ceil(total / plan.batch_size))
                plan.length_source = (f"packed to {plan.seq_len} tokens per sequence "
                                      f"({what} {how}, mean {sum(capped) / len(capped):.0f})")
            else:
                plan.seq_len = max(capped)
                plan.padded = len(set(capped)) > 1
                plan.length_source = (f"{what} {how}: longest {max(lengths)} tokens"
                                      + (f", {truncated:.1%} truncated at max_seq_len {plan.max_seq_len}"
                                         if truncated else f" (max_seq_len {plan.max_seq_len})"))
    prompts, fulls, answers = [], [], []
    try:
        for i, task in enumerate(suite.tasks):
            rows = load(task.data, 300, loaded.tasks[i] if loaded.tasks is not None else None)
            plan.eval_items = max(plan.eval_items, len(rows))
            for ex in _sample(rows, 300):
                prompts.append(count(ex.prompt_messages, True))
                fulls.append(count(ex.messages))
                answers.append(max(1, fulls[-1] - prompts[-1] + TEMPLATE_TOKENS_PER_MESSAGE))
    except Exception as e:
        plan.notes.append(f"grading data not read ({type(e).__name__}); grading lengths from max_seq_len")
        return
    if prompts:
        plan.eval_prompt_len = max(prompts)
        plan.eval_score_len = min(max(fulls), REFERENCE_NLL_MAX_LEN)
        plan.eval_answer_len = min(max(answers), plan.eval_score_len)
        plan.eval_length_source = (f"{how}: longest prompt {max(prompts)}, longest scored row "
                                   f"{max(fulls)} tokens")
