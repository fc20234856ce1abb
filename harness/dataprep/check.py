"""`harness data check`: findings on one data file, or on a suite's training and task data.

Checks (level in brackets): schema — rows not valid in their format, by line [error];
role_order — system only first, then user/assistant alternating from user, assistant last
[error]; chat_markers — template tokens such as <|im_start|> written into the text [error];
empty — turns or rows left empty after trimming [warning]; duplicates — exact [warning] and
near (MinHash) [warning]; leakage — task rows found in the training data, exact [error] or
near [warning]; lengths — tokens per row against max_seq_len [warning above the suite's
max_truncated_share]. Exit code: 0 clean (warnings allowed), 1 an error finding, 2 bad input.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional

import numpy as np

from harness.dataprep.dedup import NearDuplicateIndex, shingles
from harness.dataprep.normalise import conversation_key, normalise_messages
from harness.dataprep.recipe import Recipe, SourceSpec
from harness.dataprep.sources import read_source, to_messages
from harness.errors import DataError

EXAMPLES = 10
# Chat-template markers of common model families, checked even when this tokenizer lacks them:
# data written for one template and trained with another is a classic silent failure.
KNOWN_MARKERS = ("<|im_start|>", "<|im_end|>", "<|endoftext|>", "<start_of_turn>", "<end_of_turn>",
                 "<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>",
                 "<|user|>", "<|assistant|>", "<|system|>", "<|end|>", "[INST]", "[/INST]", "<bos>", "<eos>")


@dataclass
class Finding:
    check: str
    level: str            # error | warning | info
    message: str
    count: int = 0
    examples: list = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"check": self.check, "level": self.level, "message": self.message, "count": self.count,
                "examples": self.examples[:EXAMPLES]}


@dataclass
class CheckedRow:
    where: str
    messages: list[dict]


def read_checked(path: Path) -> tuple[list[CheckedRow], list[str], int]:
    """Every row of a data file: the valid ones (normalised), schema errors with line, empty turns."""
    if not path.exists():
        raise DataError(f"{path}: file not found")
    spec = SourceSpec(name="file", path=str(path))
    return read_checked_source(spec, Recipe(name="check", sources=[spec]))


def read_checked_source(spec: SourceSpec, recipe: Recipe) -> tuple[list[CheckedRow], list[str], int]:
    rows, errors, empty_turns = [], [], 0
    for where, _, raw in read_source(spec, recipe):
        try:
            if isinstance(raw, str):
                raise DataError(f"{where}: {raw}")
            messages = to_messages(raw, spec, where)
        except DataError as e:
            errors.append(str(e))
            continue
        norm = normalise_messages(messages)
        empty_turns += norm.empty_turns
        rows.append(CheckedRow(where, norm.messages))
    return rows, errors, empty_turns


def role_order_problem(messages: list[dict]) -> Optional[str]:
    if not messages:
        return "no turns left"
    roles = [m["role"] for m in messages]
    body = roles[1:] if roles[0] == "system" else roles
    if "system" in body:
        return "a system turn after the first"
    if not body or body[0] != "user":
        return "the first turn after the system prompt must be the user's"
    for a, b in zip(body, body[1:]):
        if a == b:
            return f"two {a} turns in a row"
    if body[-1] != "assistant":
        return "the last turn must be the assistant's answer"
    return None


def check_rows(rows: list[CheckedRow], errors: list[str], empty_turns: int, markers: Iterable[str] = (),
               near_threshold: float = 0.8) -> list[Finding]:
    findings = []
    findings.append(Finding("schema", "error" if errors else "info",
                            f"{len(errors)} rows are not valid in their format" if errors
                            else f"{len(rows)} rows valid", len(errors), errors))
    order = [f"{r.where}: {p}" for r in rows if (p := role_order_problem(r.messages))]
    findings.append(Finding("role_order", "error" if order else "info",
                            f"{len(order)} rows break the role order" if order else "role order fine", len(order), order))
    pattern = re.compile("|".join(re.escape(m) for m in sorted(set(KNOWN_MARKERS) | set(markers), key=len, reverse=True)))
    marked = [f"{r.where}: {hit.group(0)!r} in a {m['role']} turn" for r in rows for m in r.messages
              if (hit := pattern.search(m["content"]))]
    findings.append(Finding("chat_markers", "error" if marked else "info",
                            f"{len(marked)} turns contain a literal chat marker (the tokenizer's template adds "
                            f"them)" if marked else "no chat markers in the text", len(marked), marked))
    findings.append(Finding("empty", "warning" if empty_turns else "info",
                            f"{empty_turns} empty turns (dropped by `harness data build`)" if empty_turns
                            else "no empty turns", empty_turns))
    findings.extend(duplicate_findings(rows, near_threshold))
    return findings


def duplicate_findings(rows: list[CheckedRow], threshold: float) -> list[Finding]:
    seen: dict[bytes, str] = {}
    exact = []
    index = NearDuplicateIndex(threshold)
    near = []
    for i, r in enumerate(rows):
        k = conversation_key(r.messages)
        if k in seen:
            exact.append(f"{r.where} repeats {seen[k]}")
            continue
        seen[k] = r.where
        hit = index.find_or_add(i, shingles(r.messages))
        if hit is not None:
            near.append(f"{r.where} ≈ {rows[hit[0]].where} (Jaccard {hit[1]:.2f})")
    return [Finding("duplicates", "warning" if exact else "info",
                    f"{len(exact)} rows repeat an earlier row exactly" if exact else "no exact duplicates",
                    len(exact), exact),
            Finding("near_duplicates", "warning" if near else "info",
                    f"{len(near)} rows nearly repeat an earlier row (Jaccard ≥ {threshold})" if near
                    else "no near-duplicates", len(near), near)]


def leakage_findings(train: list[CheckedRow], tasks: dict[str, list[CheckedRow]], threshold: float) -> list[Finding]:
    keys = {conversation_key(r.messages): r.where for r in train}
    index = NearDuplicateIndex(threshold)
    for i, r in enumerate(train):
        index.add(i, shingles(r.messages))
    out = []
    for name, rows in tasks.items():
        exact, near = [], []
        for r in rows:
            k = conversation_key(r.messages)
            if k in keys:
                exact.append(f"{r.where} is training row {keys[k]}")
            elif (hit := index.find(shingles(r.messages))) is not None:
                near.append(f"{r.where} ≈ training row {train[hit[0]].where} (Jaccard {hit[1]:.2f})")
        out.append(Finding(f"leakage.{name}", "error" if exact else "warning" if near else "info",
                           f"{len(exact)} of {len(rows)} rows of task {name} are training rows, {len(near)} more "
                           f"nearly are" if exact or near else f"no task row of {name} in the training data",
                           len(exact) + len(near), exact + near))
    return out


def length_finding(rows: list[CheckedRow], tokenizer, max_seq_len: int, max_share: float) -> Finding:
    try:
        lengths = np.array([len(_ids(tokenizer, r.messages)) for r in rows]) if rows else np.zeros(0, int)
    except Exception as e:  # no chat template, or one that rejects these roles: say so, do not guess
        return Finding("lengths", "info", f"token lengths not checked: the tokenizer cannot render a "
                                          f"conversation ({str(e).splitlines()[0][:120]})")
    over = int((lengths > max_seq_len).sum())
    share = over / max(1, len(lengths))
    edges = np.linspace(0, max(max_seq_len, int(lengths.max()) if len(lengths) else 1), 11)
    counts, _ = np.histogram(lengths, bins=edges)
    hist = [f"{edges[i]:.0f}–{edges[i + 1]:.0f}: {c}" for i, c in enumerate(counts)]
    return Finding("lengths", "warning" if share > max_share else "info",
                   f"{over} of {len(lengths)} rows ({share:.1%}) exceed max_seq_len={max_seq_len} and would be "
                   f"truncated; tokens p50 {np.percentile(lengths, 50) if len(lengths) else 0:.0f}, "
                   f"max {lengths.max() if len(lengths) else 0}", over, hist)


def _ids(tokenizer, messages: list[dict]) -> list[int]:
    out = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True)
    return list(out["input_ids"])


def exit_code(findings: list[Finding]) -> int:
    return 1 if any(f.level == "error" for f in findings) else 0
