"""Writing a split: JSONL (the rows' JSON lines, as read) and Parquet (the same rows, typed).

Both are byte-identical for the same input: JSON lines are fixed at read time, and Parquet
is written with fixed settings (zstd, no statistics that depend on threads).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import pyarrow as pa

ROW_SCHEMA = pa.schema([
    ("id", pa.string()), ("source", pa.string()), ("line", pa.int64()),
    ("messages", pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))),
])
CHUNK = 65536


def write_jsonl(lines: pa.ChunkedArray, path: Path) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for start in range(0, len(lines), CHUNK):
            part = lines.slice(start, CHUNK).to_pylist()
            f.write("\n".join(part) + "\n")


def write_parquet_from_jsonl(jsonl: Path, path: Path) -> None:
    import pyarrow.json as pajson
    import pyarrow.parquet as pq

    if jsonl.stat().st_size == 0:
        table = ROW_SCHEMA.empty_table()
    else:
        table = pajson.read_json(jsonl, parse_options=pajson.ParseOptions(explicit_schema=ROW_SCHEMA,
                                                                           unexpected_field_behavior="ignore"))
    pq.write_table(table.select(ROW_SCHEMA.names), path, compression="zstd")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()
