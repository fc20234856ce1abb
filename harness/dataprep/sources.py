"""Read one recipe source: every row as (where, position, raw row or the reason it is bad).

Readers stream: JSONL line by line, CSV/Parquet in Arrow record batches, `datasets` in
batches. `to_messages` turns a raw row of any supported format into chat `messages`
(the shared loader's checks in harness/data.py for `messages` and prompt/completion rows).
"""
from __future__ import annotations

import gzip
from itertools import zip_longest
from pathlib import Path
from typing import Iterator, Union

import orjson

from harness.data import LANGUAGE_NAMES, DataError, _check_messages, row_to_messages
from harness.dataprep.recipe import Recipe, SourceSpec

BATCH = 8192
SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                  "model": "assistant", "chatgpt": "assistant", "bing": "assistant", "system": "system"}

RawRow = tuple[str, int, Union[dict, str]]   # (where, position, row dict | error message)


def read_source(spec: SourceSpec, recipe: Recipe) -> Iterator[RawRow]:
    """Raw rows of one source, `limit` applied. Position: 1-based line for text files, else 0-based index."""
    if spec.parallel is not None:
        rows = _parallel_rows(spec, recipe)
    elif spec.hf is not None:
        rows = _hub_rows(spec)
    else:
        path = recipe.resolve(spec.path)
        suffixes = [s.lower() for s in path.suffixes]
        if path.is_dir():
            rows = _disk_dataset_rows(path)
        elif suffixes[-1:] == [".parquet"]:
            rows = _parquet_rows(path)
        elif ".csv" in suffixes[-2:]:
            rows = _csv_rows(path)
        else:
            rows = _jsonl_rows(path)
    for n, row in enumerate(rows):
        if spec.limit is not None and n >= spec.limit:
            break
        yield row


def _open_text(path: Path):
    return gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else open(path, encoding="utf-8")


def _jsonl_rows(path: Path) -> Iterator[RawRow]:
    with _open_text(path) as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                row = orjson.loads(line)
            except orjson.JSONDecodeError as e:
                yield where, lineno, f"not valid JSON ({e.msg} at column {e.colno})"
                continue
            yield where, lineno, row if isinstance(row, dict) else "each line must be a JSON object"


def _csv_rows(path: Path) -> Iterator[RawRow]:
    import csv

    # The csv module, not Arrow: a malformed row is then one bad row with its line, not a failed file.
    with _open_text(path) as f:
        reader = csv.DictReader(f, restkey="\0extra")
        width = len(reader.fieldnames or [])
        for row in reader:
            where = f"{path}:{reader.line_num}"
            if "\0extra" in row or any(v is None for v in row.values()):
                n = width + len(row.get("\0extra", [])) - sum(v is None for v in row.values())
                yield where, reader.line_num, f"{n} fields where the header has {width}"
            else:
                yield where, reader.line_num, row


def _parquet_rows(path: Path) -> Iterator[RawRow]:
    import pyarrow.parquet as pq

    i = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=BATCH):
        for row in batch.to_pylist():
            yield f"{path}[{i}]", i, row
            i += 1


def _dataset_rows(ds, label: str) -> Iterator[RawRow]:
    i = 0
    for batch in ds.iter(batch_size=BATCH):
        keys = list(batch)
        for values in zip(*(batch[k] for k in keys)):
            yield f"{label}[{i}]", i, dict(zip(keys, values))
            i += 1


def _disk_dataset_rows(path: Path) -> Iterator[RawRow]:
    import datasets

    try:
        ds = datasets.load_from_disk(str(path))
    except FileNotFoundError:
        raise DataError(f"{path}: a directory source must be written by datasets' save_to_disk") from None
    if isinstance(ds, datasets.DatasetDict):
        if "train" not in ds:
            raise DataError(f"{path}: a DatasetDict without a 'train' split (has {', '.join(ds)}): "
                            f"point `path` at one split's directory")
        ds = ds["train"]
    yield from _dataset_rows(ds, str(path))


def _hub_rows(spec: SourceSpec) -> Iterator[RawRow]:
    import datasets  # network access unless the dataset is in the local cache

    hf = spec.hf
    ds = datasets.load_dataset(hf.name, hf.config, split=hf.split, revision=hf.revision)
    yield from _dataset_rows(ds, f"{hf.name}:{hf.split}")


def _parallel_rows(spec: SourceSpec, recipe: Recipe) -> Iterator[RawRow]:
    par = spec.parallel
    src_path, tgt_path = recipe.resolve(par.source), recipe.resolve(par.target)
    with _open_text(src_path) as fs, _open_text(tgt_path) as ft:
        for lineno, (src, tgt) in enumerate(zip_longest(fs, ft), 1):
            if src is None or tgt is None:
                longer = src_path if tgt is None else tgt_path
                yield f"{longer}:{lineno}", lineno, "parallel files differ in length (extra line here)"
                return
            yield f"{src_path}:{lineno}", lineno, {"source": src.rstrip("\n"), "target": tgt.rstrip("\n")}


def _detect(row: dict) -> str:
    if "messages" in row:
        return "messages"
    if "conversations" in row:
        return "sharegpt"
    if "instruction" in row and "output" in row:
        return "alpaca"
    if "prompt" in row and "completion" in row:
        return "prompt_completion"
    if "source" in row and "target" in row:
        return "parallel"
    keys = ", ".join(sorted(row)) or "none"
    raise DataError(f"a row needs `messages`, `conversations` (ShareGPT), `instruction`/`output` (Alpaca) "
                    f"or `prompt`/`completion` (has: {keys}); map other columns with `columns:`")


def to_messages(row: dict, spec: SourceSpec, where: str) -> list[dict]:
    """A raw row → chat messages (not yet normalised); DataError naming `where` when it cannot be."""
    if spec.columns:
        missing = [c for c in spec.columns.values() if c not in row]
        if missing:
            raise DataError(f"{where}: no column {missing[0]!r} (columns: {', '.join(map(str, row))})")
        row = {**row, **{field: row[col] for field, col in spec.columns.items()}}
    try:
        fmt = "parallel" if spec.parallel is not None else (spec.format if spec.format != "auto" else _detect(row))
    except DataError as e:
        raise DataError(f"{where}: {e}") from None
    if fmt == "parallel":
        messages = _translation(row, spec)
    elif fmt == "alpaca":
        messages = _alpaca(row, where)
    elif fmt == "sharegpt":
        messages = _sharegpt(row, where)
    else:
        if fmt == "messages" and "messages" not in row or fmt == "prompt_completion" and not (
                "prompt" in row and "completion" in row):
            need = "`messages`" if fmt == "messages" else "`prompt` and `completion`"
            raise DataError(f"{where}: format {fmt} needs {need} (has: {', '.join(sorted(row)) or 'none'})")
        return row_to_messages(row, where, spec.system)
    if spec.system and messages[0]["role"] != "system":
        messages = [{"role": "system", "content": spec.system}] + messages
    return messages


def _translation(row: dict, spec: SourceSpec) -> list[dict]:
    s, t = spec.parallel.direction.split("-", 1)
    prompt = spec.parallel.prompt.format(src_name=LANGUAGE_NAMES.get(s, s), tgt_name=LANGUAGE_NAMES.get(t, t),
                                         source=row["source"])
    return [{"role": "user", "content": prompt}, {"role": "assistant", "content": row["target"]}]


def _alpaca(row: dict, where: str) -> list[dict]:
    instruction, extra, output = row.get("instruction"), row.get("input") or "", row.get("output")
    if not all(isinstance(v, str) for v in (instruction, extra, output)):
        raise DataError(f"{where}: Alpaca fields instruction, input, output must be strings")
    user = f"{instruction}\n\n{extra}" if extra.strip() else instruction
    return [{"role": "user", "content": user}, {"role": "assistant", "content": output}]


def _sharegpt(row: dict, where: str) -> list[dict]:
    turns = row["conversations"]
    if not isinstance(turns, list) or not turns:
        raise DataError(f"{where}: `conversations` must be a non-empty list of {{from, value}}")
    messages: list[dict] = []
    for i, t in enumerate(turns):
        if not isinstance(t, dict) or "from" not in t or "value" not in t:
            raise DataError(f"{where}: conversations[{i}] needs keys from and value")
        role = SHAREGPT_ROLES.get(str(t["from"]).lower())
        if role is None:
            raise DataError(f"{where}: conversations[{i}].from is {t['from']!r}; use human, gpt or system")
        messages.append({"role": role, "content": t["value"]})
    return _check_messages(messages, where)

