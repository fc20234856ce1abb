"""The project's one reader of each data format: every row as (where, position, raw row or the reason it is bad).

Readers stream: JSONL and parallel text line by line, CSV/Parquet in Arrow record batches,
`datasets` in batches. Recipe sources (`read_source`) and the suite's own data sources
(harness/data.py) read through them. `to_messages` turns a raw row of any supported format
into chat `messages` (harness/messages.py checks `messages` and prompt/completion rows).
"""
from __future__ import annotations

import gzip
import json
from itertools import zip_longest
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Union

import orjson

from harness.dataprep.recipe import Recipe, SourceSpec
from harness.errors import DataError
from harness.files import iter_lines
from harness.messages import check_messages, json_object, row_to_messages, translation_messages, with_system

BATCH = 8192
SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                  "model": "assistant", "chatgpt": "assistant", "bing": "assistant", "system": "system"}

RawRow = tuple[str, int, Union[dict, str]]   # (where, position, row dict | error message)


def read_source(spec: SourceSpec, recipe: Recipe) -> Iterator[RawRow]:
    """Raw rows of one source, `limit` applied. Position: 1-based line for text files, else 0-based index."""
    if spec.parallel is not None:
        rows = parallel_rows(recipe.resolve(spec.parallel.source), recipe.resolve(spec.parallel.target))
    elif spec.hf is not None:
        rows = hub_rows(spec.hf.name, spec.hf.config, spec.hf.split, spec.hf.revision)
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
            # orjson: fast, and it refuses NaN and lone surrogates, which the build's orjson writer
            # could not write back as they were read.
            rows = jsonl_rows(path, orjson.loads)
    for n, row in enumerate(rows):
        if spec.limit is not None and n >= spec.limit:
            break
        yield row


def _open_text(path: Path):
    return gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else open(path, encoding="utf-8")


def data_lines(path: Path) -> Iterator[str]:
    """Lines of a data file (gzipped when .gz); not UTF-8 or corrupt gzip is a DataError at its line."""
    return iter_lines(path, "data file", DataError)


def jsonl_rows(path: Path, loads: Callable[[str], Any] = json.loads) -> Iterator[RawRow]:
    """Each non-blank line: its JSON object, or why it is not one."""
    for lineno, line in enumerate(data_lines(path), 1):
        if line.strip():
            yield f"{path}:{lineno}", lineno, json_object(line, "each line must be a JSON object", loads)


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


def hub_rows(name: str, config: Optional[str], split: str, revision: Optional[str] = None) -> Iterator[RawRow]:
    import datasets  # network access unless the dataset is in the local cache

    try:
        ds = datasets.load_dataset(name, config, split=split, revision=revision)
    except Exception as e:   # offline, unknown name or config, no such split: all the user's to fix
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise DataError(f"hf dataset {name!r}: cannot load ({first}); offline runs need it in the "
                        f"local datasets cache") from None
    yield from _dataset_rows(ds, f"{name}:{split}")


def parallel_rows(src_path: Path, tgt_path: Path) -> Iterator[RawRow]:
    """{source, target} a line pair, named by the source file's line; the first unpaired line ends it."""
    for lineno, (src, tgt) in enumerate(zip_longest(data_lines(src_path), data_lines(tgt_path)), 1):
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
        messages = translation_messages(spec.parallel.prompt, row["source"], row["target"], spec.parallel.direction)
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
    return with_system(messages, spec.system)


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
    return check_messages(messages, where)

