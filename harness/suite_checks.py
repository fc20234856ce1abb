"""Checks of a suite against the file system, beyond its own schema (the suite loader calls them).

- `read_json_schema`: a task's JSON Schema file parses and is a valid Draft 2020-12 schema.
- `model_source_problem` / `model_dir_problem`: a model is a known built-in, a directory that
  holds a model (or adapter), or a well-formed hub id.

What this machine cannot run is checked after loading, in harness/machine_checks.py.
Each problem is one line (a `SuiteError`, exit 2), raised before any run directory exists.
"""
from __future__ import annotations

import difflib
import json
import re
from pathlib import Path
from typing import Any, Optional

from harness.builtin_recipes import BUILTIN_PREFIX, RECIPES
from harness.errors import SuiteError
from harness.files import read_text


def read_json_schema(path: Path) -> Any:
    """A JSON Schema file, parsed and checked against Draft 2020-12 (SuiteError when not)."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    text = read_text(path, "JSON Schema file", SuiteError)
    try:
        schema = json.loads(text)
    except json.JSONDecodeError as e:
        raise SuiteError(f"{path}:{e.lineno}: JSON Schema file is not valid JSON: {e.msg}") from None
    if not isinstance(schema, (dict, bool)):
        raise SuiteError(f"{path}: a JSON Schema is an object (or true/false), not {type(schema).__name__}")
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as e:
        raise SuiteError(f"{path}: not a valid Draft 2020-12 JSON Schema: {e.message}"
                         f" at {e.json_path}") from None
    return schema


def model_dir_problem(path: str, adapter: bool = False) -> Optional[str]:
    """Why a local model (or adapter) directory cannot be loaded, or None."""
    p = Path(path)
    what = "adapter directory" if adapter else "model directory"
    if not p.exists():
        return f"{what} not found: {p}"
    if not p.is_dir():
        return f"{p} is a file, expected {'an adapter' if adapter else 'a model'} directory"
    if not any(p.iterdir()):
        return f"{what} {p} is empty"
    marker = "adapter_config.json" if adapter else "config.json"
    if not (p / marker).is_file() and not (not adapter and (p / "adapter_config.json").is_file()):
        return f"{p} holds no {'PEFT adapter' if adapter else 'model'} (no {marker})"
    return None


def model_source_problem(path: str) -> Optional[str]:
    """Why a model path (built-in name, local directory or hub id) is wrong, or None. Whether a
    hub id can be downloaded is the machine's question: see `check_runs_here`."""
    if path.startswith(BUILTIN_PREFIX):
        name = path[len(BUILTIN_PREFIX):]
        if name not in RECIPES:
            hint = difflib.get_close_matches(name, RECIPES, n=1)
            return (f"unknown built-in model {name!r}"
                    + (f"; did you mean 'builtin:{hint[0]}'?" if hint else f"; available: {', '.join(RECIPES)}"))
        return None
    if looks_local(path) or Path(path).is_dir():
        return model_dir_problem(path)
    if not re.match(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$", path) or ".." in path:
        return f"{path!r} is neither a local directory nor a hub id (ORG/NAME)"
    return None


def looks_local(path: str) -> bool:
    """A model path that names a directory (not a hub id like 'Qwen/Qwen3-0.6B' or 'builtin:...')."""
    return path.startswith((".", "/", "~")) or path.count("/") > 1
