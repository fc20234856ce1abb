"""One row's messages → the normalised form every later stage sees, and its hash keys.

Normalised text: Unicode NFC, surrounding whitespace trimmed; a turn left empty is dropped
(and counted). The de-duplication key is stricter than the stored text, so that rows which
differ only in ways a reader would not notice count as one: NFKC, case-folded, every run of
whitespace collapsed to one space. The same key is the pre-training audit's row hash.
"""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass

import xxhash

KEY_BYTES = 16  # 128-bit keys: no collision to worry about at any corpus size


@dataclass
class Normalised:
    messages: list[dict]
    empty_turns: int   # turns dropped because nothing was left after trimming


def normalise_messages(messages: list[dict]) -> Normalised:
    out, empty = [], 0
    for m in messages:
        text = unicodedata.normalize("NFC", m["content"]).strip()
        if not text:
            empty += 1
            continue
        out.append({"role": m["role"], "content": text})
    return Normalised(out, empty)


def key_text(text: str) -> str:
    if text.isascii():   # already NFKC, and casefold is lower: the common case, three times faster
        return " ".join(text.lower().split())
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def _keys_of(parts: list[str]) -> tuple[bytes, bytes]:
    # xxh3-128 over the joined parts: fast, stable across platforms and versions.
    return (xxhash.xxh3_128_digest("\x1e".join(parts).encode("utf-8")),
            xxhash.xxh3_128_digest("\x1e".join(parts[:-1]).encode("utf-8")))


def conversation_key(messages: list[dict]) -> bytes:
    """128-bit hash of the conversation under the de-duplication normalisation."""
    return _keys_of([f"{m['role']}\x1f{key_text(m['content'])}" for m in messages])[0]


def prompt_key(messages: list[dict]) -> bytes:
    """Key of everything before the final answer: two rows with the same prompt share it."""
    return _keys_of([f"{m['role']}\x1f{key_text(m['content'])}" for m in messages])[1]


def normalise_with_keys(messages: list[dict]) -> tuple[Normalised, bytes, bytes]:
    """normalise_messages, conversation_key and prompt_key in one pass (the build's hot loop)."""
    out, parts, empty = [], [], 0
    for m in messages:
        text = m["content"]
        text = (text if text.isascii() else unicodedata.normalize("NFC", text)).strip()
        if not text:
            empty += 1
            continue
        out.append({"role": m["role"], "content": text})
        parts.append(f"{m['role']}\x1f{key_text(text)}")
    key, pkey = _keys_of(parts) if parts else (b"\0" * KEY_BYTES, b"\0" * KEY_BYTES)
    return Normalised(out, empty), key, pkey
