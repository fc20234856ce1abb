"""A suite's data sources → lists of `Example`s (harness/messages.py), read by dataprep's readers.

Sources: chat JSONL (`messages`), prompt/completion JSONL, plain parallel text files
(one sentence a line, optionally gzipped), Hugging Face datasets, the project's own
synthetic generators, and data recipes (`recipe:`, built by harness.dataprep, read as JSONL).
Every format is read by harness/dataprep/sources.py; this module only turns the rows into
`Example`s with the suite's prompt and system message. Unlike a recipe, which can count and
skip bad rows, a suite source has no bad rows: the first raises `DataError` naming file and line.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Optional

from harness.dataprep.sources import hub_rows, jsonl_rows, parallel_rows
from harness.errors import DataError
from harness.messages import Example, refuse_lone_surrogates, row_to_messages, translation_messages, with_system
from harness.suite import DataSpec, Suite
from harness.synthetic import generate_rows


def _translation_messages(spec: DataSpec, src: str, tgt: str, direction: str) -> list[dict]:
    return with_system(translation_messages(spec.prompt, src, tgt, direction), spec.system)


def cluster_of(row: dict, spec: DataSpec, where: str) -> Optional[str]:
    """The row's cluster label (`data.cluster`), or None when the suite sets none."""
    if spec.cluster is None:
        return None
    if spec.cluster not in row:
        raise DataError(f"{where}: no field {spec.cluster!r}, which data.cluster names: every row needs it "
                        f"(add it, or remove data.cluster)")
    value = row[spec.cluster]
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise DataError(f"{where}: field {spec.cluster!r} (data.cluster) must be a string or an integer, "
                        f"not {json.dumps(value, ensure_ascii=False)[:40]}")
    return str(value)


def _load_jsonl(spec: DataSpec, path: Path) -> Iterable[Example]:
    for where, lineno, row in jsonl_rows(path):
        if isinstance(row, str):
            raise DataError(f"{where}: {row}")
        if "id" in row and (isinstance(row["id"], bool) or not isinstance(row["id"], (str, int))):
            raise DataError(f"{where}: field 'id' must be a string or an integer, not {json.dumps(row['id'])[:40]}")
        if isinstance(row.get("id"), str):
            refuse_lone_surrogates(row["id"], where, "field 'id'")
        yield Example(
            id=str(row.get("id", f"{path.stem}-{lineno:06d}")),
            messages=row_to_messages(row, where, spec.system),
            origin=str(path),
            meta={k: v for k, v in row.items() if k not in ("messages", "prompt", "completion", "id")},
            cluster=cluster_of(row, spec, where),
        )


def _load_parallel(spec: DataSpec, src_path: Path, tgt_path: Path) -> Iterable[Example]:
    for where, lineno, pair in parallel_rows(src_path, tgt_path):
        if isinstance(pair, str):
            raise DataError(f"{where}: {pair}")
        src, tgt = pair["source"], pair["target"]
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
    hf = dict(spec.hf)
    name = hf.pop("name", None)
    if not name:
        raise DataError("hf data needs `name` (e.g. Helsinki-NLP/opus-100)")
    src_field, tgt_field = hf.get("source_field"), hf.get("target_field")
    for _, i, row in hub_rows(name, hf.get("config"), hf.get("split", "train")):
        where = f"{name}[{i}]"
        if spec.direction and (src_field or "translation" in row):
            s, t = spec.direction.split("-", 1)
            pair = row.get("translation", row)
            messages = _translation_messages(spec, pair[src_field or s], pair[tgt_field or t], spec.direction)
        else:
            messages = row_to_messages(dict(row), where, spec.system)
        yield Example(id=str(row.get("id", f"{spec.direction or 'row'}-{i:06d}")), messages=messages, origin=name,
                      cluster=cluster_of(row, spec, where))


def _load_synthetic(spec: DataSpec) -> Iterable[Example]:
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
        from harness.dataprep.build import prepared_split   # pandas and the build: only for a recipe

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
