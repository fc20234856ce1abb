"""The chat `messages` schema every data source ends in, and the checks a row passes to get there.

An `Example` is one conversation whose last message is the answer to grade or train on.
A row of any format becomes messages here (`row_to_messages`, `check_messages`,
`translation_messages`); a JSONL line becomes a row here (`json_object`). This module sits
under the suite, the data loaders and dataprep alike, so it imports nothing of the project
but its errors.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Union

from harness.errors import DataError

LANGUAGE_NAMES = {
    "en": "English", "fr": "French", "de": "German", "cs": "Czech", "es": "Spanish",
    "it": "Italian", "pt": "Portuguese", "nl": "Dutch", "zh": "Chinese", "ja": "Japanese",
}
ROLES = ("system", "user", "assistant")


@dataclass
class Example:
    id: str
    messages: list[dict]              # [{role, content}], last one is the assistant answer
    origin: str = ""                  # which source the row came from (file, dataset, generator)
    meta: dict = field(default_factory=dict)
    cluster: Optional[str] = None     # the row's `data.cluster` value: items sharing it are resampled together

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


def check_messages(messages: Any, where: str) -> list[dict]:
    """A `messages` list as the schema wants it (roles known, contents strings, the answer last),
    reduced to role and content; else a DataError naming `where`."""
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


def with_system(messages: list[dict], system: Optional[str]) -> list[dict]:
    """`system` as the first message, unless there is none or the row brings its own."""
    if system and messages[0]["role"] != "system":
        return [{"role": "system", "content": system}] + messages
    return messages


def row_to_messages(row: dict, where: str, system: Optional[str] = None) -> list[dict]:
    """A `messages` row or a `prompt`/`completion` row → messages."""
    if "messages" in row:
        messages = check_messages(row["messages"], where)
    elif "prompt" in row and "completion" in row:
        prompt, completion = row["prompt"], row["completion"]
        if isinstance(prompt, list):  # conversational prompt/completion (TRL's format)
            completion = completion if isinstance(completion, list) else [
                {"role": "assistant", "content": completion}]
            messages = check_messages(prompt + completion, where)
        elif isinstance(prompt, str) and isinstance(completion, str):
            messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": completion}]
        else:
            raise DataError(f"{where}: `prompt` and `completion` must both be strings or message lists")
    else:
        keys = ", ".join(sorted(row)) or "none"
        raise DataError(f"{where}: a row needs `messages`, or `prompt` and `completion` (has: {keys})")
    for i, m in enumerate(messages):
        refuse_lone_surrogates(m["content"], where, f"messages[{i}].content")
    return with_system(messages, system)


def refuse_lone_surrogates(text: str, where: str, field_name: str) -> None:
    """JSON can write "\\ud800", UTF-8 cannot store it: refused where the row is read, not when a
    sample file is written after grading."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise DataError(f"{where}: {field_name} holds a lone surrogate escape (such as \\ud800), not text: "
                        f"fix the program that wrote the file") from None


def translation_messages(prompt: str, source: str, target: str, direction: str) -> list[dict]:
    """A sentence pair → user turn (`prompt` filled with the language names and the source) and answer."""
    s, t = direction.split("-", 1)
    user = prompt.format(src_name=LANGUAGE_NAMES.get(s, s), tgt_name=LANGUAGE_NAMES.get(t, t), source=source)
    return [{"role": "user", "content": user}, {"role": "assistant", "content": target}]


def json_object(line: str, not_an_object: str, loads: Callable[[str], Any] = json.loads) -> Union[dict, str]:
    """One JSONL line as a dict, or what is wrong with it (a phrase without the place).
    `not_an_object` is the phrase for valid JSON that is not an object ({type} is its type).
    `loads` may be orjson's, which refuses NaN and lone surrogates that `json` lets through."""
    try:
        row = loads(line)
    except json.JSONDecodeError as e:   # orjson's error is a subclass
        return f"not valid JSON ({e.msg} at column {e.colno})"
    except RecursionError:
        return "JSON nested too deeply"
    if not isinstance(row, dict):
        return not_an_object.format(type=type(row).__name__)
    return row


def json_object_line(line: str, where: str, not_an_object: str) -> dict:
    """One JSONL line as a dict; anything else is a DataError naming `where` (file:line)."""
    row = json_object(line, not_an_object)
    if isinstance(row, str):
        raise DataError(f"{where}: {row}")
    return row
