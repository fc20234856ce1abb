"""The corpus between stages: Arrow strings and numpy keys, never one Python object a row.

`read_pool` streams one source through `to_messages` and normalisation, counts what it
drops, and packs each batch into columns: the exported JSON line of the row, its 128-bit
conversation key and prompt key (numpy), and its source index. Later stages only move
integer indices around (`Rows.take`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import orjson
import pyarrow as pa

from harness.dataprep.normalise import KEY_BYTES, normalise_with_keys
from harness.dataprep.recipe import Recipe, SourceSpec
from harness.dataprep.sources import read_source, to_messages
from harness.errors import DataError

KEY = np.dtype(f"V{KEY_BYTES}")
FLUSH = 65536
BAD_EXAMPLES = 5   # bad rows quoted in the manifest per source


@dataclass
class Rows:
    lines: pa.ChunkedArray     # one JSON object per row: {id, source, line, messages}
    key: np.ndarray            # conversation key (KEY dtype)
    prompt_key: np.ndarray     # key of everything before the final answer
    source: np.ndarray         # index into recipe.sources (int16)

    def __len__(self) -> int:
        return len(self.key)

    def take(self, idx: np.ndarray) -> "Rows":
        idx = np.asarray(idx, dtype=np.int64)
        return Rows(self.lines.take(pa.array(idx)), self.key[idx], self.prompt_key[idx], self.source[idx])

    @staticmethod
    def concat(parts: list["Rows"]) -> "Rows":
        # One chunk: `take` on a many-chunk array pays for the chunking on every call.
        lines = pa.chunked_array([c for p in parts for c in p.lines.chunks], type=pa.large_string())
        return Rows(pa.chunked_array([lines.combine_chunks()]),
                    np.concatenate([p.key for p in parts]) if parts else np.empty(0, KEY),
                    np.concatenate([p.prompt_key for p in parts]) if parts else np.empty(0, KEY),
                    np.concatenate([p.source for p in parts]) if parts else np.empty(0, np.int16))


@dataclass
class SourceCounts:
    read: int = 0            # rows seen in the source (after `limit`)
    invalid: int = 0         # rows that are not valid in their format (on_error: skip)
    empty_turns: int = 0     # turns dropped because they were empty after trimming
    empty_rows: int = 0      # rows with no final assistant answer left after that
    loaded: int = 0
    invalid_examples: list = field(default_factory=list)


def read_pool(spec: SourceSpec, index: int, recipe: Recipe,
              progress: Optional[Callable[[int], None]] = None) -> tuple[Rows, SourceCounts]:
    """One source → normalised Rows; a bad row raises DataError unless the source skips bad rows."""
    counts = SourceCounts()
    skip = recipe.on_error_of(spec) == "skip"
    parts: list[Rows] = []
    lines: list[str] = []
    keys: list[bytes] = []
    pkeys: list[bytes] = []

    def flush() -> None:
        if lines:
            parts.append(Rows(pa.chunked_array([pa.array(lines, pa.large_string())]),
                              np.frombuffer(b"".join(keys), KEY), np.frombuffer(b"".join(pkeys), KEY),
                              np.full(len(lines), index, np.int16)))
            lines.clear(), keys.clear(), pkeys.clear()
            if progress:
                progress(counts.read)

    for where, pos, raw in read_source(spec, recipe):
        counts.read += 1
        try:
            if isinstance(raw, str):
                raise DataError(f"{where}: {raw}")
            messages = to_messages(raw, spec, where)
        except DataError as e:
            if not skip:
                raise DataError(f"{e} (source {spec.name!r}; on_error: skip counts such rows instead)") from None
            counts.invalid += 1
            if len(counts.invalid_examples) < BAD_EXAMPLES:
                counts.invalid_examples.append(str(e))
            continue
        norm, key, pkey = normalise_with_keys(messages)
        counts.empty_turns += norm.empty_turns
        msgs = norm.messages
        if not msgs or msgs[-1]["role"] != "assistant":
            counts.empty_rows += 1
            continue
        lines.append(orjson.dumps({"id": f"{spec.name}:{pos}", "source": spec.name, "line": pos,
                                   "messages": msgs}).decode("utf-8"))
        keys.append(key)
        pkeys.append(pkey)
        if len(lines) >= FLUSH:
            flush()
    flush()
    counts.loaded = sum(len(p) for p in parts)
    empty = Rows(pa.chunked_array([], pa.large_string()), np.empty(0, KEY), np.empty(0, KEY), np.empty(0, np.int16))
    return (Rows.concat(parts) if parts else empty), counts
