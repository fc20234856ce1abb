"""Every data source becomes a list of `Example`s in one chat `messages` schema.

Sources: chat JSONL (`messages`), prompt/completion JSONL, plain parallel text files
(one sentence a line, optionally gzipped), Hugging Face datasets, and the project's own
synthetic generators; and data recipes (`recipe:`, built by harness.dataprep). Bad lines
raise `DataError` naming the file and line.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from itertools import zip_longest
from pathlib import Path
from typing import Any, Iterable, Optional

from harness.errors import UserError
from harness.suite import DataSpec, Suite

LANGUAGE_NAMES = {
    "en": "English", "fr": "French", "de": "German", "cs": "Czech", "es": "Spanish",
    "it": "Italian", "pt": "Portuguese", "nl": "Dutch", "zh": "Chinese", "ja": "Japanese",
}
ROLES = ("system", "user", "assistant")


class DataError(UserError, ValueError):
    """A data problem a user can fix; str() is the whole one-line message."""


@dataclass
class Example:
    id: str
    messages: list[dict]              # [{role, content}], last one is the assistant answer
    origin: str = ""                  # which source the row came from (file, dataset, generator)
    meta: dict = field(default_factory=dict)

    @property
    def prompt_messages(self) -> list[dict]:
        return self.messages[:-1]

    @property
    def reference(self) -> str:
        return self.messages[-1]["content"]

    @property
    def source_text(self) -> str:
        """The last user message: what a person reads as the input."""
        return next((m["content"] for m in reversed(self.messages) if m["role"] == "user"), "")


def _lines(path: Path) -> Iterable[str]:
    """Lines of a data file (gzipped when .gz); not UTF-8 or corrupt gzip is a DataError at its line."""
    from harness.files import iter_lines

    return iter_lines(path, "data file", DataError)


def _check_messages(messages: Any, where: str) -> list[dict]:
    if not isinstance(messages, list) or not messages:
        raise DataError(f"{where}: `messages` must be a non-empty list of {{role, content}}")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or "role" not in m or "content" not in m:
            raise DataError(f"{where}: messages[{i}] needs keys role and content")
        if m["role"] not in ROLES:
            raise DataError(f"{where}: messages[{i}].role is {m['role']!r}; use one of {', '.join(ROLES)}")
        if not isinstance(m["content"], str):
            raise DataError(f"{where}: messages[{i}].content must be a string")
    if messages[-1]["role"] != "assistant":
        raise DataError(f"{where}: the last message must be the assistant's answer (role: assistant)")
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def row_to_messages(row: dict, where: str, system: Optional[str] = None) -> list[dict]:
    """A `messages` row or a `prompt`/`completion` row → messages."""
    if "messages" in row:
        messages = _check_messages(row["messages"], where)
    elif "prompt" in row and "completion" in row:
        prompt, completion = row["prompt"], row["completion"]
        if isinstance(prompt, list):  # conversational prompt/completion (TRL's format)
            completion = completion if isinstance(completion, list) else [
                {"role": "assistant", "content": completion}]
            messages = _check_messages(prompt + completion, where)
        elif isinstance(prompt, str) and isinstance(completion, str):
            messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": completion}]
        else:
            raise DataError(f"{where}: `prompt` and `completion` must both be strings or message lists")
    else:
        keys = ", ".join(sorted(row)) or "none"
        raise DataError(f"{where}: a row needs `messages`, or `prompt` and `completion` (has: {keys})")
    if system and messages[0]["role"] != "system":
        messages = [{"role": "system", "content": system}] + messages
    return messages


def _translation_messages(spec: DataSpec, src: str, tgt: str, direction: str) -> list[dict]:
    s, t = direction.split("-", 1)
    prompt = spec.prompt.format(
        src_name=LANGUAGE_NAMES.get(s, s), tgt_name=LANGUAGE_NAMES.get(t, t), source=src
    )
    messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": tgt}]
    if spec.system:
        messages.insert(0, {"role": "system", "content": spec.system})
    return messages


def json_object_line(line: str, where: str, not_an_object: str) -> dict:
    """One JSONL line as a dict; anything else is a DataError naming `where` (file:line).
    `not_an_object` is the message for valid JSON that is not an object ({type} is its type)."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError as e:
        raise DataError(f"{where}: not valid JSON ({e.msg} at column {e.colno})") from None
    except RecursionError:
        raise DataError(f"{where}: JSON nested too deeply") from None
    if not isinstance(row, dict):
        raise DataError(f"{where}: " + not_an_object.format(type=type(row).__name__))
    return row


def _load_jsonl(spec: DataSpec, path: Path) -> Iterable[Example]:
    for lineno, line in enumerate(_lines(path), 1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        row = json_object_line(line, where, "each line must be a JSON object")
        if "id" in row and (isinstance(row["id"], bool) or not isinstance(row["id"], (str, int))):
            raise DataError(f"{where}: field 'id' must be a string or an integer, not {json.dumps(row['id'])[:40]}")
        yield Example(
            id=str(row.get("id", f"{path.stem}-{lineno:06d}")),
            messages=row_to_messages(row, where, spec.system),
            origin=str(path),
            meta={k: v for k, v in row.items() if k not in ("messages", "prompt", "completion", "id")},
        )


def _load_parallel(spec: DataSpec, src_path: Path, tgt_path: Path) -> Iterable[Example]:
    for lineno, (src, tgt) in enumerate(zip_longest(_lines(src_path), _lines(tgt_path)), 1):
        if src is None or tgt is None:
            longer = src_path if tgt is None else tgt_path
            raise DataError(f"{longer}:{lineno}: parallel files differ in length (extra line here)")
        src, tgt = src.rstrip("\n"), tgt.rstrip("\n")
        if not src.strip() or not tgt.strip():
            side = src_path if not src.strip() else tgt_path
            raise DataError(f"{side}:{lineno}: empty line in parallel data (both files must align line by line)")
        yield Example(
            id=f"{spec.direction}-{lineno:06d}",
            messages=_translation_messages(spec, src, tgt, spec.direction),
            origin=f"{src_path}|{tgt_path}",
            meta={"direction": spec.direction},
        )


def _load_hf(spec: DataSpec) -> Iterable[Example]:
    import datasets  # network access needed unless the dataset is cached

    hf = dict(spec.hf)
    name = hf.pop("name", None)
    if not name:
        raise DataError("hf data needs `name` (e.g. Helsinki-NLP/opus-100)")
    try:
        ds = datasets.load_dataset(name, hf.pop("config", None), split=hf.pop("split", "train"))
    except Exception as e:   # offline, unknown name or config, no such split: all the user's to fix
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise DataError(f"hf dataset {name!r}: cannot load ({first}); offline runs need it in the "
                        f"local datasets cache") from None
    src_field, tgt_field = hf.pop("source_field", None), hf.pop("target_field", None)
    for i, row in enumerate(ds):
        where = f"{name}[{i}]"
        if spec.direction and (src_field or "translation" in row):
            s, t = spec.direction.split("-", 1)
            pair = row.get("translation", row)
            src, tgt = pair[src_field or s], pair[tgt_field or t]
            messages = _translation_messages(spec, src, tgt, spec.direction)
        else:
            messages = row_to_messages(dict(row), where, spec.system)
        yield Example(id=str(row.get("id", f"{spec.direction or 'row'}-{i:06d}")), messages=messages, origin=name)


def _load_synthetic(spec: DataSpec) -> Iterable[Example]:
    from harness.synthetic import generate_rows

    for row in generate_rows(spec.synthetic):
        ex = Example(**row)
        if spec.synthetic.kind == "translation":
            ex.messages = _translation_messages(spec, ex.messages[0]["content"], ex.reference,
                                                spec.synthetic.direction)
        elif spec.system:
            ex.messages = [{"role": "system", "content": spec.system}] + ex.messages
        yield ex


def load_rows(spec: DataSpec, suite: Suite) -> list[Example]:
    """Load one data source, applying offset and limit."""
    if spec.path is not None:
        rows: Iterable[Example] = _load_jsonl(spec, suite.resolve(spec.path))
    elif spec.parallel is not None:
        rows = _load_parallel(spec, suite.resolve(spec.parallel["source"]), suite.resolve(spec.parallel["target"]))
    elif spec.hf is not None:
        rows = _load_hf(spec)
    elif spec.recipe is not None:
        from harness.dataprep.build import prepared_split  # lazy: harness.dataprep reads through this module

        rows = _load_jsonl(spec, prepared_split(suite.resolve(spec.recipe), spec.recipe_split))
    else:
        rows = _load_synthetic(spec)
    out = []
    for i, ex in enumerate(rows):
        if i < spec.offset:
            continue
        if spec.limit is not None and len(out) >= spec.limit:
            break
        out.append(ex)
    if not out:
        raise DataError(f"{spec.path or spec.parallel or spec.hf or spec.recipe or 'synthetic'}: no rows loaded")
    return out


def load_training_rows(suite: Suite) -> list[Example]:
    """All training sources, concatenated in suite order, each row tagged with its source."""
    rows: list[Example] = []
    for spec in suite.train.data:
        rows.extend(load_rows(spec, suite))
    return rows
