"""Pre-training audits: labels, chat template and data, checked before the first step.

Three audits, each a list of checks with a status (pass / warn / fail), the measured value,
the rule, and examples as evidence:

  labels    on the collated training batches (the trainer's own collator): padding that
            carries a label (must be 0), prompt/template tokens that carry a label (must be 0
            with assistant-only loss), end-of-turn learned, truncation, examples with nothing
            to learn;
  template  chat special tokens written literally into the data, and whether the tokenizer's
            chat template ends an assistant turn with an end-of-turn token;
  data      exact duplicates (hash of the normalised messages) within train and within each
            evaluation set, train rows found in an evaluation set (leakage: whole row, prompt
            only, and near copies by harness.dataprep's MinHash detection), token lengths
            against max_seq_len.

A failed check fails the audit; the pipeline then stops before training unless the suite
sets diagnostics.audit.fail_on_error: false. Thresholds: docs/diagnostics.md.
"""
from __future__ import annotations

import re
from typing import Iterable, Optional

import numpy as np

from harness.chat import IGNORE_INDEX, TokenizedExample, end_of_turn_ids
from harness.dataprep.check import KNOWN_MARKERS
from harness.dataprep.dedup import NearDuplicateIndex, shingles
from harness.dataprep.normalise import conversation_key
from harness.messages import Example
from harness.suite import Suite

EXAMPLES = 3  # evidence rows kept per check


def _check(name: str, status: str, value, rule: str, detail: str = "", examples: Optional[list] = None) -> dict:
    return {"name": name, "status": status, "value": value, "rule": rule, "detail": detail,
            "examples": (examples or [])[:EXAMPLES]}


def _verdict(checks: list[dict]) -> dict:
    bad = [c for c in checks if c["status"] == "fail"]
    warn = [c for c in checks if c["status"] == "warn"]
    if bad:
        return {"status": "fail", "summary": "; ".join(f"{c['name']}: {c['detail']}" for c in bad)}
    if warn:
        return {"status": "warn", "summary": "; ".join(f"{c['name']}: {c['detail']}" for c in warn)}
    return {"status": "pass", "summary": f"{len(checks)} checks passed"}


def run_audits(train_examples: list[Example], tokenized: list[TokenizedExample], tokenizer,
               eval_sets: dict[str, list[Example]], suite: Suite, batches: Iterable[dict] = ()) -> dict:
    """The audits; returns the `audit` section of a model's record in results.json.

    Without a tokenizer and tokenized training data (`harness grade`) the label audit is left
    out and the template and data audits check the evaluation sets (and the suite's training
    data, when it names some, for leakage).
    """
    sections = {}
    if tokenizer is not None and tokenized:
        sections["labels"] = label_audit(batches, tokenized, tokenizer, suite)
    sections["template"] = template_audit(train_examples, eval_sets, tokenizer)
    sections["data"] = data_audit(train_examples, tokenized, eval_sets, suite)
    checks = [dict(c, name=f"{part}.{c['name']}") for part, s in sections.items() for c in s["checks"]]
    return {**sections, "verdict": _verdict(checks)}


# --------------------------------------------------------------------------- labels
def _pad_positions(ids: np.ndarray, attention: Optional[np.ndarray], pad_id: Optional[int],
                   eot: set[int]) -> np.ndarray:
    """Padding positions of one row: attention 0, or a trailing run of pad tokens (pre-padded data).

    When the pad token is also an end-of-turn token (pad = eos), the first token of the run
    is the real end of the answer, not padding.
    """
    pad = np.zeros(len(ids), dtype=bool) if attention is None else attention == 0
    if pad_id is None:
        return pad
    real = np.flatnonzero(~pad)
    end = real[-1] + 1 if len(real) else 0
    k = end
    while k > 0 and ids[k - 1] == pad_id:
        k -= 1
    if pad_id in eot and k < end:
        k += 1
    pad[k:end] = True
    return pad


def label_audit(batches: Iterable[dict], tokenized: list[TokenizedExample], tokenizer, suite: Suite) -> dict:
    train = suite.train
    eot = set(end_of_turn_ids(tokenizer))
    pad_id = tokenizer.pad_token_id
    labelled = pad_labelled = pad_total = tokens = 0
    pad_examples: list[dict] = []
    n_batches = 0
    for batch in batches:
        n_batches += 1
        ids, labels = np.asarray(batch["input_ids"]), np.asarray(batch["labels"])
        att = np.asarray(batch["attention_mask"]) if "attention_mask" in batch else None
        for r in range(ids.shape[0]):
            pad = _pad_positions(ids[r], None if att is None else att[r], pad_id, eot)
            has_label = labels[r] != IGNORE_INDEX
            labelled += int(has_label.sum())
            tokens += len(ids[r])
            pad_total += int(pad.sum())
            bad = int((pad & has_label).sum())
            pad_labelled += bad
            if bad and len(pad_examples) < EXAMPLES:
                pad_examples.append({"batch": n_batches - 1, "row": r, "padding_tokens_with_labels": bad})
    checks = []
    share = pad_labelled / labelled if labelled else 0.0
    checks.append(_check(
        "padding_in_loss", "fail" if pad_labelled else "pass", share,
        "share of label tokens that are padding must be 0 (pad labels must be -100)",
        f"{share:.1%} of label tokens are padding ({pad_labelled} tokens in {n_batches} batches)"
        if pad_labelled else f"no padding carries a label ({n_batches} batches)", pad_examples))

    prompt_labelled = total_labelled = 0
    prompt_examples, no_eot, empty, truncated = [], [], [], []
    for i, t in enumerate(tokenized):
        lab = np.asarray(t.labels)
        mask = np.asarray(t.assistant_mask, dtype=bool)
        has = lab != IGNORE_INDEX
        pad = _pad_positions(np.asarray(t.input_ids), None, pad_id, eot)  # counted by padding_in_loss
        total_labelled += int((has & ~pad).sum())
        wrong = int((has & ~mask & ~pad).sum())
        prompt_labelled += wrong
        if wrong and len(prompt_examples) < EXAMPLES:
            prompt_examples.append({"example": i, "prompt_tokens_with_labels": wrong})
        if t.truncated:
            truncated.append(i)
        if not has.any():
            empty.append(i)
        elif not t.truncated and not any(int(x) in eot for x in lab[has]):
            no_eot.append(i)
    n = max(1, len(tokenized))
    p_share = prompt_labelled / total_labelled if total_labelled else 0.0
    if train.assistant_only_loss:
        checks.append(_check(
            "prompt_tokens_in_loss", "fail" if prompt_labelled else "pass", p_share,
            "with assistant_only_loss, system/user/template tokens must carry no label",
            f"{p_share:.1%} of label tokens are prompt or template tokens" if prompt_labelled
            else "only assistant tokens carry labels", prompt_examples))
    else:
        checks.append(_check("prompt_tokens_in_loss", "pass", p_share,
                             "assistant_only_loss is off: the whole conversation is learned",
                             f"{p_share:.1%} of label tokens are prompt or template tokens (by choice)"))
    no_labels = set(empty)
    learnable = [i for i, t in enumerate(tokenized) if not t.truncated and i not in no_labels]
    eot_share = 1 - len(no_eot) / len(learnable) if learnable else 1.0
    checks.append(_check(
        "end_of_turn_learned", "fail" if eot_share < 0.99 else "pass", eot_share,
        "the end-of-turn token must carry a label in at least 99% of untruncated examples "
        "(else the model never learns to stop)",
        f"end-of-turn is learned in {eot_share:.1%} of untruncated examples", [{"example": i} for i in no_eot]))
    t_share = len(truncated) / n
    checks.append(_check(
        "truncated", "warn" if t_share > suite.diagnostics.audit.max_truncated_share else "pass", t_share,
        f"share of examples cut by max_seq_len={train.max_seq_len} at most "
        f"{suite.diagnostics.audit.max_truncated_share:.0%}",
        f"{t_share:.1%} of training examples exceed max_seq_len={train.max_seq_len}",
        [{"example": i} for i in truncated]))
    e_share = len(empty) / n
    checks.append(_check(
        "no_trainable_tokens", "fail" if tokenized and len(empty) == len(tokenized) else "warn" if empty else "pass",
        e_share, "every example must have at least one label token",
        f"{len(empty)} examples ({e_share:.1%}) have no token to learn", [{"example": i} for i in empty]))
    waste = pad_total / tokens if tokens else 0.0
    checks.append(_check("padding_waste", "pass", waste, "information: padded positions cost compute, not correctness",
                         f"{waste:.1%} of batch positions are padding"
                         + (" (packing: true removes it)" if waste > 0.2 and not train.packing else "")))
    return {"batches": n_batches, "tokens": tokens, "label_tokens": labelled,
            "padding_share": pad_total / tokens if tokens else 0.0, "checks": checks}


# --------------------------------------------------------------------------- template
def _markers(tokenizer) -> list[str]:
    special = set(getattr(tokenizer, "all_special_tokens", []) or [])
    special |= {str(t) for t in (getattr(tokenizer, "added_tokens_decoder", {}) or {}).values()
                if getattr(t, "special", False)}
    return sorted(m for m in special | set(KNOWN_MARKERS) if len(m) >= 3)


def template_audit(train_examples: list[Example], eval_sets: dict[str, list[Example]], tokenizer) -> dict:
    markers = _markers(tokenizer)
    pattern = re.compile("|".join(re.escape(m) for m in markers)) if markers else None
    literal = []
    total = 0
    for where, rows in [("train", train_examples), *eval_sets.items()]:
        for ex in rows:
            total += 1
            for m in ex.messages:
                hit = pattern.search(m["content"]) if pattern else None
                if hit:
                    literal.append({"set": where, "id": ex.id, "role": m["role"], "marker": hit.group(0)})
                    break
    checks = [_check(
        "literal_special_tokens", "fail" if literal else "pass", len(literal),
        "chat markers belong to the tokenizer's template, never to the data",
        f"{len(literal)} of {total} rows contain a chat marker such as {literal[0]['marker']!r} in their text"
        if literal else f"no chat markers written into {total} rows", literal)]
    if tokenizer is None:
        return {"markers_checked": len(markers), "checks": checks}
    probe = [{"role": "user", "content": "ping"}, {"role": "assistant", "content": "pong"}]
    eot = set(end_of_turn_ids(tokenizer))
    try:
        start = len(tokenizer.apply_chat_template(probe[:1], tokenize=True, add_generation_prompt=True,
                                                  return_dict=True)["input_ids"])
        full = list(tokenizer.apply_chat_template(probe, tokenize=True, return_dict=True)["input_ids"])
        ends = any(t in eot for t in full[start:])
        checks.append(_check("template_ends_turn", "pass" if ends else "fail", ends,
                             "the chat template must close an assistant turn with an end-of-turn/EOS token",
                             "assistant turns end with an end-of-turn token" if ends else
                             "the chat template writes no end-of-turn/EOS after an assistant answer"))
    except Exception as e:  # a tokenizer without a chat template: say so, do not guess
        checks.append(_check("template_ends_turn", "fail", False, "the tokenizer needs a chat template",
                             f"cannot render a conversation: {str(e).splitlines()[0][:120]}"))
    return {"markers_checked": len(markers), "checks": checks}


# --------------------------------------------------------------------------- data
def row_hash(messages: list[dict]) -> str:
    """Hash of the normalised conversation (NFKC, case-folded, whitespace collapsed): the key
    `harness data build` de-duplicates by."""
    return conversation_key(messages).hex()


def _dups(rows: list[Example]) -> tuple[int, list[dict]]:
    seen: dict[str, str] = {}
    out = []
    for ex in rows:
        h = row_hash(ex.messages)
        if h in seen:
            out.append({"id": ex.id, "same_as": seen[h]})
        else:
            seen[h] = ex.id
    return len(out), out


def data_audit(train_examples: list[Example], tokenized: list[TokenizedExample],
               eval_sets: dict[str, list[Example]], suite: Suite) -> dict:
    spec = suite.diagnostics.audit
    checks = []
    if train_examples:
        n_dup, ex = _dups(train_examples)
        share = n_dup / len(train_examples)
        checks.append(_check("train_duplicates", "warn" if n_dup else "pass", share,
                             "exact duplicates (normalised messages) within the training data weigh those rows twice",
                             f"{n_dup} of {len(train_examples)} training rows ({share:.1%}) repeat an earlier row", ex))
    train_rows = {row_hash(e.messages): e.id for e in train_examples}
    train_prompts = {row_hash(e.prompt_messages): e.id for e in train_examples}
    near_index = None
    if train_examples and eval_sets:   # the same near-duplicate detection `harness data build` uses
        near_index = NearDuplicateIndex(spec.near_duplicate_threshold)
        for i, e in enumerate(train_examples):
            near_index.add(i, shingles(e.messages))
    leakage = {}
    for name, rows in eval_sets.items():
        n_dup, ex = _dups(rows)
        checks.append(_check(f"{name}.duplicates", "warn" if n_dup else "pass", n_dup / max(1, len(rows)),
                             "exact duplicates within an evaluation set count twice in its score",
                             f"{n_dup} of {len(rows)} rows repeat an earlier row", ex))
        if not train_examples:
            continue
        full = [{"id": e.id, "train_id": train_rows[h]} for e in rows if (h := row_hash(e.messages)) in train_rows]
        prompt = [e.id for e in rows if row_hash(e.prompt_messages) in train_prompts]
        exact_ids = {x["id"] for x in full}
        near = [{"id": e.id, "train_id": train_examples[hit[0]].id, "similarity": round(hit[1], 3)}
                for e in rows if e.id not in exact_ids and (hit := near_index.find(shingles(e.messages)))]
        share = len(full) / max(1, len(rows))
        leakage[name] = {"rows": len(full), "share": share, "prompt_rows": len(prompt),
                         "prompt_share": len(prompt) / max(1, len(rows)), "near_rows": len(near),
                         "near_share": len(near) / max(1, len(rows))}
        status = "fail" if share > spec.max_leakage_share else "warn" if full or near else "pass"
        near_s = (f"; {len(near)} more are near copies of one (Jaccard ≥ {spec.near_duplicate_threshold})"
                  if near else "")
        checks.append(_check(
            f"{name}.leakage", status, share,
            f"evaluation rows found verbatim in the training data: any is a warning, "
            f"above {spec.max_leakage_share:.0%} a failure; near copies are a warning",
            f"{len(full)} of {len(rows)} rows ({share:.1%}) are training rows; "
            f"{len(prompt)} share their prompt with a training row{near_s}" if full or prompt or near
            else f"no overlap with the training data ({len(rows)} rows)", full + near))
    lengths = np.array([t.full_length or len(t.input_ids) for t in tokenized]) if tokenized else None
    stats = None
    if lengths is not None:
        stats = {"max_seq_len": suite.train.max_seq_len, "p50": float(np.percentile(lengths, 50)),
                 "p95": float(np.percentile(lengths, 95)), "max": int(lengths.max()),
                 "truncated": int(sum(t.truncated for t in tokenized)),
                 "histogram": _histogram(lengths, suite.train.max_seq_len)}
    return {"leakage": leakage, "lengths": stats, "checks": checks}


def _histogram(lengths: np.ndarray, max_len: int, bins: int = 10) -> dict:
    edges = np.linspace(0, max(max_len, int(lengths.max())), bins + 1)
    counts, _ = np.histogram(lengths, bins=edges)
    return {"edges": [float(x) for x in edges], "counts": [int(c) for c in counts]}
