"""The project's own data generators, so every built-in suite runs offline.

Each generator is deterministic for a seed. Splits are assigned by a hash of the row's
source text, so train, val and test never share a row whatever sizes are asked for.

Generators return plain rows, `{"id", "messages", "origin", "meta"}` (the chat JSONL schema
plus where the row came from): `harness.data` turns them into `Example`s, so this package
never imports the data layer that calls it.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Callable, Iterator, Optional

from harness.builtin_recipes import cache_root
from harness.errors import UserError
from harness.results import write_atomic
from harness.suite import SyntheticSource
from harness.synthetic import chinese, json_extraction, math, summarisation
from harness.synthetic.translation import generate_pairs

SPLIT_OF_BUCKET = {0: "test", 1: "val"}  # buckets 2..19 are train: 90% / 5% / 5%


def split_of(text: str) -> str:
    bucket = int(hashlib.sha1(text.encode("utf-8")).hexdigest()[:8], 16) % 20
    return SPLIT_OF_BUCKET.get(bucket, "train")


SPLIT_SHARE = {"test": 0.05, "val": 0.05, "train": 0.9}


def _unique_in_split(stream: Callable[[int, int], list], key, split: str, n: int, seed: int) -> list:
    """Draw from `stream(count, seed)` until n distinct rows of the wanted split are found.

    Every generator's `stream(m, seed)` is a prefix of `stream(M, seed)` (m < M, one random
    generator drawn in order), so each round first tries the prefix the split's share needs
    (with a margin): when it holds n rows they are the rows the whole round would give."""
    out, seen, round_ = [], set(), 0
    while len(out) < n:
        count = max(4 * n, 200) * (2 if split != "train" else 1) * 5
        prefix = min(count, int(n / SPLIT_SHARE.get(split, 1.0) * 1.25) + 100)
        for size in (prefix, count) if prefix < count else (count,):
            found, found_keys = _take_unique(stream(size, seed + 7919 * round_), key, split, n - len(out), seen)
            if len(found) == n - len(out) or size == count:
                break
        out += found
        seen |= found_keys
        round_ += 1
        if round_ > 50 and len(out) < n:
            raise UserError(f"the {split} generator could not produce {n} distinct rows: lower `n`")
    return out


def _take_unique(batch: list, key, split: str, n: int, seen: set) -> tuple[list, set]:
    """Up to n rows of `batch` in `split` whose key is in neither `seen` nor an earlier row."""
    out, keys = [], set()
    for row in batch:
        k = key(row)
        if k in seen or k in keys or split_of(k) != split:
            continue
        keys.add(k)
        out.append(row)
        if len(out) == n:
            break
    return out, keys


def _row(id: str, messages: list[dict], origin: str, meta: dict) -> dict:
    return {"id": id, "messages": messages, "origin": origin, "meta": meta}


def translation_rows(spec: SyntheticSource) -> Iterator[dict]:
    """Source → target rows; the user turn is the bare source (the loader adds the prompt)."""
    direction = spec.direction or "en-fr"
    generators = {"en-fr": generate_pairs, "fr-en": generate_pairs, "en-zh": chinese.generate_pairs}
    if direction not in generators:
        raise ValueError(f"synthetic translation supports {', '.join(generators)}, not {direction!r}")
    pairs = _unique_in_split(generators[direction], key=lambda p: p[0], split=spec.split, n=spec.n,
                             seed=spec.seed)
    for i, (en, other) in enumerate(pairs):
        src, tgt = (other, en) if direction == "fr-en" else (en, other)
        yield _row(f"{direction}-{spec.split}-{i:05d}",
                   [{"role": "user", "content": src}, {"role": "assistant", "content": tgt}],
                   f"synthetic:translation:{spec.split}", {"direction": direction})


def _prompted_rows(spec: SyntheticSource, generate, prompt: str, meta_of) -> Iterator[dict]:
    """Generated items with `.text` and `.answer` → single-turn rows: prompt + text → answer."""
    items = _unique_in_split(generate, key=lambda r: r.text, split=spec.split, n=spec.n, seed=spec.seed)
    for i, item in enumerate(items):
        yield _row(f"{spec.kind}-{spec.split}-{i:05d}",
                   [{"role": "user", "content": prompt + item.text}, {"role": "assistant", "content": item.answer}],
                   f"synthetic:{spec.kind}:{spec.split}", meta_of(item))


def json_extraction_rows(spec: SyntheticSource) -> Iterator[dict]:
    return _prompted_rows(spec, json_extraction.generate_rows, json_extraction.PROMPT, lambda r: {"fields": r.fields})


def summarisation_rows(spec: SyntheticSource) -> Iterator[dict]:
    return _prompted_rows(spec, summarisation.generate_rows, summarisation.PROMPT, lambda r: {"headline": r.headline})


def math_rows(spec: SyntheticSource) -> Iterator[dict]:
    return _prompted_rows(spec, math.generate_rows, math.PROMPT,
                          lambda r: {"expression": r.expression, "operations": r.operations})


GENERATORS: dict[str, Callable[[SyntheticSource], Iterator[dict]]] = {
    "translation": translation_rows,
    "json_extraction": json_extraction_rows,
    "summarisation": summarisation_rows,
    "math": math_rows,
}


def generate_rows(spec: SyntheticSource) -> list[dict]:
    """The rows of `spec`, from the cache when these generators made them before (see _cache_path)."""
    if spec.kind not in GENERATORS:
        raise ValueError(f"no synthetic generator for {spec.kind!r} yet")
    path = _cache_path(spec)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):   # not cached yet (or a damaged entry): generated, then kept
        pass
    rows = list(GENERATORS[spec.kind](spec))
    try:
        write_atomic(path, json.dumps(rows, ensure_ascii=False))
    except OSError:   # a read-only cache: generating each time is only slower
        pass
    return rows


_SOURCE_DIGEST: Optional[str] = None


def _cache_path(spec: SyntheticSource) -> Path:
    """$HARNESS_CACHE/synthetic/<sha256 of this package's source files and the spec>.json: any
    change to a generator's code is a new key, so a cached row is always what the code would make."""
    global _SOURCE_DIGEST
    if _SOURCE_DIGEST is None:
        h = hashlib.sha256()
        for f in sorted(Path(__file__).parent.glob("*.py")):
            h.update(f.name.encode() + b"\0" + f.read_bytes() + b"\0")
        _SOURCE_DIGEST = h.hexdigest()
    key = hashlib.sha256((_SOURCE_DIGEST + spec.model_dump_json()).encode()).hexdigest()[:32]
    return cache_root() / "synthetic" / f"{spec.kind}-{key}.json"
