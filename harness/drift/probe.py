"""Probe sources → items, and items → token ids with the positions scored.

A probe needs no references: a plain text line is scored on every token after its first; a
conversation (messages JSONL, a recipe, a hub dataset's messages) is rendered with the chat
template, KL is measured on every turn and NLL on the assistant turns (the replies, given the
conversation so far; every turn when there is none). The built-in probe is made by the project's own generators:
English and French sentences, a user turn in one language and a reply in the other taken from
another pair (never the user turn's translation), in the chat format the built-in model knows.

Bad sources are one clean line (DataError, exit 2): a missing file, an empty one, and items
that max_seq_len cuts beyond the audit's `max_truncated_share` (fewer are counted, as the
audit counts training rows).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Union

from harness.drift.spec import ProbeSource, ProbeSpec
from harness.errors import DataError

DEFAULT_MAX_LEN = 2048   # a grade-only suite has no train.max_seq_len


@dataclass
class ProbeItem:
    id: str
    content: Union[str, list[dict]]   # plain text, or chat messages (KL: every turn; NLL: the replies)
    group: str = ""                   # the built-in probe's language: NLL drift is tested per group


@dataclass
class TokenizedProbe:
    """Items as token ids; every position after the first is scored (its token predicted) for KL,
    the `replies` positions (all, where None) for NLL."""

    ids: list[str]
    sets: list[str]                   # "probe" or "probe:GROUP", or "prompts:TASK"
    input_ids: list[list[int]]
    truncated: int                    # items cut by max_seq_len
    replies: list = field(default_factory=list)   # per item: 1 where a target's NLL counts (a
                                      # conversation's assistant turns), or None: every position's


def builtin_items(kind: str, n: int) -> list[ProbeItem]:
    """English and French sentences of the synthetic generator's test split, no references: each
    item a user turn in one language and an assistant turn in the other, taken from different
    pairs (the reply is never the user turn's translation). Half the items answer in English, half
    in French; the group is the reply's language."""
    from harness.suite import SyntheticSource
    from harness.synthetic import generate_rows

    assert kind == "translation"
    rows = generate_rows(SyntheticSource(kind="translation", direction="en-fr", split="test", n=n))
    pairs = [(r["messages"][0]["content"], r["messages"][1]["content"]) for r in rows]
    out = []
    for i, (en, fr) in enumerate(pairs):
        other_en, other_fr = pairs[(i + n // 2 + 1) % n] if n > 1 else ("", "")
        user, reply, lang = (fr, other_en, "en") if i % 2 == 0 else (en, other_fr, "fr")
        turns = [{"role": "user", "content": user}] + ([{"role": "assistant", "content": reply}] if reply else [])
        out.append(ProbeItem(f"builtin-{lang}-{i:05d}", turns, lang))
    return out


def _text_items(path, n: int) -> list[ProbeItem]:
    from harness.files import iter_lines

    out = []
    for lineno, line in enumerate(iter_lines(path, "probe text file (diagnostics.probe.data.text)", DataError), 1):
        if line.strip():
            out.append(ProbeItem(f"line-{lineno:06d}", line.rstrip("\n")))
            if len(out) == n:
                break
    return out


def _hub_items(hf: dict, n: int) -> list[ProbeItem]:
    from harness.dataprep.sources import hub_rows
    from harness.messages import row_to_messages

    name, field = hf.get("name"), hf.get("field")
    if not name:
        raise DataError("diagnostics.probe.data.hf needs `name` (e.g. wikitext)")
    out = []
    for _, i, row in hub_rows(name, hf.get("config"), hf.get("split", "validation")):
        where = f"{name}[{i}]"
        if field is not None:
            if field not in row:
                raise DataError(f"{where}: no field {field!r} (diagnostics.probe.data.hf.field): name a text column")
            if str(row[field]).strip():
                out.append(ProbeItem(f"{name}-{i:06d}", str(row[field])))
        else:
            out.append(ProbeItem(f"{name}-{i:06d}", row_to_messages(dict(row), where, None)))
        if len(out) == n:
            break
    return out


def load_probe(spec: Optional[ProbeSpec], suite) -> list[ProbeItem]:
    """The probe's first `n` items ([] when the suite sets none); a missing or empty source is a DataError."""
    if spec is None:
        return []
    src: ProbeSource = spec.data
    if src.builtin:
        items = builtin_items(src.builtin, spec.n)
    elif src.text:
        items = _text_items(suite.resolve(src.text), spec.n)
    elif src.hf:
        items = _hub_items(src.hf, spec.n)
    else:
        from harness.data import load_rows
        from harness.files import check_file
        from harness.suite import DataSpec

        if src.path:
            check_file(suite.resolve(src.path), "probe file (diagnostics.probe.data.path)", DataError)
        data = DataSpec(path=src.path, recipe=src.recipe, recipe_split=src.recipe_split, limit=spec.n)
        try:
            items = [ProbeItem(ex.id, ex.messages) for ex in load_rows(data, suite)]
        except DataError as e:
            if "no rows loaded" not in str(e):
                raise
            items = []
    if not items:
        raise DataError(f"{src.describe()}: diagnostics.probe.data has no items: give a file with at least one "
                        f"non-blank line (or remove diagnostics.probe)")
    return items


def tokenize_probe(tokenizer, items: list[ProbeItem], max_len: int, set_name: str = "probe") -> TokenizedProbe:
    from harness.chat import tokenize_conversation

    ids, replies, truncated = [], [], 0
    for item in items:
        mask = None
        if isinstance(item.content, str):
            full = list(tokenizer(item.content, add_special_tokens=True)["input_ids"])
        else:
            ex = tokenize_conversation(tokenizer, item.content, 10 ** 9, assistant_only=False)
            full = ex.input_ids
            if any(ex.assistant_mask[1:max_len]):   # NLL on the replies: the text the model produces
                mask = list(ex.assistant_mask[1:max_len])
        truncated += len(full) > max_len
        ids.append(full[:max_len])
        replies.append(mask)
    sets = [f"{set_name}:{i.group}" if i.group else set_name for i in items]
    return TokenizedProbe([i.id for i in items], sets, ids, truncated, replies)


def check_truncation(probe: TokenizedProbe, source: str, max_len: int, max_share: float) -> None:
    """Items cut by max_seq_len: counted; beyond the audit's share, a DataError with the fix."""
    if probe.truncated and probe.truncated > max_share * len(probe.ids):
        raise DataError(f"{source}: {probe.truncated} of {len(probe.ids)} probe items are longer than "
                        f"max_seq_len ({max_len} tokens): shorten them or raise train.max_seq_len "
                        f"(up to diagnostics.audit.max_truncated_share may be cut)")
    if all(len(x) < 2 for x in probe.input_ids):
        raise DataError(f"{source}: every probe item is a single token: nothing to score (give longer lines)")
