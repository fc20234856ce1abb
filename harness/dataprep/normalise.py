"""One row's messages → the normalised form every later stage sees, and its hash keys.

Normalised text: Unicode NFC, surrounding whitespace trimmed; a turn left empty is dropped
(and counted). The de-duplication key is stricter than the stored text, so that rows which
differ only in ways a reader would not notice count as one: NFKC, case-folded, every run of
whitespace collapsed to one space. The same key is the pre-training audit's row hash.
"""
from __future__ import annotations

import hashlib
import unicodedata
from dataclasses import dataclass

KEY_BYTES = 16  # blake2b digest size: 128 bits, no collision to worry about at any corpus size


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
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def conversation_key(messages: list[dict]) -> bytes:
    """128-bit hash of the conversation under the de-duplication normalisation."""
    h = hashlib.blake2b(digest_size=KEY_BYTES)
    for m in messages:
        h.update(m["role"].encode())
        h.update(b"\x1f")
        h.update(key_text(m["content"]).encode("utf-8"))
        h.update(b"\x1e")
    return h.digest()


def prompt_key(messages: list[dict]) -> bytes:
    """Key of everything before the final answer: two rows with the same prompt share it."""
    return conversation_key(messages[:-1])
